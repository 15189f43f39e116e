"""SRResNet-style super-resolution generator (Ledig et al. 2017; BasicSR's MSRResNet layout).

conv3 -> `blocks` residual blocks (conv3-ReLU-conv3 + skip; no BatchNorm by default, as
BasicSR/EDSR found BN harmful for SR; `norm="batch"` gives Ledig's original) -> one
(conv3 to 4x width, PixelShuffle(2), LeakyReLU 0.1) step per factor 2 -> conv3 -> conv3 to
the output, plus the bilinearly upsampled input (global residual, as MSRResNet). The result
is clamped to [-1, 1] with a straight-through gradient (forward clamps, backward is the
identity), so D never sees out-of-range fakes and the L1 gradient is not cut off.

Input: the low-resolution image (N, C, h, w) in [-1, 1]; output (N, C, scale*h, scale*w).
Fully convolutional: any input size. `resolution` is the output (clean) size, so it must be a
multiple of `scale` (the low-resolution input is resolution / scale px): 96, 160, 256 at x4 work.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import ConfigError
from raygan.models.networks import GENERATORS
from raygan.models.i2i_parts import check_norm, init_pix2pix, make_norm, nearest_multiples, positive_int


class _ResBlock(nn.Module):
    def __init__(self, nf: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(nf, nf, 3, 1, 1), make_norm(norm, nf), nn.ReLU(),
            nn.Conv2d(nf, nf, 3, 1, 1), make_norm(norm, nf),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@GENERATORS.register("srresnet")
class SRResNet(nn.Module):
    """(N, in_channels, h, w) -> (N, out_channels, scale*h, scale*w), both in [-1, 1]."""

    who = "generator 'srresnet'"

    def __init__(self, *, in_channels: int, out_channels: int, resolution: int, scale: int = 4,
                 nf: int = 32, blocks: int = 8, norm: str = "none"):
        super().__init__()
        positive_int(self.who, "in_channels", in_channels)
        positive_int(self.who, "out_channels", out_channels)
        positive_int(self.who, "resolution", resolution)
        nf = positive_int(self.who, "nf", nf)
        blocks = positive_int(self.who, "blocks", blocks)
        check_norm(self.who, norm)
        if scale not in (2, 4) or isinstance(scale, bool):
            raise ConfigError(f"{self.who}: scale must be 2 or 4, got {scale!r}")
        if resolution % scale:
            raise ConfigError(f"{self.who}: resolution {resolution} is not divisible by the scale x{scale}; "
                              f"choose a multiple of {scale} (nearest: {nearest_multiples(resolution, scale)})")
        self.in_channels, self.out_channels, self.scale = in_channels, out_channels, scale
        self.head = nn.Conv2d(in_channels, nf, 3, 1, 1)
        self.body = nn.Sequential(*[_ResBlock(nf, norm) for _ in range(blocks)])
        self.body_out = nn.Sequential(nn.Conv2d(nf, nf, 3, 1, 1), make_norm(norm, nf))
        ups = []
        for _ in range(scale.bit_length() - 1):  # log2(scale) x2 steps
            ups += [nn.Conv2d(nf, nf * 4, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.1)]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Sequential(nn.Conv2d(nf, nf, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(nf, out_channels, 3, 1, 1))
        self.apply(init_pix2pix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self.who} expects (N, {self.in_channels}, h, w), got {tuple(x.shape)}")
        h = F.leaky_relu(self.head(x), 0.1)
        h = h + self.body_out(self.body(h))
        y = self.tail(self.up(h))
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        if base.shape[1] != y.shape[1]:  # grey -> RGB or similar: the mean channel as the base
            base = base.mean(dim=1, keepdim=True).expand_as(y)
        y = y + base
        return y + (y.clamp(-1, 1) - y).detach()
