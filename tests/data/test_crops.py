"""Patch training's data (raygan.data.crops): images of any size, random crops drawn from a generator,
fixed centre crops for evaluation, and the one-line refusals."""
import numpy as np
import pytest
import torch
from PIL import Image

from raygan.data.crops import PatchImages, center_crops
from raygan.data.patch_sources import load_patches
from raygan.errors import DataError

skdata = pytest.importorskip("skimage.data")


def photos(root, sizes):
    """The astronaut resized to each (width, height), saved as PNGs 0.png, 1.png, ... under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(sizes):
        Image.fromarray(skdata.astronaut()).resize(size, Image.BILINEAR).save(root / f"{i}.png")
    return root


def test_random_crops_are_windows_of_images_of_any_size_drawn_from_the_generator():
    g = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g) for h, w in ((20, 31), (17, 17), (40, 18))]
    p = PatchImages(imgs, torch.zeros(3, dtype=torch.int64))
    idx = torch.tensor([2, 0, 1, 2, 0])
    a = p.crops(idx, 16, torch.Generator().manual_seed(5))
    b = p.crops(idx, 16, torch.Generator().manual_seed(5))
    c = p.crops(idx, 16, torch.Generator().manual_seed(6))
    assert a.shape == (5, 3, 16, 16) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)  # the generator decides, nothing else
    for k, i in enumerate(idx.tolist()):  # each crop is a window of its own image
        x = imgs[i]
        hits = [(t, l) for t in range(x.shape[1] - 15) for l in range(x.shape[2] - 15)
                if torch.equal(x[:, t:t + 16, l:l + 16], a[k])]
        assert hits, k
    # positions spread over the whole image: 200 crops of the 40 x 18 image reach both ends
    gen, x, tops = torch.Generator().manual_seed(1), imgs[2], set()
    for _ in range(200):
        y = p.crops(torch.tensor([2]), 16, gen)[0]
        tops |= {t for t in range(25) for l in range(3) if torch.equal(x[:, t:t + 16, l:l + 16], y)}
    assert {0, 24} <= tops


def test_folder_photos_keep_their_aspect_and_are_shrunk_only_above_the_longest_side(tmp_path):
    root = photos(tmp_path / "photos", [(64, 48), (40, 56), (100, 80)])  # (width, height)
    p = load_patches("folder", root=root, max_side=64, channels=3)
    assert isinstance(p.images, list) and [p.size(i) for i in range(3)] == [(48, 64), (56, 40), (51, 64)]
    grey = load_patches("folder", root=root, max_side=64, channels=1)
    assert grey.channels == 1 and grey.size(1) == (56, 40)
    np.testing.assert_array_equal(p.images[0].permute(1, 2, 0).numpy(), np.array(Image.open(root / "0.png")))


def test_a_crop_larger_than_an_image_names_it_and_the_valid_crops(tmp_path):
    root = photos(tmp_path / "photos", [(64, 48), (40, 30)])
    p = load_patches("folder", root=root, max_side=64, channels=3)
    p.check(30)
    with pytest.raises(DataError) as e:
        p.check(32)
    assert str(e.value) == ("data.crop 32 is larger than 1.png (40x30 px after data.resolution): use data.crop 8..30, "
                            "or leave out the smaller images")


def test_centre_crops_are_the_same_window_of_every_image():
    x = torch.arange(2 * 1 * 7 * 9, dtype=torch.float32).view(2, 1, 7, 9)
    assert torch.equal(center_crops(x, 4), x[..., 1:5, 2:6])
    with pytest.raises(DataError, match="use data.crop 8..7"):
        center_crops(x, 8)


def test_folder_domains_for_patch_training_keep_each_photo_whole(tmp_path):
    from raygan.data.patch_sources import load_patch_domains

    photos(tmp_path / "trainA", [(64, 48), (40, 56)])
    photos(tmp_path / "trainB", [(30, 90)])
    a, b = load_patch_domains("folder", root=tmp_path, split="train", max_side=60, channels=3)
    assert (a.name, b.name, a.class_names) == ("trainA", "trainB", ["trainA", "trainB"])
    assert [a.size(i) for i in range(len(a))] == [(45, 60), (56, 40)] and b.size(0) == (60, 20)
    assert b.labels.tolist() == [1]
    with pytest.raises(DataError, match=r"larger than trainB/0.png \(20x60 px after data.resolution\): use data.crop 8..20"):
        b.check(24)
