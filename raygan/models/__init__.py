"""Generator/discriminator pairs by name, so a config or an Optuna search picks one.

Every architecture is one `make(*, resolution, channels, z_dim, num_classes=0,
spectral_norm=False, g=None, d=None) -> (G, D)`; `g`/`d` are extra constructor kwargs.
G(z, y=None) -> images in [-1, 1]; D(x, y=None) -> (N,) float logits. num_classes > 0
gives conditional BN in G and a projection discriminator.

Tables: ARCHITECTURES (raygan.models.architectures) and the image-to-image GENERATORS /
DISCRIMINATORS (raygan.models.networks). Every module of this package is imported below, so the
`register` decorators in them fill the tables: a new network is one new module here.
"""
from raygan.models.architectures import ARCHITECTURES, build_models
from raygan.models.layers import CHANNELS, RESOLUTIONS
from raygan.registry import import_modules

import_modules(__name__, __path__)

__all__ = ["ARCHITECTURES", "CHANNELS", "RESOLUTIONS", "build_models"]
