"""Full-reference restoration metrics: PSNR (dB), SSIM, and PSNR over the masked pixels.

Protocol (BasicSR's, which published SR/denoising numbers use):
* images float (N, C, H, W) in [0, 1], data range 1, computed in float64, per image then averaged;
* RGB is scored on the Y channel of ITU-R BT.601, Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255
  (`y_channel=False` scores all channels: PSNR on their joint MSE, SSIM averaged over channels);
* `crop` pixels are removed at every border first (= the scale factor for super-resolution);
* SSIM as Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, population
  (co)variances, averaged over the valid (unpadded) window positions.

Equal to scikit-image's `peak_signal_noise_ratio` and `structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1)` (tests check 1e-4 on real images).
Hand-written rather than torchmetrics: its SSIM averages over a reflect-padded border, which
scikit-image and BasicSR do not. PSNR of identical images is +inf (as both references); with
`quantised=True` (8-bit images, as the evaluators score them) an exact match instead scores as if
one pixel were one grey level off, 10 log10(255^2 N) dB for N scored values: the best finite score
an 8-bit image can have, so a per-image mean stays finite (inpainting a hole that lies on a flat
background can be exact) and a perfect image never counts for less than a near-perfect one.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from raygan.errors import ConfigError
from raygan.metrics.registry import METRICS

Y_WEIGHTS = (65.481 / 255, 128.553 / 255, 24.966 / 255)
Y_OFFSET = 16 / 255
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
DIRECTIONS = {"psnr": "max", "ssim": "max", "psnr_masked": "max"}


def to_y(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) BT.601 luma in [16/255, 235/255]."""
    w = torch.tensor(Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True) + Y_OFFSET


def _prepare(x: torch.Tensor, crop: int, y_channel: bool) -> torch.Tensor:
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ConfigError(f"restoration metrics expect (N, 1 or 3, H, W) images, got shape {tuple(x.shape)}")
    x = x.to(torch.float64)
    if y_channel and x.shape[1] == 3:
        x = to_y(x)
    if crop:
        if 2 * crop >= min(x.shape[-2:]):
            raise ConfigError(f"border crop {crop} leaves nothing of a {x.shape[-2]}x{x.shape[-1]} image")
        x = x[..., crop:-crop, crop:-crop]
    return x


def _pair(pred: torch.Tensor, target: torch.Tensor, crop: int, y_channel: bool):
    if pred.shape != target.shape:
        raise ConfigError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 0:
        raise ConfigError(f"border crop must be a non-negative int, got {crop!r}")
    return _prepare(pred, crop, y_channel), _prepare(target, crop, y_channel)


def _psnr_from_mse(mse: torch.Tensor, count: Optional[torch.Tensor] = None) -> torch.Tensor:
    """mse 0 -> +inf, or with `count` (values scored per image) -> the one-level-off floor."""
    if count is not None:
        floor = (1.0 / 255) ** 2 / count.to(mse.dtype).clamp(min=1)
        mse = torch.where(mse == 0, floor, mse)
    return 10 * torch.log10(1.0 / mse)


def psnr(pred: torch.Tensor, target: torch.Tensor, *, crop: int = 0, y_channel: bool = True,
         quantised: bool = False) -> torch.Tensor:
    """(N,) PSNR in dB, data range 1 (`quantised`: an exact match is finite, see the module doc)."""
    p, t = _pair(pred, target, crop, y_channel)
    mse = ((p - t) ** 2).flatten(1).mean(dim=1)
    count = torch.full_like(mse, p[0].numel()) if quantised else None
    return _psnr_from_mse(mse, count)


def masked_psnr(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, crop: int = 0, y_channel: bool = True,
    quantised: bool = False,
) -> torch.Tensor:
    """(N,) PSNR over the pixels where `mask` (N, 1, H, W) is 1 (the holes), all channels of
    those pixels; NaN for an image without masked pixels."""
    p, t = _pair(pred, target, crop, y_channel)
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != pred.shape[0] or mask.shape[-2:] != pred.shape[-2:]:
        raise ConfigError(f"mask {tuple(mask.shape)} does not fit images {tuple(pred.shape)}; expected (N, 1, H, W)")
    m = (mask > 0.5).to(torch.float64)
    if crop:
        m = m[..., crop:-crop, crop:-crop]
    se = (((p - t) ** 2) * m).flatten(1).sum(dim=1)
    count = m.flatten(1).sum(dim=1) * p.shape[1]
    mse = torch.where(count > 0, se / count.clamp(min=1), torch.full_like(se, math.nan))
    return _psnr_from_mse(mse, count if quantised else None)


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    half = SSIM_WINDOW // 2
    t = torch.arange(-half, half + 1, dtype=dtype, device=device)
    g = torch.exp(-(t**2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, *, crop: int = 0, y_channel: bool = True) -> torch.Tensor:
    """(N,) mean SSIM (per channel, then averaged over channels), data range 1."""
    p, t = _pair(pred, target, crop, y_channel)
    n, c, h, w = p.shape
    if min(h, w) < SSIM_WINDOW:
        raise ConfigError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} px after cropping, got {h}x{w}")
    g = _gaussian_window(p.dtype, p.device)
    kv, kh = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def blur(z: torch.Tensor) -> torch.Tensor:  # separable valid filtering, per channel
        return F.conv2d(F.conv2d(z, kv, groups=c), kh, groups=c)

    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return s.flatten(1).mean(dim=1)


def average(values: torch.Tensor) -> float:
    """Mean of per-image values, skipping NaN (images where a metric is undefined)."""
    v = values.detach().to(torch.float64).flatten()
    v = v[~torch.isnan(v)]
    return float(v.mean()) if v.numel() else math.nan


def restoration_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    crop: int = 0,
    y_channel: bool = True,
    mask: Optional[torch.Tensor] = None,
    quantised: bool = False,
) -> Dict[str, torch.Tensor]:
    """Per-image {"psnr", "ssim"} (+ "psnr_masked" with a mask), each (N,) float64."""
    out = {"psnr": psnr(pred, target, crop=crop, y_channel=y_channel, quantised=quantised),
           "ssim": ssim(pred, target, crop=crop, y_channel=y_channel)}
    if mask is not None:
        out["psnr_masked"] = masked_psnr(pred, target, mask, crop=crop, y_channel=y_channel, quantised=quantised)
    return out


def protocol(channels: int, *, crop: int = 0, y_channel: bool = True) -> Dict[str, Any]:
    """JSON-able description logged beside every value (with the degradation's describe())."""
    return {
        "data_range": 1.0,
        "colour": "y-bt601" if (y_channel and channels == 3) else ("grey" if channels == 1 else "rgb"),
        "border_crop": crop,
        "ssim": {"window": "gaussian", "size": SSIM_WINDOW, "sigma": SSIM_SIGMA, "k1": SSIM_K1, "k2": SSIM_K2},
        "averaging": "per image, then mean",
        "exact_match": "scored as one grey level off at one pixel: 10 log10(255^2 N) dB, N values scored",
    }


# ---------------------------------------------------------------------- registry entries
# Kind "restoration": fn(pred, clean, *, mask, crop) -> per-image (N,) float64 on 8-bit output
# ([0, 1] float64); the repair evaluator averages them (`average`).
@METRICS.register("psnr", kind="restoration", keys={"psnr": "max"})
def psnr_metric(pred: torch.Tensor, clean: torch.Tensor, *, mask: Optional[torch.Tensor] = None,
                crop: int = 0) -> torch.Tensor:
    return psnr(pred, clean, crop=crop, quantised=True)


@METRICS.register("ssim", kind="restoration", keys={"ssim": "max"})
def ssim_metric(pred: torch.Tensor, clean: torch.Tensor, *, mask: Optional[torch.Tensor] = None,
                crop: int = 0) -> torch.Tensor:
    return ssim(pred, clean, crop=crop)


@METRICS.register("psnr_masked", kind="restoration", keys={"psnr_masked": "max"}, needs_mask=True)
def masked_psnr_metric(pred: torch.Tensor, clean: torch.Tensor, *, mask: Optional[torch.Tensor] = None,
                       crop: int = 0) -> torch.Tensor:
    if mask is None:
        raise ConfigError("metric psnr_masked needs a mask degradation (box or strokes)")
    return masked_psnr(pred, clean, mask, crop=crop, quantised=True)
