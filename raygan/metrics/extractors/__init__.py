"""Feature extractors by name: `inception` (the TF-ported FID Inception) and `fmnist-cnn`.

The table, base class and `build_extractor` are in raygan.metrics.extractors.base; every module
of this package is imported below, so an `@EXTRACTORS.register("name")` class in a new module
here is a new extractor.
"""
from raygan.metrics.extractors.base import EXTRACTORS, Extractor, build_extractor, sha256_file
from raygan.registry import import_modules

import_modules(__name__, __path__)

__all__ = ["EXTRACTORS", "Extractor", "build_extractor", "sha256_file"]
