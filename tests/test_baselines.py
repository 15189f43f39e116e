"""Classical repair baselines do repair real images, with the conventions of the rest of repair."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from conftest import needs_fmnist
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # bench-only code, tested here
from baselines import BASELINES, estimate_sigma, repair_baseline  # noqa: E402
from raygan.degradations import build_degradations
from raygan.errors import ConfigError
from raygan.metrics.restoration import average, psnr, ssim


def camera(size=128):
    return torch.tensor(resize(data.camera(), (size, size), anti_aliasing=True), dtype=torch.float32)[None, None]


def astronaut(size=96):
    a = resize(data.astronaut(), (size, size), anti_aliasing=True)
    return torch.tensor(a, dtype=torch.float32).permute(2, 0, 1)[None]


def test_registry():
    assert BASELINES.names() == sorted(["identity", "bicubic", "gaussian", "nlm", "tv", "biharmonic", "telea"])


def test_estimate_sigma_recovers_the_noise_level():
    img = camera().numpy()[0].transpose(1, 2, 0).astype(np.float64) * 0.6 + 0.2  # no clipping at these sigmas
    rng = np.random.default_rng(0)
    for sigma in (0.02, 0.05, 0.1, 0.2):
        est = estimate_sigma(img + rng.normal(0, sigma, img.shape))
        assert est == pytest.approx(sigma, rel=0.12)


@pytest.mark.parametrize(
    "image,method,min_gain",  # measured gains: camera +8.2 / +7.4 / +5.9 dB, astronaut +2.8 / +1.2 dB
    [(camera, "nlm", 6.0), (camera, "tv", 5.0), (camera, "gaussian", 4.0), (astronaut, "nlm", 2.0), (astronaut, "tv", 0.5)],
)
def test_denoisers_improve_psnr_on_real_images(image, method, min_gain):
    x = image()
    noisy = build_degradations("noise:sigma=0.1").evaluate(x, [0]).image
    out = repair_baseline(method, noisy)
    assert out.shape == x.shape and out.dtype == x.dtype and 0 <= out.min() and out.max() <= 1
    assert psnr(out, x).item() - psnr(noisy, x).item() > min_gain
    assert ssim(out, x).item() > ssim(noisy, x).item()


def test_nlm_takes_a_known_sigma():
    x = camera()
    noisy = build_degradations("noise:sigma=0.1").evaluate(x, [0]).image
    a, b = repair_baseline("nlm", noisy, sigma=0.1), repair_baseline("nlm", noisy, sigma=0.3)
    assert psnr(a, x).item() > psnr(noisy, x).item() + 5
    assert not torch.equal(a, b)


@pytest.mark.parametrize("method", ["biharmonic", "telea"])
@pytest.mark.parametrize("image", [camera, astronaut])
def test_inpainters_fill_holes_and_keep_known_pixels(method, image):
    x = image()
    d = build_degradations("strokes:area=0.1..0.2").evaluate(x, [0])
    out = repair_baseline(method, d.image, mask=d.mask)
    assert psnr(out, x).item() > psnr(d.image, x).item() + 1.5
    known = (d.mask == 0).expand_as(x)
    tol = 1e-6 if method == "biharmonic" else 0.5 / 255 + 1e-6  # telea works on uint8
    assert (out[known] - d.image[known]).abs().max() <= tol


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_upsampling_for_super_resolution(scale):
    x = camera(64)
    p = build_degradations(f"downsample:factor={scale}")
    lr = p.evaluate(x, [0]).image
    up = repair_baseline("bicubic", lr, scale=scale)
    assert up.shape == x.shape
    assert torch.equal(up, repair_baseline("identity", lr, scale=scale))  # the SR floor is bicubic
    nearest = torch.nn.functional.interpolate(lr, scale_factor=scale, mode="nearest")
    assert psnr(up, x, crop=scale).item() > psnr(nearest, x, crop=scale).item() + 0.5
    # every method is defined for SR (upsample first); a mask at the low resolution is upsampled too
    m = torch.zeros(1, 1, 64 // scale, 64 // scale)
    m[..., 2:5, 2:5] = 1
    assert repair_baseline("biharmonic", lr, scale=scale, mask=m).shape == x.shape


def test_bad_calls_are_config_errors():
    x = torch.rand(2, 1, 32, 32)
    with pytest.raises(ConfigError, match="unknown repair baseline 'nml'; choose one of: bicubic, biharmonic"):
        repair_baseline("nml", x)
    with pytest.raises(ConfigError, match="'telea' needs a mask"):
        repair_baseline("telea", x)
    with pytest.raises(ConfigError, match="mask \\(2, 1, 16, 16\\) does not fit"):
        repair_baseline("biharmonic", x, mask=torch.zeros(2, 1, 16, 16))
    with pytest.raises(ConfigError, match="repair baseline 'gaussian':.*sigma"):
        repair_baseline("gaussian", x, sigma=0.1)
    with pytest.raises(ConfigError, match="expected \\(N, 1 or 3, H, W\\)"):
        repair_baseline("identity", torch.rand(2, 2, 8, 8))


@needs_fmnist
def test_fashion_mnist_gaussian_blur_matches_the_measured_reference():
    """ANCHORS (Fashion-MNIST test, 28 px): Gaussian blur 5x5 gives 17.1 dB / 0.54 at sigma 0.2, 13.2 / 0.36 at 0.5."""
    from raygan.data import load_dataset

    x = load_dataset("fashion-mnist", split="test", resolution=28, limit=500).images.float() / 255
    for sigma, db, s in ((0.2, 17.1, 0.54), (0.5, 13.2, 0.36)):
        noisy = build_degradations(f"noise:sigma={sigma}").evaluate(x, range(len(x))).image
        out = repair_baseline("gaussian", noisy)
        assert average(psnr(out, x)) == pytest.approx(db, abs=0.15)
        assert average(ssim(out, x)) == pytest.approx(s, abs=0.015)
    nlm = repair_baseline("nlm", noisy[:100])
    assert average(psnr(nlm, x[:100])) > average(psnr(noisy[:100], x[:100])) + 3
