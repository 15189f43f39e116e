"""Small pieces the image-to-image networks share (U-Net, SRResNet, PatchGAN): norm choice,
option checks that fail with one line, and pix2pix's N(0, 0.02) init."""
from __future__ import annotations

from typing import Any

from torch import nn

from raygan.errors import ConfigError

NORMS = ("batch", "instance", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":  # pix2pix/CycleGAN's instance norm: no affine, no running stats
        return nn.InstanceNorm2d(channels)
    return nn.Identity()


def check_norm(who: str, norm: str) -> str:
    if norm not in NORMS:
        raise ConfigError(f"{who}: norm must be one of {', '.join(NORMS)}, got {norm!r}")
    return norm


def positive_int(who: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{who}: {name} must be a positive int, got {value!r}")
    return value


def nearest_multiples(value: int, step: int, minimum: int = 0) -> str:
    """'28 or 32': the multiples of `step` (at least `minimum`) either side of `value`, for an error."""
    lo, hi = max(minimum, value // step * step), max(minimum, -(-value // step) * step)
    return str(hi) if lo in (hi, 0) else f"{lo} or {hi}"


def init_pix2pix(m: nn.Module) -> None:
    """pix2pix `init_weights('normal', 0.02)`: conv N(0, 0.02), bias 0; BN weight N(1, 0.02), bias 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
