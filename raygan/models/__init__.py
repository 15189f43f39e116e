"""Generator/discriminator pairs by name, so a config or an Optuna search picks one.

Every architecture is one `make(*, resolution, channels, z_dim, num_classes=0,
spectral_norm=False, g=None, d=None) -> (G, D)`; `g`/`d` are extra constructor kwargs.
G(z, y=None) -> images in [-1, 1]; D(x, y=None) -> (N,) float logits. num_classes > 0
gives conditional BN in G and a projection discriminator.
"""
from __future__ import annotations

from typing import Any, Tuple

from torch import nn

from raygan.errors import ConfigError
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
    from raygan.models.limits import MAX_CLASSES, build_within_limits, check_options

    for role in ("g", "d"):
        check_options(f"model.{role}", kwargs.get(role) or {})
    classes = kwargs.get("num_classes", 0)
    if isinstance(classes, int) and classes > MAX_CLASSES:
        raise ConfigError(f"architecture '{arch}': {classes} classes (at most {MAX_CLASSES})")
    G, D = build_within_limits(lambda **kw: ARCHITECTURES.build(arch, **kw), kwargs, ("generator", "discriminator"),
                               f"architecture '{arch}'")
    G.registry_name = D.registry_name = arch
    return G, D


__all__ = ["ARCHITECTURES", "CHANNELS", "RESOLUTIONS", "build_models"]
