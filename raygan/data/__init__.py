"""Datasets as one uint8 NCHW tensor + labels, found offline first, and their batch order.

    from raygan.data import load_dataset, EpochSampler
    ds = load_dataset("fashion-mnist", resolution=32)        # ImageDataset, uint8 (N, 1, 32, 32)
    sampler = EpochSampler(len(ds), batch_size=64, seed=0)
    batch = ds.images[sampler.next()]

Sources are registered in SOURCES (fashion-mnist, mnist, cifar10, digits, folder, prepared) when this
package is imported (it imports every module of the package, so a new source is one
`@SOURCES.register("name")` function in a new module here): raygan.data.sources holds the
registry and lookup, raygan.data.builtin and raygan.data.folder the sources (where each
looks), raygan.data.dataset the fitting rules.
A prepared dataset (`raygan data prepare`, raygan.data.prepare) is read by index
(raygan.data.prepared) and, when large, streamed to training (raygan.data.streamed).
Augmentation lives in raygan.augment, not here.
"""
from raygan.data.dataset import ImageDataset, fit, fit_channels, fit_resolution
from raygan.data.idx import read_idx, write_idx
from raygan.data.sampler import EpochSampler
from raygan.data.sources import (
    ENV_VAR,
    SOURCES,
    SPLITS,
    describe,
    load_dataset,
)
from raygan.registry import import_modules

import_modules(__name__, __path__)

__all__ = [
    "SOURCES",
    "SPLITS",
    "ENV_VAR",
    "ImageDataset",
    "EpochSampler",
    "load_dataset",
    "describe",
    "fit",
    "fit_resolution",
    "fit_channels",
    "read_idx",
    "write_idx",
]
