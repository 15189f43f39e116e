"""Two unpaired domains: Fashion-MNIST class pairs (sizes, labels, name lookup, errors) and the
reference folder layout read from real image files."""
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import needs_fmnist
from raygan.data import load_dataset
from raygan.data.domains import load_domains, resolve_class
from raygan.errors import ConfigError, DataError


@pytest.mark.parametrize(
    "name,want",
    [
        ("Sneaker", 7), ("sneaker", 7), ("ankle boot", 9), ("Ankle-Boot", 9), ("ankle_boot", 9),
        ("ANKLEBOOT", 9), ("T-shirt/top", 0), ("tshirt", 0), ("t-shirt", 0), ("top", 0),
        (7, 7), ("3", 3), (" dress ", 3),
    ],
)
def test_class_lookup_variants(name, want):
    assert resolve_class("fashion-mnist", name) == want


def test_class_lookup_errors_are_one_line_and_list_the_names():
    with pytest.raises(ConfigError) as e:
        resolve_class("fashion-mnist", "snekaer")
    msg = str(e.value)
    assert "\n" not in msg and "'snekaer'" in msg and "Sneaker" in msg and "Ankle boot" in msg
    with pytest.raises(ConfigError, match="index 0-9"):
        resolve_class("fashion-mnist", 10)
    with pytest.raises(ConfigError, match="0, 1, 2"):
        resolve_class("mnist", "seven")
    assert resolve_class("mnist", "7") == 7


@needs_fmnist
def test_fashion_mnist_class_domains_have_the_class_counts():
    a, b = load_domains("fashion-mnist", domain_a="sneaker", domain_b="Ankle boot", resolution=32)
    assert a.images.shape == (6000, 1, 32, 32) and b.images.shape == (6000, 1, 32, 32)
    assert a.labels.eq(0).all() and b.labels.eq(1).all()
    assert a.class_names == b.class_names == ["Sneaker", "Ankle boot"] and a.num_classes == 2
    assert (a.name, b.name) == ("fashion-mnist:Sneaker", "fashion-mnist:Ankle boot")
    assert a.source.endswith("[class 7 'Sneaker']") and a.split == "train"
    # the same pixels as the source's class-7 images, in order (32 px = 28 zero-padded by 2)
    full = load_dataset("fashion-mnist", split="train")
    sneakers = full.images[full.labels == 7]
    assert torch.equal(a.images[:, :, 2:30, 2:30], sneakers)
    # unpaired by construction: no B image equals any A image
    flat_a = {bytes(x) for x in sneakers.flatten(1).numpy()}
    assert not any(bytes(x) in flat_a for x in full.images[full.labels == 9].flatten(1).numpy())

    ta, tb = load_domains("fashion-mnist", domain_a=0, domain_b="shirt", split="test", channels=3, limit=700)
    assert (len(ta), len(tb)) == (700, 700) and ta.images.shape[1:] == (3, 28, 28)
    ta, tb = load_domains("fashion-mnist", domain_a="tshirt", domain_b=6, split="test")
    assert (len(ta), len(tb)) == (1000, 1000) and tb.name == "fashion-mnist:Shirt"


@needs_fmnist
def test_class_domain_errors():
    with pytest.raises(ConfigError, match="unknown fashion-mnist class 'boot'"):
        load_domains("fashion-mnist", domain_a="sneaker", domain_b="boot", split="test")
    with pytest.raises(ConfigError, match="same fashion-mnist class 'Sneaker'"):
        load_domains("fashion-mnist", domain_a="sneaker", domain_b=7, split="test")
    with pytest.raises(ConfigError, match="domain_a and translate.domain_b"):
        load_domains("fashion-mnist", domain_a="sneaker", split="test")
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_domains("imagenet", domain_a=1, domain_b=2)


def _write(path, size, mode, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode).save(path)


@pytest.fixture
def layout(tmp_path):
    """trainA: 3 grey + 1 RGB of mixed sizes; trainB: 2 RGB (one in a subfolder); testA/testB: 1 each."""
    _write(tmp_path / "trainA" / "a0.png", (40, 40), "L", 10)
    _write(tmp_path / "trainA" / "a1.png", (50, 30), "L", 20)
    _write(tmp_path / "trainA" / "a2.png", (16, 16), "L", 30)
    _write(tmp_path / "trainA" / "a3.png", (64, 64), "RGB", 40)
    _write(tmp_path / "trainB" / "b0.png", (32, 48), "RGB", 200)
    _write(tmp_path / "trainB" / "sub" / "b1.jpg", (20, 20), "RGB", 220)
    _write(tmp_path / "testA" / "t.png", (32, 32), "L", 5)
    _write(tmp_path / "testB" / "t.png", (32, 32), "RGB", 250)
    return tmp_path


def test_folder_layout_from_real_files(layout):
    a, b = load_domains("folder", root=layout, resolution=32, channels=1)
    assert a.images.shape == (4, 1, 32, 32) and b.images.shape == (2, 1, 32, 32)
    assert a.images.dtype == torch.uint8
    # constant images stay constant through crop + resize; RGB (v, v, v) -> luminance v
    assert [int(x.float().mean().round()) for x in a.images[[0, 2, 3]]] == [10, 30, 40]
    # a1 (50x30) is cropped to 30x30 and, like every source's <= 4 px smaller image, zero-padded
    assert a.images[1, :, 1:31, 1:31].eq(20).all() and a.images[1].sum() == 20 * 30 * 30
    assert [int(x.float().mean().round()) for x in b.images] == [200, 220]
    assert a.labels.tolist() == [0] * 4 and b.labels.tolist() == [1, 1]
    assert (a.name, b.name, a.class_names) == ("folder:trainA", "folder:trainB", ["trainA", "trainB"])
    ta, tb = load_domains("folder", root=layout, split="test", resolution=16, channels=3)
    assert ta.images.shape == (1, 3, 16, 16) and tb.images.shape == (1, 3, 16, 16)
    assert ta.images.eq(5).all() and tb.images.eq(250).all() and ta.name == "folder:testA"


def test_folder_errors_name_what_is_missing(layout, tmp_path):
    with pytest.raises(DataError, match="different sizes"):
        load_domains("folder", root=layout)  # mixed sizes need a resolution
    with pytest.raises(DataError, match="data.root"):
        load_domains("folder", resolution=32)
    with pytest.raises(DataError, match="not a directory"):
        load_domains("folder", root=tmp_path / "nope", resolution=32)
    (layout / "testB" / "t.png").unlink()
    (layout / "testB" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"domain B is empty: .*testB") as e:
        load_domains("folder", root=layout, split="test", resolution=32)
    assert "\n" not in str(e.value)
    other = tmp_path / "other"
    _write(other / "trainA" / "x.png", (8, 8), "L", 1)
    with pytest.raises(DataError, match=r"has no trainB/ \(the layout is root/trainA, trainB, testA, testB\)"):
        load_domains("folder", root=other, resolution=8)
    with pytest.raises(DataError, match="has no testA/ and no testB/"):
        load_domains("folder", root=other, split="test", resolution=8)
