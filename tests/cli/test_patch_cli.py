"""Patch training and full-size inference through the `raygan` command: a repair model trained on
random crops of a folder of photos of different sizes, scored on its full-size test photos, then
repairing a photo larger than the crop in tiles; and every bad crop or tile as one line + exit 2."""
import functools

import numpy as np
import pytest
from PIL import Image

from helpers import cli as run
from helpers import one_line as _one_line

one_line = functools.partial(_one_line, warnings=True)
skdata = pytest.importorskip("skimage.data")

TRAIN = ["train", "--no-progress", "--set", "task=repair", "--set", "data.name=folder", "--set", "data.root=photos",
         "--set", "data.resolution=64", "--set", "data.crop=16", "--set", "data.channels=3", "--set", "model.arch=unet",
         "--set", "model.g={ngf: 4}", "--set", "model.d={ndf: 4}", "--set", "optim.batch_size=4",
         "--set", "repair.degradations=noise:sigma=0.1", "--set", "train.total_kimg=0.008",
         "--set", "train.tick_kimg=0.008", "--set", "eval.metrics=[psnr]", "--set", "eval.num_samples=2",
         "--set", "eval.final_num_samples=2", "--set", "tracking.enabled=false", "--set", "train.threads=1"]


def photo_folder(root):
    """photos/train: 4 photos of different sizes and aspects (100 x 40 is kept as 64 x 26), photos/test: 2."""
    pics = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket(), skdata.astronaut(),
            skdata.coffee()]
    sizes = [(80, 60), (48, 64), (100, 40), (36, 36), (64, 64), (56, 48)]  # (width, height)
    for i, (a, size) in enumerate(zip(pics, sizes)):
        d = root / ("train" if i < 4 else "test")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).resize(size, Image.BILINEAR).save(d / f"{i}.png")


def test_patch_train_on_photos_then_repair_a_large_photo_in_tiles(in_tmp, capsys):
    photo_folder(in_tmp / "photos")
    code, out, err = run(capsys, *TRAIN, "--run-dir", "rep")
    assert code == 0, err
    assert "folder:test[:2]@64px (full-size)" in " ".join(out.split())  # the protocol says what was scored
    Image.fromarray(skdata.astronaut()).resize((128, 96), Image.BILINEAR).save(in_tmp / "big.png")
    for tile, name in (("0", "one.png"), ("64", "tiled.png")):
        code, out, err = run(capsys, "repair", "--run-dir", "rep", "--in", "big.png", "--out", name, "--tile", tile)
        assert code == 0, err
    one, tiled = (np.array(Image.open(in_tmp / n)).astype(int) for n in ("one.png", "tiled.png"))
    assert one.shape == (96, 128, 3) and np.abs(one - tiled).max() <= 1
    assert "1 image(s) run in 64 px tiles (15 px receptive-field margin" in err
    code, _, err = run(capsys, "repair", "--run-dir", "rep", "--in", "big.png", "--out", "x.png", "--tile", "40")
    one_line(code, err, "--tile 40 is too small for this network")
    assert "use --tile >= 56" in err and not (in_tmp / "x.png").exists()


@pytest.mark.parametrize("extra, pattern", [
    (["data.crop=4"], "data.crop: Input should be greater than or equal to 8"),
    (["data.crop=128"], "data.crop 128 is larger than data.resolution 64 (the images' longer side): use data.crop 8..64"),
    (["data.crop=18", "model.arch=srresnet", "repair.degradations=downsample:factor=4"],
     "data.crop 18 is not divisible by the super-resolution scale 4: use a multiple of 4"),
    (["task=generate", "model.arch=dcgan", "eval.metrics=[fid]"], "data.crop: task 'generate' does not use it (it trains on whole images; patch training is for repair and "
     "translate)"),
])
def test_a_bad_crop_is_one_line_before_anything_is_read(in_tmp, capsys, extra, pattern):
    args = [a for x in extra for a in ("--set", x)]
    code, _, err = run(capsys, *TRAIN, "--run-dir", "bad", *args)
    one_line(code, err, pattern)
    assert not (in_tmp / "bad").exists()


def test_a_crop_larger_than_a_photo_names_it(in_tmp, capsys):
    photo_folder(in_tmp / "photos")
    code, _, err = run(capsys, *TRAIN, "--run-dir", "bad", "--set", "data.crop=40")
    one_line(code, err, "data.crop 40 is larger than 2.png (64x26 px after data.resolution): use data.crop 8..26")
    assert not (in_tmp / "bad" / "checkpoints").exists()
