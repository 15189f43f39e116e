"""The table of generator/discriminator pairs (`model.arch` of the generate task).

Every architecture is one `make(*, resolution, channels, z_dim, num_classes=0,
spectral_norm=False, g=None, d=None) -> (G, D)` registered here by the module that defines it
(raygan.models.mlp, dcgan, resnet); raygan.models imports every module of the package, so a new
architecture is one new module.
"""
from __future__ import annotations

from typing import Any, Tuple

from torch import nn

from raygan.registry import Registry

ARCHITECTURES = Registry("architecture")


def build_models(arch: str, **kwargs: Any) -> Tuple[nn.Module, nn.Module]:
    """(G, D) for architecture `arch`; unknown names or options raise ConfigError. Both carry
    `registry_name`, so what a run really built can be read back."""
    G, D = ARCHITECTURES.build(arch, **kwargs)
    G.registry_name = D.registry_name = arch
    return G, D
