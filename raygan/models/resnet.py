"""SNGAN ResNet generator/discriminator (Miyato et al. 2018), block for block as in
mimicry's `sngan_32`/`sngan_64` (and its projection cGAN when num_classes > 0).

Width `ch`: at 28/32 px every stage has `ch` channels (SNGAN-CIFAR uses 256 in G, 128 in D).
From 64 px up the channel schedule of SNGAN/BigGAN: widths halve as resolution doubles, capped
at 16 ch; G's stage at spatial size s has ch * min(16, R / s) channels (the last, at R, has ch)
and D mirrors it (its first block, R -> R/2, has ch, doubling per halving, at most 16 ch):
  64 px:  G 16, 8, 4, 2, 1 x ch at 4..64 px; D five down-blocks to 2x2 (mimicry's SNGAN-64 at ch=64)
  128 px: G 16, 16, 8, 4, 2, 1 x ch; D five down-blocks to 4x4 and one at 4x4 (mimicry's SNGAN-128)
  256 px: G 16, 16, 16, 8, 4, 2, 1 x ch; D six down-blocks to 4x4 and one at 4x4 (BigGAN-256's
          depth; BigGAN keeps 8 ch at 32 px where this keeps 16).
The default 64 keeps CPU runs affordable at 28-64 px; at 128/256 px use ch 16-32 (the presets do).
"""
from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import ConfigError
from raygan.models.architectures import ARCHITECTURES
from raygan.models.layers import (
    ClassHead,
    ConditionalBatchNorm,
    LabelInput,
    Projection,
    apply_spectral_norm,
    conditional_output,
    pair_factory,
    require_labels,
)

WIDTH_CAP = 16  # no stage wider than 16 ch (64 px and up)


def _start(resolution: int) -> int:
    """G's spatial size before the first up-block."""
    return 7 if resolution == 28 else 4


def _widths(resolution: int, ch: int) -> List[int]:
    """Channel widths from the lowest resolution upwards (G reads it forwards, D backwards)."""
    if isinstance(ch, bool) or not isinstance(ch, int) or ch < 1:
        raise ConfigError(f"architecture 'resnet': ch must be a positive int, got {ch!r}")
    if resolution >= 64:
        sizes = [4 * 2**i for i in range(resolution.bit_length() - 2)]  # 4, 8, ..., resolution
        return [ch * min(WIDTH_CAP, resolution // s) for s in sizes]
    return [ch] * (3 if resolution == 28 else 4)


def _init(conv: nn.Module, gain: float) -> nn.Module:
    """mimicry/SNGAN init: xavier-uniform, gain sqrt(2) inside residual branches, 1 elsewhere."""
    nn.init.xavier_uniform_(conv.weight, gain)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GBlock(nn.Module):
    """BN-ReLU-up-conv3x3-BN-ReLU-conv3x3, plus a learnable 1x1 shortcut on the upsampled input."""

    def __init__(self, cin: int, cout: int, num_classes: int = 0):
        super().__init__()
        self.b1 = ConditionalBatchNorm(cin, num_classes)
        self.c1 = _init(nn.Conv2d(cin, cout, 3, 1, 1), math.sqrt(2))
        self.b2 = ConditionalBatchNorm(cout, num_classes)
        self.c2 = _init(nn.Conv2d(cout, cout, 3, 1, 1), math.sqrt(2))
        self.shortcut = _init(nn.Conv2d(cin, cout, 1, 1, 0), 1.0)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.c1(_up(F.relu(self.b1(x, y))))
        h = self.c2(F.relu(self.b2(h, y)))
        # a 1x1 conv commutes with nearest upsampling: convolve first, on 4x fewer pixels
        return h + _up(self.shortcut(x))


class DBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3 (-avgpool) with a 1x1 shortcut when shape changes.

    `optimized` is SNGAN's first block: no ReLU on raw pixels, and the shortcut pools
    before its 1x1 conv.
    """

    def __init__(self, cin: int, cout: int, downsample: bool, optimized: bool = False):
        super().__init__()
        self.downsample, self.optimized = downsample, optimized
        self.c1 = _init(nn.Conv2d(cin, cout, 3, 1, 1), math.sqrt(2))
        self.c2 = _init(nn.Conv2d(cout, cout, 3, 1, 1), math.sqrt(2))
        learnable = optimized or downsample or cin != cout
        self.shortcut = _init(nn.Conv2d(cin, cout, 1, 1, 0), 1.0) if learnable else None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.optimized else F.relu(x)
        h = self._pool(self.c2(F.relu(self.c1(h))))
        if self.optimized:
            s = self.shortcut(self._pool(x))
        elif self.shortcut is not None:
            s = self._pool(self.shortcut(x))
        else:
            s = x
        return h + s


class Generator(nn.Module):
    """Linear z -> start x start x width, residual up-blocks, BN-ReLU-conv3x3-tanh."""

    def __init__(self, *, resolution: int, channels: int, z_dim: int, num_classes: int = 0, ch: int = 64):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.resolution, self.channels = resolution, channels
        widths = _widths(resolution, ch)
        self.start = _start(resolution)
        self.label_input = LabelInput(num_classes, z_dim)  # the label beside z, and per-class BN in every block
        self.linear = _init(nn.Linear(self.label_input.out_dim, self.start * self.start * widths[0]), 1.0)
        self.blocks = nn.ModuleList(GBlock(a, b, num_classes) for a, b in zip(widths, widths[1:]))
        self.norm = ConditionalBatchNorm(widths[-1], num_classes)
        self.to_image = _init(nn.Conv2d(widths[-1], channels, 3, 1, 1), 1.0)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        require_labels(y, self.num_classes, "resnet generator")
        h = self.linear(self.label_input(z, y)).view(z.shape[0], -1, self.start, self.start)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.to_image(F.relu(self.norm(h, y))))


class Discriminator(nn.Module):
    """Optimized first block, residual down-blocks, ReLU, global sum pooling, linear head
    (+ projection term). No BatchNorm: SNGAN's D is meant to run under spectral norm."""

    def __init__(
        self,
        *,
        resolution: int,
        channels: int,
        num_classes: int = 0,
        spectral_norm: bool = False,
        ch: int = 64,
        class_head: bool = False,
    ):
        super().__init__()
        self.num_classes, self.resolution, self.channels = num_classes, resolution, channels
        widths = _widths(resolution, ch)[::-1]
        if resolution == 64:  # five halvings: 64 -> 2 (mimicry's SNGAN-64)
            downs = [True] * 5
        elif resolution > 64:  # halvings down to 4x4, then one block at 4x4 (SNGAN-128, BigGAN)
            downs = [True] * (len(widths) - 1) + [False]
        else:  # SNGAN-CIFAR: two halvings then two blocks at 8x8 (7x7 for 28 px)
            downs = [True, True] + [False] * (len(widths) - 2)
        blocks = [DBlock(channels, widths[0], downsample=True, optimized=True)]
        blocks += [DBlock(a, b, d) for a, b, d in zip(widths, widths[1:] + [widths[-1]], downs[1:])]
        self.blocks = nn.ModuleList(blocks)
        self.head = _init(nn.Linear(widths[-1], 1), 1.0)
        self.projection = Projection(num_classes, widths[-1]) if num_classes else None
        self.classifier = ClassHead(num_classes, widths[-1], "resnet") if class_head else None
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, classes: bool = False):
        require_labels(y, self.num_classes, "resnet discriminator")
        h = x
        for block in self.blocks:
            h = block(h)
        h = F.relu(h).sum(dim=(2, 3))
        return conditional_output(self.head(h).squeeze(1), h, y, self.projection, self.classifier, classes)


make = ARCHITECTURES.register("resnet")(pair_factory("resnet", Generator, Discriminator))
