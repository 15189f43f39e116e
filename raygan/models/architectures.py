"""The table of generator/discriminator pairs (`model.arch` of the generate task).

Every architecture is one `make(*, resolution, channels, z_dim, num_classes=0,
spectral_norm=False, g=None, d=None) -> (G, D)` registered here by the module that defines it
(raygan.models.mlp, dcgan, resnet); raygan.models imports every module of the package, so a new
architecture is one new module.
"""
from __future__ import annotations

from typing import Any, Tuple

from torch import nn

from raygan.errors import ConfigError
from raygan.registry import Registry

ARCHITECTURES = Registry("architecture")


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
