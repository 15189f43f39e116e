"""DCGAN (Radford et al. 2016) laid out as in pytorch/examples `dcgan/main.py`: the readable
baseline, same layers, same N(0, 0.02) init, so its known results carry over.

Resolution sets the stack: 28 px generates 7->14->28, every other size (32, 64, 128, 256)
starts at 4x4 and doubles up to it; the discriminator mirrors it, halving down to 4x4 (7x7).

Channel schedule (DCGAN's, capped as pix2pix caps its widths at 8x): widths halve as resolution
doubles, G's last hidden stage (at R/2) has `ngf` channels and no stage more than 8 * ngf; D's
first stage (at R/2) has `ndf`, doubling per halving, at most 8 * ndf. At 28-64 px this is exactly
pytorch/examples' stack (64 px: 8, 4, 2, 1 x ngf at 4, 8, 16, 32 px); at 128 px the widths are
8, 8, 4, 2, 1 x ngf, at 256 px 8, 8, 8, 4, 2, 1 x ngf, so each doubling past 64 px adds one
8ngf -> 8ngf 4x4 layer to G and to D (4.2M weights at ngf 64) instead of multiplying the count by 4:
G 3.58M / 7.77M / 11.97M and D 2.77M / 6.96M / 11.16M at 64 / 128 / 256 px (ngf = ndf = 64, RGB).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

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

#: no stage wider than this many times ngf / ndf
WIDTH_CAP = 8


def plan(resolution: int, base: int) -> Tuple[int, List[int]]:
    """(spatial size at the bottom of the stack, widths of the hidden stages from the bottom up):
    the stage at spatial size s has base * min(WIDTH_CAP, resolution / (2 s)) channels."""
    start = 7 if resolution == 28 else 4
    sizes = []
    s = start
    while s < resolution:
        sizes.append(s)
        s *= 2
    return start, [base * min(WIDTH_CAP, resolution // (2 * s)) for s in sizes]


def _width(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"architecture 'dcgan': {name} must be a positive int, got {value!r}")
    return value


def init_weights(m: nn.Module) -> None:
    """pytorch/examples init: conv N(0, 0.02); BN weight N(1, 0.02), bias 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, ConditionalBatchNorm) and m.num_classes:
        nn.init.normal_(m.gamma.weight, 1.0, 0.02)
        nn.init.zeros_(m.beta.weight)


class Generator(nn.Module):
    """ConvTranspose + BN + ReLU stack halving the width at each 2x step; tanh output.
    Conditional: the label enters as an embedding beside z (LabelInput) and through
    per-class BN at every layer."""

    def __init__(self, *, resolution: int, channels: int, z_dim: int, num_classes: int = 0, ngf: int = 64):
        super().__init__()
        ngf = _width(ngf, "ngf")
        self.z_dim, self.num_classes = z_dim, num_classes
        self.resolution, self.channels = resolution, channels
        start, widths = plan(resolution, ngf)  # 64 px: 8, 4, 2, 1 x ngf at 4, 8, 16, 32 px
        self.label_input = LabelInput(num_classes, z_dim)
        self.convs = nn.ModuleList([nn.ConvTranspose2d(self.label_input.out_dim, widths[0], start, 1, 0, bias=False)])
        self.convs.extend(nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False) for a, b in zip(widths, widths[1:]))
        self.norms = nn.ModuleList(ConditionalBatchNorm(w, num_classes) for w in widths)
        self.to_image = nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        require_labels(y, self.num_classes, "dcgan generator")
        h = self.label_input(z, y).view(z.shape[0], -1, 1, 1)
        for conv, norm in zip(self.convs, self.norms):
            h = F.relu(norm(conv(h), y))
        return torch.tanh(self.to_image(h))


class Discriminator(nn.Module):
    """Strided conv + (BN) + LeakyReLU(0.2) stack doubling the width; a valid conv gives
    the logit. `norm` defaults to "bn", and to "none" under spectral norm."""

    def __init__(
        self,
        *,
        resolution: int,
        channels: int,
        num_classes: int = 0,
        spectral_norm: bool = False,
        ndf: int = 64,
        norm: Optional[str] = None,
        class_head: bool = False,
    ):
        super().__init__()
        ndf = _width(ndf, "ndf")
        if norm is None:
            norm = "none" if spectral_norm else "bn"
        if norm not in ("bn", "none"):
            raise ConfigError(f"architecture 'dcgan': discriminator norm must be 'bn' or 'none', got {norm!r}")
        if norm == "bn" and spectral_norm:
            raise ConfigError("architecture 'dcgan': discriminator norm 'bn' cannot be combined with spectral_norm")
        self.num_classes, self.resolution, self.channels = num_classes, resolution, channels
        start, widths = plan(resolution, ndf)
        widths = widths[::-1]  # 64 px: 1, 2, 4, 8 x ndf at 32, 16, 8, 4 px
        bias = norm == "none"  # with BN a conv bias is redundant (pytorch/examples has none)
        self.convs = nn.ModuleList([nn.Conv2d(channels, widths[0], 4, 2, 1, bias=bias)])
        self.convs.extend(nn.Conv2d(a, b, 4, 2, 1, bias=bias) for a, b in zip(widths, widths[1:]))
        # as in pytorch/examples, no BN on the first layer (it would normalise raw pixels)
        self.norms = nn.ModuleList(
            nn.BatchNorm2d(w) if norm == "bn" and i > 0 else nn.Identity() for i, w in enumerate(widths)
        )
        self.head = nn.Conv2d(widths[-1], 1, start, 1, 0, bias=bias)
        self.projection = Projection(num_classes, widths[-1]) if num_classes else None
        self.classifier = ClassHead(num_classes, widths[-1], "dcgan") if class_head else None
        self.apply(init_weights)
        if spectral_norm:
            apply_spectral_norm(self)

    @property
    def blocks(self) -> List[nn.Module]:
        """Input side first: each strided conv with its norm (what FreezeD freezes, raygan.models.transfer)."""
        return [nn.ModuleList([conv, norm]) for conv, norm in zip(self.convs, self.norms)]

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, classes: bool = False):
        """The logit; with `classes=True` also the class head's logits (AC-GAN)."""
        require_labels(y, self.num_classes, "dcgan discriminator")
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = F.leaky_relu(norm(conv(h)), 0.2)
        return conditional_output(self.head(h).flatten(), h.mean(dim=(2, 3)), y, self.projection,
                                  self.classifier, classes)


make = ARCHITECTURES.register("dcgan")(pair_factory("dcgan", Generator, Discriminator))
