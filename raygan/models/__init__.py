"""Generator/discriminator pairs by name, so a config or an Optuna search picks one.

Every architecture is one `make(*, resolution, channels, z_dim, num_classes=0,
spectral_norm=False, g=None, d=None) -> (G, D)`; `g`/`d` are extra constructor kwargs.
G(z, y=None) -> images in [-1, 1]; D(x, y=None) -> (N,) float logits. num_classes > 0
gives conditional BN in G and a projection discriminator.
"""
from __future__ import annotations

from typing import Any, Tuple

from torch import nn

from raygan.models import dcgan, mlp, resnet
from raygan.models.layers import CHANNELS, RESOLUTIONS
from raygan.registry import Registry

ARCHITECTURES = Registry("architecture")
ARCHITECTURES.register("mlp")(mlp.make)
ARCHITECTURES.register("dcgan")(dcgan.make)
ARCHITECTURES.register("resnet")(resnet.make)


def build_models(arch: str, **kwargs: Any) -> Tuple[nn.Module, nn.Module]:
    """(G, D) for architecture `arch`; unknown names or options raise ConfigError. Both carry
    `registry_name`, so what a run really built can be read back."""
    G, D = ARCHITECTURES.build(arch, **kwargs)
    G.registry_name = D.registry_name = arch
    return G, D


__all__ = ["ARCHITECTURES", "CHANNELS", "RESOLUTIONS", "build_models"]
