"""Pixel degradations: Gaussian noise, salt-and-pepper, Gaussian blur, bicubic downsampling, JPEG.

All take and return float (N, C, H, W) in [0, 1] and leave the mask alone. Parameters
written as ``[lo, hi]`` are drawn uniformly per image (see raygan.degradations.base).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from raygan.degradations.base import DEGRADATIONS, Degradation, Draws, Range, Value

Pair = Tuple[torch.Tensor, Optional[torch.Tensor]]


def _per_image(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


@DEGRADATIONS.register("noise")
class GaussianNoise(Degradation):
    """Additive white Gaussian noise, independent per pixel and channel: x + sigma * n,
    sigma on the [0, 1] scale (sigma 0.1 ~ 25.5 on the 0..255 scale), then clipped to [0, 1]
    (`clip=False` keeps the values, for measuring sigma exactly)."""

    name = "noise"

    def __init__(self, sigma: Value = 0.5, clip: bool = True):
        self.sigma = Range(self.name, "sigma", sigma, 0.0, 10.0)
        if not isinstance(clip, bool):
            raise self.fail(f"clip must be true or false, got {clip!r}")
        self.clip = clip

    def apply(self, x: torch.Tensor, mask: Optional[torch.Tensor], draws: Draws) -> Pair:
        sigma = _per_image(self.sigma.draw(draws), x)
        n = draws.randn(*x.shape[1:]).to(device=x.device, dtype=x.dtype)
        y = x + sigma * n
        return (y.clamp(0, 1) if self.clip else y), mask

    def params(self) -> Dict[str, Any]:
        return {"sigma": self.sigma.to_json(), "clip": self.clip}


@DEGRADATIONS.register("salt-pepper")
class SaltPepper(Degradation):
    """Impulse noise: a fraction `amount` of pixel locations is replaced, all channels alike,
    half by 1 (salt) and half by 0 (pepper), as skimage's `random_noise('s&p')` with
    salt_vs_pepper 0.5 but per location rather than per channel value."""

    name = "salt-pepper"

    def __init__(self, amount: Value = 0.1):
        self.amount = Range(self.name, "amount", amount, 0.0, 1.0)

    def apply(self, x: torch.Tensor, mask: Optional[torch.Tensor], draws: Draws) -> Pair:
        amount = _per_image(self.amount.draw(draws), x)
        u = draws.rand(1, *x.shape[2:]).to(device=x.device, dtype=x.dtype)
        y = torch.where(u < amount / 2, torch.ones_like(x), x)
        y = torch.where((u >= amount / 2) & (u < amount), torch.zeros_like(x), y)
        return y, mask

    def params(self) -> Dict[str, Any]:
        return {"amount": self.amount.to_json()}


def gaussian_kernels(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """(N, size) normalised 1-D Gaussian kernels, one per sigma, on the grid torchvision's
    `gaussian_blur` uses (taps at -size//2 .. size//2)."""
    half = (size - 1) * 0.5
    t = torch.linspace(-half, half, size, dtype=torch.float64)
    k = torch.exp(-0.5 * (t[None] / sigma.to(torch.float64)[:, None]) ** 2)
    return k / k.sum(dim=1, keepdim=True)


@DEGRADATIONS.register("blur")
class GaussianBlur(Degradation):
    """Isotropic Gaussian blur with reflect padding (as torchvision's `gaussian_blur`).
    `kernel_size` (odd) defaults to 2 * ceil(3 * max sigma) + 1, fixed for the op so a
    sigma range changes only the weights."""

    name = "blur"

    def __init__(self, sigma: Value = 1.0, kernel_size: Optional[int] = None):
        self.sigma = Range(self.name, "sigma", sigma, 0.0, 100.0)
        if self.sigma.lo <= 0:
            raise self.fail(f"sigma must be > 0, got {sigma!r}")
        if kernel_size is None:
            kernel_size = 2 * math.ceil(3 * self.sigma.max()) + 1
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise self.fail(f"kernel_size must be an odd positive int, got {kernel_size!r}")
        self.kernel_size = kernel_size

    def out_size(self, size: int, channels: int) -> int:
        if self.kernel_size // 2 >= size:
            raise self.fail(f"kernel_size {self.kernel_size} is too large for a {size}-px image (reflect padding)")
        return size

    def apply(self, x: torch.Tensor, mask: Optional[torch.Tensor], draws: Draws) -> Pair:
        n, c, h, w = x.shape
        k = gaussian_kernels(self.sigma.draw(draws), self.kernel_size).to(device=x.device, dtype=x.dtype)
        k = k.repeat_interleave(c, dim=0)  # (N*C, size): one kernel per image, shared by its channels
        p = self.kernel_size // 2
        y = F.pad(x.reshape(1, n * c, h, w), (p, p, p, p), mode="reflect")
        y = F.conv2d(y, k[:, None, :, None], groups=n * c)  # vertical
        y = F.conv2d(y, k[:, None, None, :], groups=n * c)  # horizontal
        return y.reshape(n, c, h, w), mask

    def params(self) -> Dict[str, Any]:
        return {"sigma": self.sigma.to_json(), "kernel_size": self.kernel_size}


@DEGRADATIONS.register("downsample")
class Downsample(Degradation):
    """Bicubic downsampling by an integer `factor` (2 or 4) with antialiasing
    (`F.interpolate(mode="bicubic", antialias=True)`, equal to PIL's BICUBIC resize), clipped
    to [0, 1]. The standard synthetic super-resolution degradation (BasicSR's bicubic sets)."""

    name = "downsample"

    def __init__(self, factor: int = 4):
        if factor not in (2, 4) or isinstance(factor, bool):
            raise self.fail(f"factor must be 2 or 4, got {factor!r}")
        self.factor = factor
        self.scale = factor

    def out_size(self, size: int, channels: int) -> int:
        if size % self.factor:
            raise self.fail(
                f"x{self.factor} does not divide a {size}-px image; use a resolution divisible by {self.factor}"
            )
        return size // self.factor

    def apply(self, x: torch.Tensor, mask: Optional[torch.Tensor], draws: Draws) -> Pair:
        if mask is not None:  # the pipeline forbids this order; a bug if it happens
            raise RuntimeError("downsample after a mask op")
        h, w = x.shape[-2:]
        if h % self.factor or w % self.factor:
            raise self.fail(f"x{self.factor} does not divide a {h}x{w} image")
        size = (h // self.factor, w // self.factor)
        y = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        return y.clamp(0, 1), mask

    def params(self) -> Dict[str, Any]:
        return {"factor": self.factor}


@DEGRADATIONS.register("jpeg")
class Jpeg(Degradation):
    """JPEG compression at `quality` (1..100) with torchvision.io's libjpeg: the image is
    rounded to uint8, encoded and decoded (one image at a time, on the CPU)."""

    name = "jpeg"

    def __init__(self, quality: Value = 30):
        self.quality = Range(self.name, "quality", quality, 1, 100, integer=True)

    def out_size(self, size: int, channels: int) -> int:
        if channels not in (1, 3):
            raise self.fail(f"JPEG needs 1 or 3 channels, got {channels}")
        return size

    def apply(self, x: torch.Tensor, mask: Optional[torch.Tensor], draws: Draws) -> Pair:
        from torchvision.io import decode_jpeg, encode_jpeg

        q = self.quality.draw(draws).long().tolist()
        u8 = (x.detach() * 255).round().clamp(0, 255).to(torch.uint8).cpu()
        out = [decode_jpeg(encode_jpeg(img, quality=qi)) for img, qi in zip(u8, q)]
        y = torch.stack(out).to(device=x.device, dtype=x.dtype) / 255 if out else x
        return y, mask

    def params(self) -> Dict[str, Any]:
        return {"quality": self.quality.to_json()}
