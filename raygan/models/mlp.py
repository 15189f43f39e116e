"""The classic dense GAN (Goodfellow et al. 2014 as in the common PyTorch ports).

Without batch statistics by default, so a DDP run's gradients are a plain average of the
per-rank gradients -- the property the distributed tests rely on.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import ConfigError
from raygan.models.architectures import ARCHITECTURES
from raygan.models.layers import (
    ClassHead,
    ConditionalBatchNorm,
    Projection,
    apply_spectral_norm,
    conditional_output,
    pair_factory,
    require_labels,
)


def _hidden(sizes: Sequence[int], who: str) -> list:
    sizes = list(sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ConfigError(f"architecture 'mlp': {who} hidden must be a non-empty list of positive ints, got {sizes}")
    return sizes


class Generator(nn.Module):
    """z -> Linear/LeakyReLU(0.2) stack -> Linear -> tanh image.

    Conditional: one-hot labels concatenated to z (Mirza & Osindero 2014), or with
    `norm="bn"` per-class BatchNorm gamma/beta instead.
    """

    def __init__(
        self,
        *,
        resolution: int,
        channels: int,
        z_dim: int,
        num_classes: int = 0,
        hidden: Sequence[int] = (256, 512, 1024),
        norm: str = "none",
    ):
        super().__init__()
        if norm not in ("none", "bn"):
            raise ConfigError(f"architecture 'mlp': generator norm must be 'none' or 'bn', got {norm!r}")
        hidden = _hidden(hidden, "generator")
        self.z_dim, self.num_classes = z_dim, num_classes
        self.resolution, self.channels = resolution, channels
        self.concat_labels = bool(num_classes) and norm == "none"
        widths = [z_dim + (num_classes if self.concat_labels else 0)] + hidden
        self.linears = nn.ModuleList(nn.Linear(a, b, bias=norm == "none") for a, b in zip(widths, widths[1:]))
        self.norms = (
            nn.ModuleList(ConditionalBatchNorm(b, num_classes, dim=1) for b in hidden) if norm == "bn" else None
        )
        self.out = nn.Linear(hidden[-1], channels * resolution * resolution)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        require_labels(y, self.num_classes, "mlp generator")
        h = z
        if self.concat_labels:
            h = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        for i, linear in enumerate(self.linears):
            h = linear(h)
            if self.norms is not None:
                h = self.norms[i](h, y)
            h = F.leaky_relu(h, 0.2)
        x = torch.tanh(self.out(h))
        return x.view(-1, self.channels, self.resolution, self.resolution)


class Discriminator(nn.Module):
    """Flattened image -> Linear/LeakyReLU(0.2) stack -> one logit (+ projection term)."""

    def __init__(
        self,
        *,
        resolution: int,
        channels: int,
        num_classes: int = 0,
        spectral_norm: bool = False,
        hidden: Sequence[int] = (512, 256),
        class_head: bool = False,
    ):
        super().__init__()
        hidden = _hidden(hidden, "discriminator")
        self.num_classes, self.resolution, self.channels = num_classes, resolution, channels
        widths = [channels * resolution * resolution] + hidden
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.head = nn.Linear(hidden[-1], 1)
        self.projection = Projection(num_classes, hidden[-1]) if num_classes else None
        self.classifier = ClassHead(num_classes, hidden[-1], "mlp") if class_head else None
        if spectral_norm:
            apply_spectral_norm(self)

    @property
    def blocks(self) -> List[nn.Module]:
        """Input side first: the hidden linear layers (what FreezeD freezes, raygan.models.transfer)."""
        return list(self.linears)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, classes: bool = False):
        require_labels(y, self.num_classes, "mlp discriminator")
        h = x.flatten(1)
        for linear in self.linears:
            h = F.leaky_relu(linear(h), 0.2)
        return conditional_output(self.head(h).squeeze(1), h, y, self.projection, self.classifier, classes)


#: dense layers grow with the pixel count (D's first layer alone is C*R*R x 512): small images only
RESOLUTIONS = (28, 32, 64)

make = ARCHITECTURES.register("mlp")(pair_factory("mlp", Generator, Discriminator, RESOLUTIONS))
