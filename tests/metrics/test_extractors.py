"""Feature extractors: the FID Inception (random weights, no network) and the shipped fmnist-cnn."""
import gzip
import json
import os
import shutil
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from raygan.errors import ConfigError, DataError, RayganError
from raygan.metrics import EXTRACTORS, build_extractor
from raygan.metrics.extractors import fmnist_cnn, inception
from raygan.metrics.extractors.fmnist_cnn import SHIPPED_WEIGHTS, load_fashion_mnist, train_fmnist_cnn


def test_registry_names():
    assert EXTRACTORS.names() == ["fmnist-cnn", "inception"]
    with pytest.raises(ConfigError, match="unknown extractor 'vgg'"):
        build_extractor("vgg")


# ---------------------------------------------------------------------------- inception
@pytest.fixture(scope="module")
def rand_inception():
    return build_extractor("inception", weights="random")


def test_inception_architecture(rand_inception):
    net = rand_inception.net
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == inception.INCEPTION_PARAMS == 23_850_960
    # = torchvision's Inception3 without aux head (23,834,568 at 1000 classes) + 8 more fc rows;
    # the FID patches change pooling only, not parameters
    assert n_params == 23_834_568 + 8 * (2048 + 1)
    assert net.fc.weight.shape == (1008, 2048)
    assert all(m.eps == 1e-3 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert isinstance(net.Mixed_5b, inception.FIDInceptionA) and isinstance(net.Mixed_6e, inception.FIDInceptionC)
    assert not net.Mixed_7b.max_pool and net.Mixed_7c.max_pool
    assert rand_inception.weights_hash == "random" and not rand_inception.training
    assert rand_inception.resize == "tf1-bilinear-299" and rand_inception.feature_dim == 2048
    # random weights are seeded: a second build is identical
    again = build_extractor("inception", weights="random")
    assert torch.equal(again.net.Conv2d_1a_3x3.conv.weight, net.Conv2d_1a_3x3.conv.weight)


def test_inception_shapes_gray_and_rgb(rand_inception):
    g = torch.Generator().manual_seed(0)
    gray28 = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8, generator=g)
    out = rand_inception(gray28)
    assert out["features"].shape == (2, 2048) and out["logits"].shape == (2, 1008)
    assert out["features"].dtype == torch.float32 and torch.isfinite(out["features"]).all()
    # gray is repeated to RGB: an RGB image with three equal planes gives the same features
    rgb28 = rand_inception(gray28[:1].expand(-1, 3, -1, -1).contiguous())
    torch.testing.assert_close(rgb28["features"], out["features"][:1], rtol=1e-4, atol=1e-5)
    for shape in [(1, 1, 32, 32), (1, 3, 32, 32)]:
        o = rand_inception(torch.randint(0, 256, shape, dtype=torch.uint8, generator=g))
        assert o["features"].shape == (1, 2048) and o["logits"].shape == (1, 1008)
    # the logits are the bias-free fc outputs
    torch.testing.assert_close(out["logits"], out["features"] @ rand_inception.net.fc.weight.T, rtol=1e-4, atol=1e-4)


def test_inception_rejects_float_input(rand_inception):
    with pytest.raises(ValueError, match="uint8"):
        rand_inception(torch.rand(1, 3, 28, 28))


def test_tf1_resize_is_not_half_pixel():
    # TF1 resize_bilinear(align_corners=False): src = dst * in/out, no half-pixel offset
    x = torch.tensor([[[[0.0, 10.0]]]])
    y = inception.tf1_resize_bilinear(x.expand(1, 1, 2, 2), 4)
    assert y[0, 0, 0].tolist() == [0.0, 5.0, 10.0, 10.0]
    half_pixel = F.interpolate(x.expand(1, 1, 2, 2), size=(4, 4), mode="bilinear", align_corners=False)
    assert half_pixel[0, 0, 0].tolist() == [0.0, 2.5, 7.5, 10.0]
    w = inception.tf1_resize_matrix(28, 299)
    torch.testing.assert_close(w.sum(1), torch.ones(299, dtype=torch.float64))
    assert w[0, 0] == 1 and w[-1, -1] == 1  # first row copies pixel 0; the last clamps at the edge
    z = torch.rand(1, 3, 299, 299)
    assert inception.tf1_resize_bilinear(z, 299) is z


@pytest.fixture(scope="module")
def fake_inception_file(tmp_path_factory, rand_inception):
    path = tmp_path_factory.mktemp("incep") / "fake_inception.pth"
    torch.save(rand_inception.net.state_dict(), path)
    return str(path)


def _no_network(url, dst, *a, **k):
    raise OSError("network is unreachable")


def test_inception_missing_weights_names_four_places(tmp_path, monkeypatch):
    missing = str(tmp_path / "nowhere.pth")
    hub = tmp_path / "hub"
    monkeypatch.setenv("RAYGAN_INCEPTION_WEIGHTS", missing)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    with pytest.raises(RayganError) as e:
        build_extractor("inception")
    msg = str(e.value)
    assert "\n" not in msg
    assert "weights= argument" in msg
    assert missing in msg
    assert str(hub / "checkpoints" / inception.INCEPTION_FILE) in msg
    assert inception.INCEPTION_URL in msg and "network is unreachable" in msg
    with pytest.raises(RayganError, match="given explicitly"):
        build_extractor("inception", weights=missing)


def test_inception_weights_lookup_order(tmp_path, monkeypatch, fake_inception_file, rand_inception):
    digest = fmnist_cnn.sha256_file(fake_inception_file)
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    # 1. the environment variable
    monkeypatch.setenv("RAYGAN_INCEPTION_WEIGHTS", fake_inception_file)
    ext = build_extractor("inception")
    assert ext.weights_hash == digest and ext.weights_path == fake_inception_file
    assert torch.equal(ext.net.fc.weight, rand_inception.net.fc.weight)
    # 2. the "download" into the hub cache (monkeypatched: copies the local file), 3. then the cache
    monkeypatch.delenv("RAYGAN_INCEPTION_WEIGHTS")
    calls = []

    def fake_download(url, dst, *a, **k):
        calls.append(url)
        shutil.copy(fake_inception_file, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    cached = str(hub / "checkpoints" / inception.INCEPTION_FILE)
    assert build_extractor("inception").weights_path == cached and calls == [inception.INCEPTION_URL]
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    assert build_extractor("inception").weights_hash == digest  # from the cache, no download


def test_inception_bad_weights_file(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3)}, bad)
    with pytest.raises(RayganError, match="cannot load FID Inception weights"):
        build_extractor("inception", weights=str(bad))


# ---------------------------------------------------------------------------- fmnist-cnn
@pytest.fixture(scope="module")
def fmnist_ext():
    return build_extractor("fmnist-cnn")


def test_fmnist_shipped_weights_verified(fmnist_ext):
    with open(os.path.splitext(SHIPPED_WEIGHTS)[0] + ".json") as f:
        meta = json.load(f)
    assert fmnist_ext.weights_hash == meta["sha256"] == fmnist_cnn.sha256_file(SHIPPED_WEIGHTS)
    assert meta["test_accuracy"] >= 0.90
    assert {"command", "seed", "epochs", "test_accuracy", "sha256", "torch_version"} <= set(meta)
    assert os.path.getsize(SHIPPED_WEIGHTS) < 1.5e6


def test_fmnist_accuracy_on_real_test_images(fmnist_ext):
    x, y = load_fashion_mnist("test")
    x, y = x[:2000], y[:2000]
    out = fmnist_ext(x)
    assert out["features"].shape == (2000, 128) and out["logits"].shape == (2000, 10)
    acc = (out["logits"].argmax(1) == y).double().mean().item()
    assert acc >= 0.90
    # raygan's 32x32 padding is cropped away exactly; RGB goes through luminance
    pad = F.pad(x[:50], (2, 2, 2, 2))
    torch.testing.assert_close(fmnist_ext(pad)["features"], out["features"][:50])
    rgb = fmnist_ext(x[:50].expand(-1, 3, -1, -1).contiguous())
    torch.testing.assert_close(rgb["features"], out["features"][:50], rtol=1e-4, atol=1e-4)
    other = fmnist_ext(torch.randint(0, 256, (3, 1, 64, 64), dtype=torch.uint8))  # resized to 28
    assert other["features"].shape == (3, 128)


def test_fmnist_tampered_weights_rejected(tmp_path):
    pt = tmp_path / "fmnist_cnn.pt"
    shutil.copy(SHIPPED_WEIGHTS, pt)
    shutil.copy(os.path.splitext(SHIPPED_WEIGHTS)[0] + ".json", tmp_path / "fmnist_cnn.json")
    assert build_extractor("fmnist-cnn", weights=str(pt)).weights_hash == fmnist_cnn.sha256_file(SHIPPED_WEIGHTS)
    data = bytearray(pt.read_bytes())
    data[-100] ^= 0xFF
    pt.write_bytes(bytes(data))
    with pytest.raises(RayganError, match="sha256"):
        build_extractor("fmnist-cnn", weights=str(pt))
    with pytest.raises(RayganError, match="not found"):
        build_extractor("fmnist-cnn", weights=str(tmp_path / "missing.pt"))


def _write_idx(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def test_train_fmnist_cnn_smoke_and_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for prefix, n in (("train", 256), ("t10k", 64)):
        _write_idx(data / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(data / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    x, y = load_fashion_mnist("train", str(data))
    assert x.shape == (256, 1, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    logs = []
    rec1 = train_fmnist_cnn(str(tmp_path / "a" / "net.pt"), seed=1, epochs=1, data_dir=str(data), log=logs.append)
    rec2 = train_fmnist_cnn(str(tmp_path / "b" / "net.pt"), seed=1, epochs=1, data_dir=str(data), log=logs.append)
    assert rec1["sha256"] == rec2["sha256"]  # same seed -> same bytes
    meta = json.loads((tmp_path / "a" / "net.json").read_text())
    assert meta["sha256"] == fmnist_cnn.sha256_file(str(tmp_path / "a" / "net.pt")) and meta["seed"] == 1
    assert build_extractor("fmnist-cnn", weights=str(tmp_path / "a" / "net.pt")).weights_hash == meta["sha256"]
    assert any("epoch 1/1" in line for line in logs)


def test_fmnist_missing_data_is_one_line(tmp_path, monkeypatch):
    import raygan.data.sources as sources

    monkeypatch.setenv("RAYGAN_DATA", str(tmp_path))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", str(tmp_path / "no-debian"))
    with pytest.raises(DataError) as e:
        load_fashion_mnist("train", str(tmp_path / "nope"))
    assert "\n" not in str(e.value) and "fashion-mnist" in str(e.value) and str(tmp_path) in str(e.value)
