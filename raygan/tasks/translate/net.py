"""The translate task's networks: which registered G and D a config names, how they are built,
and `CycleTranslator`, the exported module holding both directions."""
from __future__ import annotations

import torch
from torch import nn

from raygan.errors import ConfigError
from raygan.models.limits import build_network
from raygan.models.networks import DISCRIMINATORS, GENERATORS

DIRECTIONS = ("a2b", "b2a")
DEFAULT_GENERATOR, DEFAULT_DISCRIMINATOR = "resnet-translator", "patchgan"
GENERATION_DEFAULT_ARCH = "dcgan"  # ModelConfig's default, a noise -> image architecture


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return direction


def generator_name(cfg) -> str:
    arch = cfg.model.arch
    return DEFAULT_GENERATOR if arch == GENERATION_DEFAULT_ARCH and arch not in GENERATORS else arch


def discriminator_name(cfg) -> str:
    return cfg.model.d_arch or DEFAULT_DISCRIMINATOR


def build_generator(cfg, channels: int) -> nn.Module:
    G = build_network(GENERATORS, generator_name(cfg), "model.g", "generator", in_channels=channels,
                      out_channels=channels, resolution=cfg.data.train_size, **dict(cfg.model.g))
    G.registry_name = generator_name(cfg)
    return G


def build_discriminator(cfg, channels: int) -> nn.Module:
    D = build_network(DISCRIMINATORS, discriminator_name(cfg), "model.d", "discriminator", in_channels=channels,
                      resolution=cfg.data.train_size, spectral_norm=cfg.model.spectral_norm, **dict(cfg.model.d))
    D.registry_name = discriminator_name(cfg)
    return D


class CycleTranslator(nn.Module):
    """Both directions as one module: `forward(x, direction="a2b")`, x (N, C, H, W) in [-1, 1]
    (any H, W the generator's strides divide). `a2b`/`b2a` are shortcuts."""

    def __init__(self, G_AB: nn.Module, G_BA: nn.Module):
        super().__init__()
        self.G_AB, self.G_BA = G_AB, G_BA

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        return (self.G_AB if check_direction(direction) == "a2b" else self.G_BA)(x)

    def a2b(self, x: torch.Tensor) -> torch.Tensor:
        return self.G_AB(x)

    def b2a(self, x: torch.Tensor) -> torch.Tensor:
        return self.G_BA(x)
