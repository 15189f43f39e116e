"""Conditional PatchGAN discriminator (pix2pix's `NLayerDiscriminator`), at any size.

Input: the condition and the image concatenated on channels, (N, in_channels, H, W) in [-1, 1]
(for super-resolution the task upsamples the low-resolution condition to H x W first).
Layers: 4x4 stride-2 conv (no norm), `n_layers - 1` more 4x4 stride-2 convs with norm, one
4x4 stride-1 conv with norm (all LeakyReLU 0.2; widths ndf * min(2^i, 8)), then a 4x4
stride-1 conv to one logit per patch: output (N, 1, h', w').

Receptive field of one logit, walking back from it: 4 px, 7 after the two stride-1 layers,
then r -> 2r + 2 per stride-2 layer: n_layers 1 -> 16 px, 2 -> 34 px, 3 -> 70 px (pix2pix's
70x70 at 256 px). Default: the n whose RF is closest to half the training resolution (28/32 px: 1,
i.e. 16 px patches; 64 px: 2; 256 px: 4), so D judges local texture, not the whole image.
`receptive_field(n)` computes it from the layer list. Size rule: any input size (each stride-2
conv floors an odd size), as long as one logit is left: size // 2^n_layers - 2 >= 1, i.e. at
least 6 px for n_layers 1; 96 px gets n_layers 2 (22x22 logits), 160 px 3, 256 px 4 (14x14).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from raygan.errors import ConfigError
from raygan.models.layers import apply_spectral_norm
from raygan.models.networks import DISCRIMINATORS
from raygan.models.i2i_parts import check_norm, init_pix2pix, make_norm, positive_int


def layer_plan(n_layers: int) -> List[Tuple[int, int]]:
    """(kernel, stride) of every conv, input to output."""
    return [(4, 2)] * n_layers + [(4, 1), (4, 1)]


def receptive_field(n_layers: int) -> int:
    """Side in pixels of the input region one output logit sees."""
    r = 1
    for k, s in reversed(layer_plan(n_layers)):
        r = (r - 1) * s + k
    return r


#: the smallest input with one logit at n_layers = 1 (two stride-1 convs after one halving)
MIN_SIZE = 6


def max_layers(resolution: int) -> int:
    """The most stride-2 layers that leave at least one logit at `resolution` px (0: none do)."""
    n, size = 0, resolution
    while size // 2 - 2 >= 1:
        n, size = n + 1, size // 2
    return n


def default_layers(resolution: int) -> int:
    return min(range(1, 6), key=lambda n: (abs(receptive_field(n) - resolution / 2), n))


@DISCRIMINATORS.register("patchgan")
class PatchGAN(nn.Module):
    """(N, in_channels, H, W) -> (N, 1, h', w') logits, one per receptive-field patch."""

    who = "discriminator 'patchgan'"

    def __init__(self, *, in_channels: int, resolution: int, spectral_norm: bool = False, ndf: int = 32,
                 n_layers: Optional[int] = None, norm: Optional[str] = None):
        super().__init__()
        positive_int(self.who, "in_channels", in_channels)
        positive_int(self.who, "resolution", resolution)
        ndf = positive_int(self.who, "ndf", ndf)
        if not isinstance(spectral_norm, bool):
            raise ConfigError(f"{self.who}: spectral_norm must be true or false, got {spectral_norm!r}")
        n_layers = default_layers(resolution) if n_layers is None else positive_int(self.who, "n_layers", n_layers)
        norm = ("none" if spectral_norm else "batch") if norm is None else check_norm(self.who, norm)
        if spectral_norm and norm == "batch":
            raise ConfigError(f"{self.who}: norm 'batch' cannot be combined with spectral_norm; use 'instance' or 'none'")
        size = resolution
        for _ in range(n_layers):
            size //= 2
        if size - 2 < 1:
            most = max_layers(resolution)
            raise ConfigError(
                f"{self.who}: n_layers {n_layers} leaves no output at {resolution} px (receptive field "
                f"{receptive_field(n_layers)} px); "
                + (f"choose n_layers 1 to {most}" if most else f"use a resolution of at least {MIN_SIZE} px")
            )
        self.in_channels, self.n_layers = in_channels, n_layers
        bias = norm != "batch"
        widths = [ndf * min(2**i, 8) for i in range(n_layers + 1)]
        layers: List[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(widths[i - 1], widths[i], 4, stride, 1, bias=bias), make_norm(norm, widths[i]),
                       nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(init_pix2pix)
        if spectral_norm:
            apply_spectral_norm(self)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self.who} expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self.net(x).float()
