"""Degradations measure what they claim, and the evaluation set is fixed per image."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data
from skimage.transform import resize

from raygan.degradations import DEGRADATIONS, build_degradations, parse_spec
from raygan.errors import ConfigError

ALL_RANDOM = [
    {"name": "blur", "sigma": [0.5, 1.5]},
    {"name": "noise", "sigma": [0.05, 0.3]},
    {"name": "salt-pepper", "amount": [0.0, 0.05]},
    {"name": "jpeg", "quality": [30, 90]},
    {"name": "strokes"},
    {"name": "box", "area": [0.05, 0.1]},
]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def camera(size=64):
    img = resize(data.camera(), (size, size), anti_aliasing=True)
    return torch.tensor(img, dtype=torch.float32)[None, None]


def grey(n=64, c=1, size=32, value=0.5):
    return torch.full((n, c, size, size), value)


def test_registry_holds_every_op():
    assert DEGRADATIONS.names() == sorted(["noise", "salt-pepper", "blur", "downsample", "jpeg", "box", "strokes"])


def test_noise_has_the_requested_sigma():
    y = build_degradations("noise:sigma=0.1").train(grey(), gen()).image  # 0.5 +- 5 sigma: no clipping
    assert abs((y - 0.5).std().item() - 0.1) < 0.002
    assert abs((y - 0.5).mean().item()) < 0.002
    y = build_degradations([{"name": "noise", "sigma": 0.5, "clip": False}]).train(grey(), gen()).image
    assert abs((y - 0.5).std().item() - 0.5) < 0.01
    y = build_degradations("noise:sigma=0.5").train(grey(), gen()).image  # clipped to [0, 1]
    assert y.min() == 0 and y.max() == 1


def test_noise_range_is_drawn_per_image():
    y = build_degradations("noise:sigma=0.05..0.15").train(grey(n=200), gen()).image
    per_image = (y - 0.5).flatten(1).std(dim=1)
    assert per_image.min() > 0.045 and per_image.max() < 0.155
    assert per_image.min() < 0.06 and per_image.max() > 0.14  # the range is actually used


def test_salt_and_pepper_fraction_and_channels():
    y = build_degradations("salt-pepper:amount=0.2").train(grey(c=3), gen()).image
    assert abs((y == 1).float().mean().item() - 0.1) < 0.005
    assert abs((y == 0).float().mean().item() - 0.1) < 0.005
    assert ((y == 0.5) | (y == 0) | (y == 1)).all()
    assert (y == y[:, :1]).all()  # a location is replaced in all channels alike


def test_blur_equals_torchvision_and_has_the_sigma():
    from torchvision.transforms.v2.functional import gaussian_blur

    x = camera()
    y = build_degradations("blur:sigma=1.5:kernel_size=9").train(x, gen()).image
    ref = gaussian_blur(x, kernel_size=[9, 9], sigma=[1.5, 1.5])
    assert torch.allclose(y, ref, atol=1e-6)
    # per-image sigma range: an impulse's response has variance sigma^2 per axis
    imp = torch.zeros(50, 1, 33, 33)
    imp[:, :, 16, 16] = 1
    resp = build_degradations("blur:sigma=1..2:kernel_size=15").train(imp, gen()).image[:, 0, 16]
    t = torch.arange(33.0) - 16
    var = (resp * t**2).sum(1) / resp.sum(1)
    assert var.min() > 0.95 and var.max() < 4.05 and var.max() - var.min() > 1.5


def test_downsample_shape_equals_pil_bicubic_and_antialiases():
    x = camera(64)
    y = build_degradations("downsample:factor=4").train(x, gen()).image
    assert y.shape == (1, 1, 16, 16)
    ref = np.asarray(Image.fromarray(x[0, 0].numpy(), mode="F").resize((16, 16), Image.BICUBIC))
    assert np.abs(y[0, 0].numpy() - np.clip(ref, 0, 1)).max() < 1e-5
    assert build_degradations("downsample:factor=2").train(x, gen()).image.shape == (1, 1, 32, 32)
    # a 1-px checkerboard is pure aliasing: antialiased it becomes flat grey, nearest keeps one phase
    cb = ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2).float()[None, None]
    aa = build_degradations("downsample:factor=4").train(cb, gen()).image
    assert abs(aa.mean().item() - 0.5) < 0.01 and aa.std().item() < 0.01
    assert abs(F.interpolate(cb, size=(8, 8), mode="nearest").mean().item() - 0.5) == 0.5
    # period-3 stripes: without antialias bicubic aliases them into a strong pattern
    st = ((torch.arange(32) % 3) == 0).float().expand(32, 32)[None, None].contiguous()
    aa = build_degradations("downsample:factor=4").train(st, gen()).image
    assert aa.std().item() < 0.03
    assert F.interpolate(st, size=(8, 8), mode="bicubic", antialias=False).std().item() > 0.3


def test_jpeg_error_grows_as_quality_falls():
    x = camera(64).expand(1, 3, 64, 64).contiguous()
    mse = [((build_degradations(f"jpeg:quality={q}").train(x, gen()).image - x) ** 2).mean().item()
           for q in (95, 75, 40, 10)]
    assert mse == sorted(mse) and mse[-1] > 4 * mse[0]
    assert mse[0] < 2e-4  # high quality is close to the uint8 rounding
    y = build_degradations("jpeg:quality=50").train(camera(32), gen()).image
    assert y.shape == (1, 1, 32, 32)


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("spec,lo,hi", [("box", 0.1, 0.3), ("strokes", 0.1, 0.4), ("strokes:area=0.3..0.5", 0.3, 0.5),
                                        ("box:area=0.25", 0.25, 0.25)])
def test_masks_cover_the_requested_area(size, spec, lo, hi):
    x = torch.rand(100, 1, size, size)
    out = build_degradations(spec).train(x, gen(size))
    cover = out.mask.mean(dim=(1, 2, 3))
    assert cover.min() >= lo - 1e-9 and cover.max() <= hi + 1e-9
    if lo < hi:
        assert cover.max() - cover.min() > (hi - lo) / 3  # drawn across the range, not stuck at one end
    holes = out.mask.bool().expand_as(x)
    assert (out.image[holes] == 0.5).all()  # documented fill
    assert torch.equal(out.image[~holes], x[~holes])  # known pixels untouched, bitwise
    assert set(out.mask.unique().tolist()) <= {0.0, 1.0}


def test_stroke_masks_are_strokes_not_boxes():
    m = build_degradations("strokes").train(torch.rand(20, 1, 64, 64), gen()).mask[:, 0]
    # a stroke mask's bounding box is much larger than its area (thin, spread out)
    for mi in m:
        ys, xs = torch.nonzero(mi, as_tuple=True)
        bbox = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert mi.sum() < 0.9 * bbox


def test_mask_ops_combine_by_union_and_noise_after_mask_reaches_the_holes():
    x = torch.rand(8, 1, 32, 32)
    a = build_degradations("box:area=0.1", seed=3).evaluate(x, range(8))
    assert (a.mask.sum(dim=(1, 2, 3)) - 102.4).abs().max() <= 6  # 0.1 of 1024 px is no integer box: nearest
    both = build_degradations("box:area=0.1,strokes", seed=3).evaluate(x, range(8))
    assert (both.mask >= a.mask).all() and both.mask.sum() > a.mask.sum()
    noisy = build_degradations("box,noise:sigma=0.1").train(x, gen()).image
    assert noisy.std() > 0  # noise after the mask: holes are noisy too (order is the user's)


def _pipeline():
    return build_degradations(ALL_RANDOM, seed=7)


def test_evaluation_is_fixed_across_runs_batchings_and_shards():
    x = torch.rand(24, 1, 32, 32)
    full = _pipeline().evaluate(x, range(24))
    again = _pipeline().evaluate(x, torch.arange(24))
    assert torch.equal(full.image, again.image) and torch.equal(full.mask, again.mask)
    # batches of 5 and the rest
    parts = [_pipeline().evaluate(x[i:i + 5], range(i, min(i + 5, 24))) for i in range(0, 24, 5)]
    assert torch.equal(torch.cat([p.image for p in parts]), full.image)
    assert torch.equal(torch.cat([p.mask for p in parts]), full.mask)
    # two ranks, DistributedSampler-style interleaved shards, reassembled
    r0 = _pipeline().evaluate(x[0::2], range(0, 24, 2))
    r1 = _pipeline().evaluate(x[1::2], range(1, 24, 2))
    merged = torch.empty_like(full.image)
    merged[0::2], merged[1::2] = r0.image, r1.image
    assert torch.equal(merged, full.image)
    # another seed is another test set; noise actually varies between images
    other = _pipeline().evaluate(x, range(24), seed=8)
    assert not torch.equal(other.image, full.image)
    same = _pipeline().evaluate(x[:1].expand(2, 1, 32, 32), [0, 1])
    assert not torch.equal(same.image[0], same.image[1])


def test_training_draws_come_from_the_generator():
    x = torch.rand(16, 1, 32, 32)
    a = _pipeline().train(x, gen(1))
    b = _pipeline().train(x, gen(1))
    c = _pipeline().train(x, gen(2))
    assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.image, c.image)
    assert not torch.equal(a.image[0], a.image[1])


def test_string_and_list_forms_are_one_spec():
    s = "blur:sigma=1.0,downsample:factor=4,noise:sigma=0..0.05:clip=false"
    lst = [{"name": "blur", "sigma": 1.0}, {"name": "downsample", "factor": 4},
           {"name": "noise", "sigma": [0, 0.05], "clip": False}]
    assert parse_spec(s) == lst
    a, b = build_degradations(s, seed=1), build_degradations(lst, seed=1)
    assert a.describe() == b.describe()
    assert a.scale == 4 and a.check(32, 3) == 8
    d = json.loads(json.dumps(a.describe()))
    assert d["seed"] == 1 and d["scale"] == 4
    assert d["ops"][0] == {"name": "blur", "sigma": 1.0, "kernel_size": 7}
    assert build_degradations("downsample:factor=2,downsample:factor=2").scale == 4
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(a.evaluate(x, range(4)).image, b.evaluate(x, range(4)).image)
    assert build_degradations("noise").has_mask is False and build_degradations("noise,box").has_mask


@pytest.mark.parametrize(
    "spec,resolution,match",
    [
        ("downsample:factor=4", 30, "x4 does not divide a 30-px image"),
        ("downsample:factor=4,downsample:factor=2", 28, "x2 does not divide a 7-px image"),
        ("blur:sigma=6", 16, "kernel_size 37 is too large for a 16-px"),
        ("strokes", 6, "too small for stroke masks"),
    ],
)
def test_check_rejects_what_does_not_fit(spec, resolution, match):
    with pytest.raises(ConfigError, match=match):
        build_degradations(spec).check(resolution, 1)


@pytest.mark.parametrize(
    "spec,match",
    [
        ("nosie", "unknown degradation 'nosie'; choose one of: blur, box, downsample, jpeg, noise, salt-pepper, strokes"),
        ("noise:sgima=0.1", "unknown parameter.*sgima; valid: clip, sigma"),
        ("noise:sigma=0.5..0.1", "lo <= hi"),
        ("noise:sigma=abc", "not a number"),
        ("noise:sigma", "expected key=value"),
        ([{"name": "noise", "sigma": -0.1}], r"sigma must lie in \[0, 10\]"),
        ("downsample:factor=3", "factor must be 2 or 4"),
        ("jpeg:quality=0", r"quality must lie in \[1, 100\]"),
        ("jpeg:quality=50.5", "must be an integer"),
        ("box:area=0", r"strictly inside \(0, 1\)"),
        ("strokes:area=0.2..0.21", "at least 0.02 wide"),
        ("box,downsample", "cannot follow a mask op"),
        ("", "empty; choose from"),
        ([{"sigma": 0.5}], "each op needs a name"),
        (5, "expected a list of ops"),
    ],
)
def test_bad_specs_are_one_line_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match) as e:
        build_degradations(spec)
    assert "\n" not in str(e.value)


def test_bad_seed():
    with pytest.raises(ConfigError, match="seed must be a non-negative int"):
        build_degradations("noise", seed=-1)
