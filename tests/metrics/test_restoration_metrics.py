"""PSNR/SSIM follow the published protocol: equal to scikit-image on real images, BasicSR's Y channel."""
import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from raygan.degradations import build_degradations
from raygan.errors import ConfigError
from raygan.metrics.restoration import average, masked_psnr, protocol, psnr, restoration_metrics, ssim, to_y
from conftest import needs_fmnist

WANG = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)
DEGRADE = ["noise:sigma=0.1", "blur:sigma=1.5", "jpeg:quality=20", "downsample:factor=2", "strokes"]


def _nchw(a: np.ndarray) -> torch.Tensor:
    t = torch.tensor(a, dtype=torch.float32)
    return t[None, None] if a.ndim == 2 else t.permute(2, 0, 1)[None]


def real_images():
    """Real photographs from scikit-image, resized to 64-96 px (grey and RGB)."""
    return [
        _nchw(resize(data.camera(), (64, 64), anti_aliasing=True)),
        _nchw(resize(data.moon()[100:400, 100:400], (80, 80), anti_aliasing=True)),
        _nchw(resize(data.astronaut(), (96, 96), anti_aliasing=True)),
        _nchw(resize(data.coffee()[:, 100:500], (64, 64), anti_aliasing=True)),
    ]


def degraded_pairs():
    for img in real_images():
        for spec in DEGRADE:
            p = build_degradations(spec)
            d = p.evaluate(img, [0]).image
            if p.scale > 1:  # bring back to full size so both are comparable
                d = torch.nn.functional.interpolate(d, scale_factor=p.scale, mode="bicubic").clamp(0, 1)
            yield img, d


def _np(x: torch.Tensor) -> np.ndarray:
    a = x[0].double().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def _sk_y(x: torch.Tensor) -> np.ndarray:
    a = _np(x)
    return a if a.ndim == 2 else rgb2ycbcr(a)[..., 0] / 255  # skimage's BT.601 == BasicSR's


def test_psnr_and_ssim_equal_scikit_image_on_real_images():
    n = 0
    for clean, deg in degraded_pairs():
        for crop in (0, 4):
            ref_c = _sk_y(clean)[crop:clean.shape[-2] - crop, crop:clean.shape[-1] - crop]
            ref_d = _sk_y(deg)[crop:clean.shape[-2] - crop, crop:clean.shape[-1] - crop]
            assert abs(psnr(deg, clean, crop=crop).item() - peak_signal_noise_ratio(ref_c, ref_d, data_range=1)) < 1e-4
            assert abs(ssim(deg, clean, crop=crop).item() - structural_similarity(ref_c, ref_d, **WANG)) < 1e-4
            n += 1
        if clean.shape[1] == 3:  # all channels: joint MSE, SSIM averaged over channels
            a, b = _np(clean), _np(deg)
            assert abs(psnr(deg, clean, y_channel=False).item() - peak_signal_noise_ratio(a, b, data_range=1)) < 1e-4
            ref = structural_similarity(a, b, channel_axis=2, **WANG)
            assert abs(ssim(deg, clean, y_channel=False).item() - ref) < 1e-4
    assert n == 40


def test_values_are_not_trivial():
    """The pairs above span a real range, so equality with scikit-image means something."""
    p = [psnr(d, c).item() for c, d in degraded_pairs()]
    s = [ssim(d, c).item() for c, d in degraded_pairs()]
    assert min(p) < 22 and max(p) > 28
    assert min(s) < 0.6 and max(s) > 0.85


def test_y_channel_is_bt601_as_basicsr():
    x = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [1, 1, 1]]).T.reshape(1, 3, 5, 1)
    y = to_y(x).flatten()
    expect = torch.tensor([16 + 65.481, 16 + 128.553, 16 + 24.966, 16, 235.0]) / 255
    assert torch.allclose(y, expect, atol=1e-6)


def test_batched_per_image_equals_one_by_one():
    imgs = torch.cat([real_images()[0], real_images()[1][..., :64, :64]])
    deg = build_degradations("noise:sigma=0.05..0.3").evaluate(imgs, [0, 1]).image
    batched = restoration_metrics(deg, imgs, crop=2)
    for i in range(2):
        assert torch.allclose(batched["psnr"][i], psnr(deg[i:i + 1], imgs[i:i + 1], crop=2)[0])
        assert torch.allclose(batched["ssim"][i], ssim(deg[i:i + 1], imgs[i:i + 1], crop=2)[0])
    assert batched["psnr"].shape == (2,) and abs(batched["psnr"][0] - batched["psnr"][1]) > 1
    assert average(batched["psnr"]) == pytest.approx(batched["psnr"].mean().item())


@pytest.mark.parametrize("e", [0.1, 0.03, 0.004])
def test_psnr_of_a_constant_error(e):
    clean = real_images()[0] * 0.5 + 0.25  # stays in range after +- e
    assert psnr(clean + e, clean, y_channel=False).item() == pytest.approx(10 * math.log10(1 / e**2), abs=1e-4)
    rgb = real_images()[2] * 0.5 + 0.25  # on Y, an error e on every channel is (219/255) e
    ey = e * (65.481 + 128.553 + 24.966) / 255
    assert psnr(rgb + e, rgb).item() == pytest.approx(10 * math.log10(1 / ey**2), abs=1e-4)
    assert psnr(clean, clean).item() == math.inf


def test_masked_psnr_equals_psnr_on_the_masked_pixels_by_hand():
    clean = torch.cat([real_images()[2], real_images()[2].flip(-1)])
    out = build_degradations("noise:sigma=0.1,strokes", seed=2).evaluate(clean, [0, 1])
    m = out.mask
    got = masked_psnr(out.image, clean, m, y_channel=False)
    for i in range(2):
        sel = m[i, 0].bool()
        err = (out.image[i][:, sel].double() - clean[i][:, sel].double()) ** 2
        assert got[i].item() == pytest.approx(10 * math.log10(1 / err.mean().item()), abs=1e-6)
    # on Y with a crop, as psnr
    y_got = masked_psnr(out.image, clean, m, crop=3)[0].item()
    sel = m[0, 0, 3:-3, 3:-3].bool()
    err = (to_y(out.image.double())[0, 0, 3:-3, 3:-3][sel] - to_y(clean.double())[0, 0, 3:-3, 3:-3][sel]) ** 2
    assert y_got == pytest.approx(10 * math.log10(1 / err.mean().item()), abs=1e-6)
    # holes are filled with grey: the masked PSNR is far below the full-image PSNR
    full = psnr(out.image, clean, y_channel=False)
    assert (got < full - 3).all()
    # no masked pixels: undefined (NaN), skipped by average
    none = masked_psnr(clean, clean, torch.zeros_like(m))
    assert torch.isnan(none).all() and math.isnan(average(none))
    assert average(torch.tensor([20.0, math.nan, 30.0])) == 25.0


def test_quantised_exact_match_scores_as_one_grey_level_off_at_one_pixel():
    clean = (real_images()[0] * 255).round() / 255  # an 8-bit image
    n = clean[0].numel()
    exact = psnr(clean, clean, quantised=True).item()
    assert exact == pytest.approx(10 * math.log10(255**2 * n), abs=1e-9)
    one_off = clean.clone()
    flat = one_off.view(-1)
    k = int((flat < 0.5).nonzero()[0])
    flat[k] += 1 / 255
    assert psnr(one_off, clean, quantised=True).item() == pytest.approx(exact, abs=1e-5)  # the same score
    worse = one_off.clone().view(-1)
    worse[int((worse < 0.5).nonzero()[1])] += 1 / 255
    assert psnr(worse.view_as(clean), clean, quantised=True).item() < exact
    # inexact images: unchanged; masked: N = the masked values of that image
    noisy = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    assert psnr(noisy, clean, quantised=True).item() == psnr(noisy, clean).item()
    m = torch.zeros(1, 1, *clean.shape[-2:])
    m[..., :4, :5] = 1
    assert masked_psnr(clean, clean, m, quantised=True).item() == pytest.approx(10 * math.log10(255**2 * 20))
    assert math.isfinite(average(torch.cat([psnr(clean, clean, quantised=True), psnr(noisy, clean)])))
    assert "exact_match" in protocol(1)


def test_protocol_and_bad_inputs():
    assert protocol(3, crop=4)["colour"] == "y-bt601" and protocol(1)["colour"] == "grey"
    assert protocol(3, y_channel=False)["colour"] == "rgb" and protocol(3, crop=4)["border_crop"] == 4
    x = torch.rand(2, 1, 32, 32)
    with pytest.raises(ConfigError, match="differ in shape"):
        psnr(x, x[:, :, :16])
    with pytest.raises(ConfigError, match="border crop 16 leaves nothing"):
        psnr(x, x, crop=16)
    with pytest.raises(ConfigError, match="SSIM needs images of at least 11x11"):
        ssim(x, x, crop=11)
    with pytest.raises(ConfigError, match="expect \\(N, 1 or 3, H, W\\)"):
        psnr(x[:, :, 0], x[:, :, 0])
    with pytest.raises(ConfigError, match="does not fit images"):
        masked_psnr(x, x, torch.ones(2, 1, 16, 16))


@needs_fmnist
def test_fashion_mnist_noisy_input_matches_the_measured_reference():
    """ANCHORS: on Fashion-MNIST test, 28 px, sigma 0.2 noisy input 16.0 dB / SSIM 0.54; sigma 0.5 9.3 dB."""
    from raygan.data import load_dataset

    x = load_dataset("fashion-mnist", split="test", resolution=28, limit=1000).images.float() / 255
    for sigma, db, s in ((0.2, 16.0, 0.54), (0.5, 9.3, 0.26)):
        d = build_degradations(f"noise:sigma={sigma}").evaluate(x, range(len(x))).image
        assert average(psnr(d, x)) == pytest.approx(db, abs=0.1)
        assert average(ssim(d, x)) == pytest.approx(s, abs=0.01)


def test_torchmetrics_matches_only_after_cropping_its_padded_border():
    """Why SSIM is hand-written: torchmetrics averages over a reflect-padded border."""
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    clean, deg = next(degraded_pairs())
    tm_mean, tm_map = tm_ssim(deg.double(), clean.double(), data_range=1.0, gaussian_kernel=True, sigma=1.5,
                              kernel_size=11, return_full_image=True)
    ours = ssim(deg, clean).item()
    assert abs(tm_map[..., 5:-5, 5:-5].mean().item() - ours) < 1e-6
    assert abs(tm_mean.item() - ours) > 1e-3
