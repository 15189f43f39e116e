"""raygan.data: IDX/CIFAR/digits/folder sources, fitting, lookup errors, the epoch sampler.

Every file format is written here byte by byte in its real layout; nothing downloads.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import raygan.data.sources as sources
from raygan.data import (
    SOURCES,
    EpochSampler,
    ImageDataset,
    describe,
    fit_channels,
    fit_resolution,
    load_dataset,
    read_idx,
    write_idx,
)
from raygan.errors import CheckpointError, ConfigError, DataError

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_lookup(tmp_path_factory, monkeypatch):
    """No test may find data by accident in $RAYGAN_DATA, the cache or the Debian package."""
    empty = tmp_path_factory.mktemp("nowhere")
    monkeypatch.delenv("RAYGAN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(empty / "cache"))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", str(empty / "debian"))


# ----------------------------------------------------------------------------- IDX


def idx_bytes(magic: int, arr: np.ndarray) -> bytes:
    """The real IDX layout: big-endian magic, big-endian uint32 dims, uint8 data."""
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_mnist_like(d: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    d.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    for stem, blob in (
        (f"{prefix}-images-idx3-ubyte", idx_bytes(0x00000803, images)),
        (f"{prefix}-labels-idx1-ubyte", idx_bytes(0x00000801, labels)),
    ):
        if gz:
            (d / f"{stem}.gz").write_bytes(gzip.compress(blob))
        else:
            (d / stem).write_bytes(blob)


def tiny_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_exact_pixels_and_labels(tmp_path, name, gz):
    imgs, labs = tiny_images(5), np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    timgs, tlabs = tiny_images(2, seed=1), np.array([9, 2], dtype=np.uint8)
    write_mnist_like(tmp_path, "train", imgs, labs, gz)
    write_mnist_like(tmp_path, "test", timgs, tlabs, gz)

    ds = load_dataset(name, root=tmp_path)
    assert isinstance(ds, ImageDataset)
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert ds.images.shape == (5, 1, 28, 28) and ds.channels == 1 and ds.resolution == 28
    assert torch.equal(ds.images[:, 0], torch.from_numpy(imgs))
    assert ds.labels.tolist() == [3, 1, 4, 1, 5]
    assert ds.num_classes == 10 and len(ds.class_names) == 10
    assert (ds.name, ds.split, ds.source) == (name, "train", str(tmp_path))

    test = load_dataset(name, root=tmp_path, split="test")
    assert torch.equal(test.images[:, 0], torch.from_numpy(timgs))
    assert test.labels.tolist() == [9, 2]


def test_idx_pad_28_to_32(tmp_path):
    imgs = tiny_images(3) | 1  # no zero pixels inside, so the zero border is unambiguous
    write_mnist_like(tmp_path, "train", imgs, np.zeros(3, np.uint8), gz=True)
    ds = load_dataset("mnist", root=tmp_path, resolution=32)
    assert ds.images.shape == (3, 1, 32, 32)
    assert torch.equal(ds.images[:, 0, 2:30, 2:30], torch.from_numpy(imgs))
    border = ds.images.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.count_nonzero()) == 0


def test_idx_limit_and_channels(tmp_path):
    imgs = tiny_images(6)
    write_mnist_like(tmp_path, "train", imgs, np.arange(6, dtype=np.uint8), gz=False)
    ds = load_dataset("mnist", root=tmp_path, limit=4, channels=3)
    assert ds.images.shape == (4, 3, 28, 28)
    for c in range(3):
        assert torch.equal(ds.images[:, c], torch.from_numpy(imgs[:4]))
    assert ds.labels.tolist() == [0, 1, 2, 3]


def test_idx_torchvision_layout_and_raygan_data(tmp_path, monkeypatch):
    imgs = tiny_images(2)
    labels = np.array([7, 8], np.uint8)
    write_mnist_like(tmp_path / "FashionMNIST" / "raw", "train", imgs, labels, gz=True)
    monkeypatch.setenv("RAYGAN_DATA", str(tmp_path))
    ds = load_dataset("fashion-mnist")
    assert ds.source == str(tmp_path / "FashionMNIST" / "raw")
    assert ds.labels.tolist() == [7, 8]
    assert ds.class_names[7] == "Sneaker"


@pytest.mark.parametrize("gz", [True, False])
def test_idx_truncated_file_names_the_file(tmp_path, gz):
    write_mnist_like(tmp_path, "train", tiny_images(4), np.zeros(4, np.uint8), gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    path = tmp_path / name
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2] if gz else blob[:-100])  # cut-off gzip / data
    with pytest.raises(DataError, match=name.replace(".", r"\.")) as e:
        load_dataset("mnist", root=tmp_path)
    assert "\n" not in str(e.value)


def test_idx_bad_magic_and_count_mismatch(tmp_path):
    write_mnist_like(tmp_path, "train", tiny_images(3), np.zeros(2, np.uint8), gz=False)
    with pytest.raises(DataError, match="3 images but .* 2 labels"):
        load_dataset("mnist", root=tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x12\x34\x56\x78" + b"\0" * 8)
    with pytest.raises(DataError, match="not an IDX file"):
        load_dataset("mnist", root=tmp_path)


def test_idx_roundtrip_other_dtypes(tmp_path):
    arrays = (np.arange(12, dtype=np.int16).reshape(3, 4), np.linspace(0, 1, 5, dtype=np.float32))
    for arr in arrays:
        write_idx(tmp_path / "a.gz", arr)
        back = read_idx(tmp_path / "a.gz")
        assert back.dtype == arr.dtype and np.array_equal(back, arr)


# ----------------------------------------------------------------------------- real Fashion-MNIST


@pytest.mark.skipif(
    not (DEBIAN_FMNIST / "train-labels-idx1-ubyte.gz").is_file(),
    reason="Fashion-MNIST not installed at /usr/share/datasets/fashion-mnist "
    "(apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist():
    train = load_dataset("fashion-mnist", root=DEBIAN_FMNIST)
    test = load_dataset("fashion-mnist", root=DEBIAN_FMNIST, split="test")
    assert train.images.shape == (60000, 1, 28, 28)
    assert test.images.shape == (10000, 1, 28, 28)
    assert train.num_classes == 10
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    # the first label, read straight from the file: 8-byte header, then one byte per label
    with gzip.open(DEBIAN_FMNIST / "train-labels-idx1-ubyte.gz") as f:
        raw = f.read(9)
    assert struct.unpack(">II", raw[:8]) == (0x00000801, 60000)
    assert raw[8] == 9 == int(train.labels[0])
    assert train.class_names[9] == "Ankle boot"
    with gzip.open(DEBIAN_FMNIST / "train-images-idx3-ubyte.gz") as f:
        head = f.read(16 + 784)
    first = torch.frombuffer(bytearray(head[16:]), dtype=torch.uint8)
    assert torch.equal(train.images[0, 0].flatten(), first)


# ----------------------------------------------------------------------------- CIFAR-10


def write_cifar(d: Path, per_batch: int = 3) -> dict:
    """Pickle batches in the original python format; returns the arrays written."""
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for b in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        batch = {b"batch_label": b.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"{b}_{i}.png".encode() for i in range(per_batch)]}
        blob = pickle.dumps(batch, protocol=2)
        if b == "test_batch":  # numpy 1.x module names, as in the original files
            blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        (d / b).write_bytes(blob)
        written[b] = (data, labels)
    names = "plane car bird cat deer dog frog horse ship truck".split()
    meta = {b"label_names": [n.encode() for n in names], b"num_cases_per_batch": per_batch,
            b"num_vis": 3072}
    with open(d / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return written


def test_cifar_exact_pixels_labels_names(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.images.shape == (15, 3, 32, 32)
    assert ds.class_names[:2] == ["plane", "car"] and ds.num_classes == 10
    labels = sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert ds.labels.tolist() == labels
    # image 4 is the second row of data_batch_2; its pixel (c, y, x) sits at c*1024 + y*32 + x
    data = written["data_batch_2"][0]
    for c, y, x in [(0, 0, 0), (1, 5, 7), (2, 31, 30)]:
        assert int(ds.images[4, c, y, x]) == int(data[1, c * 1024 + y * 32 + x])

    test = load_dataset("cifar10", root=tmp_path, split="test", channels=1, limit=2)
    tdata, tlabels = written["test_batch"]
    assert test.labels.tolist() == tlabels[:2]
    r, g, b = (float(tdata[0, c * 1024 + 3 * 32 + 4]) for c in range(3))
    assert int(test.images[0, 0, 3, 4]) == round(0.299 * r + 0.587 * g + 0.114 * b)


def test_cifar_refuses_foreign_pickles(tmp_path):
    d = tmp_path / "cifar10"
    write_cifar(d)
    (d / "test_batch").write_bytes(pickle.dumps({b"data": Path("/"), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match="test_batch.*refusing"):
        load_dataset("cifar10", root=tmp_path, split="test")


def test_cifar_incomplete(tmp_path):
    d = tmp_path / "c"
    write_cifar(d)
    (d / "data_batch_3").unlink()
    with pytest.raises(DataError, match="lacks data_batch_3"):
        load_dataset("cifar10", root=d)


# ----------------------------------------------------------------------------- digits


def test_digits_counts_scaling_and_resize():
    train = load_dataset("digits")
    test = load_dataset("digits", split="test")
    assert (len(train), len(test)) == (1438, 359)
    assert train.images.shape == (1438, 1, 8, 8)
    from sklearn.datasets import load_digits

    raw = load_digits().images
    assert raw.max() == 16 and int(train.images.max()) == 255
    expected = np.rint(raw[:1438] * 255 / 16).astype(np.uint8)
    assert np.array_equal(train.images[:, 0].numpy(), expected)
    expected_test = np.rint(raw[1438:] * 255 / 16).astype(np.uint8)
    assert np.array_equal(test.images[:, 0].numpy(), expected_test)
    big = load_dataset("digits", resolution=32, channels=3, limit=10)
    assert big.images.shape == (10, 3, 32, 32) and big.images.dtype == torch.uint8


def test_describe_digits():
    info = describe("digits")
    assert info["splits"] == {"train": 1438, "test": 359}
    assert info["num_classes"] == 10 and info["image_shape"] == [1, 8, 8]
    assert sum(info["class_counts"]) == 1438
    assert 0 < info["pixel_mean"][0] < 1 and 0 < info["pixel_std"][0] < 1


# ----------------------------------------------------------------------------- folder


def test_folder_classes_pixels_and_crop(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    for cls, colour in [("zebra", (10, 200, 30)), ("apple", (250, 5, 128))]:
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (16, 16), colour).save(root / cls / f"{i}.png")
    # non-square: 24 wide x 16 high, left and right 4 columns red, middle 16 blue
    wide = np.zeros((16, 24, 3), np.uint8)
    wide[:, :4] = wide[:, 20:] = (255, 0, 0)
    wide[:, 4:20] = (0, 0, 255)
    Image.fromarray(wide).save(root / "zebra" / "2_wide.png")
    (root / "zebra" / "notes.txt").write_text("not an image")

    ds = load_dataset("folder", root=root)
    assert ds.class_names == ["apple", "zebra"] and ds.num_classes == 2
    assert ds.labels.tolist() == [0, 0, 1, 1, 1]
    assert ds.images.shape == (5, 3, 16, 16)
    assert ds.images[0, :, 7, 9].tolist() == [250, 5, 128]
    assert ds.images[2, :, 0, 0].tolist() == [10, 200, 30]
    assert (ds.images[4] == torch.tensor([0, 0, 255], dtype=torch.uint8).view(3, 1, 1)).all()

    small = load_dataset("folder", root=root, resolution=8, channels=1)
    assert small.images.shape == (5, 1, 8, 8)
    assert int(small.images[2, 0, 4, 4]) == round(0.299 * 10 + 0.587 * 200 + 0.114 * 30)

    with pytest.raises(DataError, match="no test split"):
        load_dataset("folder", root=root, split="test")
    info = describe("folder", root=root)
    assert info["splits"] == {"train": 5} and "no test split" in info["unavailable"]["test"]
    assert info["class_counts"] == [2, 3] and info["image_shape"] == [3, 16, 16]


def test_folder_single_class_splits_and_errors(tmp_path):
    from PIL import Image

    for split, n in [("train", 3), ("test", 1)]:
        (tmp_path / "s" / split).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (10, 10), 7 * i).save(tmp_path / "s" / split / f"{i}.jpg", quality=100)
    tr = load_dataset("folder", root=tmp_path / "s")
    te = load_dataset("folder", root=tmp_path / "s", split="test")
    assert (len(tr), len(te), tr.num_classes, tr.class_names) == (3, 1, 1, ["train"])
    assert tr.source == str(tmp_path / "s" / "train")

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_dataset("folder", root=tmp_path / "empty")
    with pytest.raises(DataError, match="needs a directory"):
        load_dataset("folder")

    mixed = tmp_path / "mixed"
    (mixed / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(mixed / "a" / "x.png")
    Image.new("RGB", (12, 12)).save(mixed / "a" / "y.png")
    with pytest.raises(DataError, match="different sizes"):
        load_dataset("folder", root=mixed)
    assert load_dataset("folder", root=mixed, resolution=8).images.shape == (2, 3, 8, 8)


# ----------------------------------------------------------------------------- lookup errors


@pytest.mark.parametrize(
    "name, how",
    [
        (
            "fashion-mnist",
            ["apt-get install dataset-fashion-mnist", "$RAYGAN_DATA/fashion-mnist",
             "data.download=true"],
        ),
        ("mnist", ["$RAYGAN_DATA/mnist", "data.download=true"]),
        ("cifar10", ["cifar-10-python.tar.gz", "data.download=true"]),
    ],
)
def test_missing_dataset_one_line_error(tmp_path, monkeypatch, name, how):
    env = tmp_path / "env"
    env.mkdir()
    monkeypatch.setenv("RAYGAN_DATA", str(env))
    debian = tmp_path / "no-debian"
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", str(debian))
    missing_root = tmp_path / "missing"
    with pytest.raises(DataError) as e:
        load_dataset(name, root=missing_root)
    msg = str(e.value)
    assert "\n" not in msg
    places = [str(missing_root), str(env / name), str(env)]
    if name == "fashion-mnist":
        places.append(str(debian))
    for p in places + how:
        assert p in msg, (p, msg)
    with pytest.raises(DataError) as e2:
        describe(name, root=missing_root)
    assert str(e2.value) == msg


def test_download_is_opt_in_and_lands_where_lookup_finds_it(tmp_path, monkeypatch):
    """download=True hands torchvision a root whose FashionMNIST/raw the lookup then reads."""
    import torchvision.datasets as tvd

    calls = []

    class FakeFashionMNIST:  # stands in for the network: writes the files torchvision would
        def __init__(self, root, train, download):
            calls.append(root)
            write_mnist_like(Path(root) / "FashionMNIST" / "raw", "train", tiny_images(2),
                             np.array([1, 2], np.uint8), gz=True)

    monkeypatch.setattr(tvd, "FashionMNIST", FakeFashionMNIST)
    monkeypatch.setenv("RAYGAN_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError, match="data.download=true"):
        load_dataset("fashion-mnist")
    assert calls == []
    ds = load_dataset("fashion-mnist", download=True)
    assert calls == [str(tmp_path / "data" / "fashion-mnist")]
    assert ds.labels.tolist() == [1, 2]
    assert load_dataset("fashion-mnist").labels.tolist() == [1, 2]  # found offline next time
    assert calls == [str(tmp_path / "data" / "fashion-mnist")]


def test_unknown_names_and_bad_args():
    with pytest.raises(ConfigError, match="cifar10, digits, fashion-mnist, folder, mnist, prepared"):
        load_dataset("imagenet")
    assert SOURCES.names() == ["cifar10", "digits", "fashion-mnist", "folder", "mnist", "prepared"]
    with pytest.raises(ConfigError, match="split"):
        load_dataset("digits", split="val")
    with pytest.raises(ConfigError, match="channels"):
        load_dataset("digits", channels=2)
    with pytest.raises(ConfigError, match="limit"):
        load_dataset("digits", limit=0)


# ----------------------------------------------------------------------------- fitting


def test_fitting_rules():
    x = torch.arange(2 * 3 * 4 * 4).remainder(256).to(torch.uint8).view(2, 3, 4, 4)
    assert fit_resolution(x, 4) is x
    odd = fit_resolution(x, 7)  # 3 px: 1 before, 2 after
    assert torch.equal(odd[:, :, 1:5, 1:5], x) and odd.shape[-1] == 7
    const = torch.full((1, 1, 8, 8), 77, dtype=torch.uint8)
    assert (fit_resolution(const, 32) == 77).all() and (fit_resolution(const, 3) == 77).all()
    grey = fit_channels(torch.tensor([[[[255]], [[0]], [[0]]]], dtype=torch.uint8), 1)
    assert int(grey) == 76  # round(0.299 * 255)
    ds = ImageDataset(x, torch.zeros(2, dtype=torch.int64), 1, ["a"], "t", "train", "here")
    moved = ds.to("cpu")
    assert moved is not ds and torch.equal(moved.images, x) and moved.source == "here"


# ----------------------------------------------------------------------------- sampler


def drain(s: EpochSampler, k: int) -> list:
    return [s.next() for _ in range(k)]


def test_sampler_ranks_partition_each_epoch():
    n, bs = 100, 10
    ranks = [EpochSampler(n, bs, seed=3, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].batches_per_epoch == 5
    for epoch in range(3):
        seen = [torch.cat(drain(s, s.batches_per_epoch)) for s in ranks]
        assert all(len(x) == 50 and x.dtype == torch.int64 for x in seen)
        a, b = set(seen[0].tolist()), set(seen[1].tolist())
        assert len(a) == 50 and len(b) == 50
        assert a | b == set(range(n)) and not a & b
        assert all(s.state_dict() == {"epoch": epoch + 1, "cursor": 0, "world_size": 2} for s in ranks)


def test_sampler_determinism_and_epochs():
    s1, s2 = EpochSampler(64, 8, seed=1), EpochSampler(64, 8, seed=1)
    e0 = torch.cat(drain(s1, 8))
    assert torch.equal(e0, torch.cat(drain(s2, 8)))
    assert sorted(e0.tolist()) == list(range(64))
    e1 = torch.cat(drain(s1, 8))
    assert not torch.equal(e0, e1) and sorted(e1.tolist()) == list(range(64))
    other = torch.cat(drain(EpochSampler(64, 8, seed=2), 8))
    assert not torch.equal(e0, other)


def test_sampler_drop_last_and_uneven_ranks():
    s = EpochSampler(23, 5, seed=0, rank=1, world_size=2)  # 11 per rank -> 2 batches, 1 dropped
    assert s.batches_per_epoch == 2
    assert [len(b) for b in drain(s, 4)] == [5, 5, 5, 5]
    t = EpochSampler(23, 5, seed=0, rank=1, world_size=2, drop_last=False)
    assert t.batches_per_epoch == 3 and [len(b) for b in drain(t, 3)] == [5, 5, 1]
    with pytest.raises(ConfigError):
        EpochSampler(10, 8, seed=0, world_size=2)
    with pytest.raises(ConfigError):
        EpochSampler(10, 2, seed=0, rank=2, world_size=2)


def test_sampler_exact_resume():
    ref = EpochSampler(50, 7, seed=11, rank=1, world_size=2)  # 25 per rank, 3 batches per epoch
    drain(ref, 5)
    state = ref.state_dict()
    assert state == {"epoch": 1, "cursor": 28, "world_size": 2}  # 2 ranks x 14 of epoch 1's order
    expected = drain(ref, 20)

    resumed = EpochSampler(50, 7, seed=11, rank=1, world_size=2)
    resumed.load_state_dict(dict(state))
    got = drain(resumed, 20)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    for bad in ({"epoch": 0, "pos": 25}, {"epoch": 0, "cursor": 50}, {"epoch": -1, "cursor": 0}, {"pos": 1}):
        with pytest.raises(CheckpointError):
            resumed.load_state_dict(bad)


# ----------------------------------------------------------------------------- folder: pixel rules


def test_folder_16bit_grey_png_scales_to_8_bits(tmp_path):
    from PIL import Image

    ramp = np.round(np.linspace(0, 65535, 256)).astype(np.uint16).reshape(16, 16)  # k * 257
    odd = np.array([[0, 128, 129, 385, 386, 32896, 65406, 65535]], np.uint16).repeat(8, 0)
    for name, a in (("ramp", ramp), ("odd", odd)):
        (tmp_path / name).mkdir()
        Image.fromarray(a).save(tmp_path / name / "x.png")  # a real 16-bit grey PNG
        with Image.open(tmp_path / name / "x.png") as im:
            assert im.mode == "I;16"
    got = load_dataset("folder", root=tmp_path / "ramp", channels=1).images[0, 0].flatten()
    assert got.tolist() == list(range(256))  # round(v / 257): monotone 0..255, not 0 then 255s
    # round(v / 257) = (v + 128) // 257 on the values either side of each rounding edge
    ds = load_dataset("folder", root=tmp_path / "odd", channels=1)
    assert ds.images[0, 0, 0].tolist() == [0, 0, 1, 1, 2, 128, 254, 255]
    rgb = load_dataset("folder", root=tmp_path / "odd")
    assert torch.equal(rgb.images[0], ds.images[0].expand(3, 8, 8))


def test_folder_transparency_composited_over_black(tmp_path):
    from PIL import Image

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (10, 200, 30, 255)  # opaque
    rgba[:, 4:] = (255, 255, 0, 0)  # fully transparent, bright colour underneath
    rgba[0, 7] = (200, 100, 50, 128)  # half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a_rgba.png")
    la = np.zeros((8, 8, 2), np.uint8)
    la[..., 0], la[:, :4, 1] = 255, 255  # white; right half transparent
    Image.fromarray(la, "LA").save(tmp_path / "b_la.png")
    pal = Image.fromarray(np.array([[0, 1] * 4] * 8, np.uint8), "P")
    pal.putpalette([0, 0, 255, 255, 255, 255] + [0] * 762)  # 0 blue, 1 white (transparent)
    pal.save(tmp_path / "c_p.png", transparency=1)

    ds = load_dataset("folder", root=tmp_path)
    x = ds.images
    assert x[0, :, 3, 0].tolist() == [10, 200, 30]
    assert (x[0, :, 1:, 4:] == 0).all()  # the yellow under alpha 0 is gone
    assert x[0, :, 0, 7].tolist() == [100, 50, 25]  # round(c * 128 / 255)
    assert (x[1, :, :, :4] == 255).all() and (x[1, :, :, 4:] == 0).all()
    assert x[2, :, 0, 0].tolist() == [0, 0, 255] and (x[2, :, :, 1::2] == 0).all()
    grey = load_dataset("folder", root=tmp_path, channels=1).images
    assert int(grey[0, 0, 0, 7]) == round(0.299 * 100 + 0.587 * 50 + 0.114 * 25)
    assert (grey[:2, 0, 1:, 4:] == 0).all() and (grey[2, 0, :, 1::2] == 0).all()


def test_folder_fits_like_every_source(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    for i, a in enumerate(small):
        Image.fromarray(a).save(tmp_path / f"{i}.png")
    wide = rng.integers(0, 256, (28, 34), dtype=np.uint8)  # center-cropped to columns 3..30
    Image.fromarray(wide).save(tmp_path / "2_wide.png")
    ds = load_dataset("folder", root=tmp_path, resolution=32, channels=1)
    native = torch.from_numpy(np.stack([*small, wide[:, 3:31]]))[:, None]
    assert torch.equal(ds.images, fit_resolution(native, 32))
    assert torch.equal(ds.images[:, :, 2:30, 2:30], native)  # 28 -> 32 zero-padded, not resized
    assert ds.images[:, :, :2].sum() == 0 and ds.images[:, :, :, 30:].sum() == 0

    big = rng.integers(0, 256, (40, 40), dtype=np.uint8)  # mixed sizes: each fitted by the rule
    Image.fromarray(big).save(tmp_path / "3_big.png")
    mixed = load_dataset("folder", root=tmp_path, resolution=32, channels=1).images
    assert torch.equal(mixed[:3], ds.images)
    assert torch.equal(mixed[3:], fit_resolution(torch.from_numpy(big)[None, None], 32))
    with pytest.raises(DataError, match="different sizes.*data.resolution"):
        load_dataset("folder", root=tmp_path)
