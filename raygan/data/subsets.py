"""Class-balanced subsets for low-data experiments: exactly k images per class, from a seed.

Rule (stable across torch/numpy versions, devices, ranks, processes and call order): every
image index i gets the key splitmix64(splitmix64(seed) + i); within each class the k
indices with the smallest keys are kept (ties, practically impossible, by index); the
result is sorted. A class's pick depends on nothing but the seed and which indices carry
that class, and subsets are nested: for one seed the k = 10 subset lies inside the k = 50
one, so a larger K only adds images.

A low-data experiment must train everything it trains (the GAN, every classifier, any
reference statistic it learns from) on these indices and nothing else; evaluation uses the
separate test split. `subset_protocol` records which subset a number was made on.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Dict, Optional, Union

import numpy as np
import torch

from raygan.data.dataset import ImageDataset
from raygan.errors import ConfigError, DataError

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
RULE = "splitmix64-rank-v1"


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele et al.), vectorised over uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def subset_keys(n: int, seed: int) -> np.ndarray:
    """The rank key of each index 0..n-1 under `seed` (uint64)."""
    s = _splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        return _splitmix64(np.arange(n, dtype=np.uint64) + s)


def per_class_indices(labels: torch.Tensor, k: int, seed: int, num_classes: Optional[int] = None) -> torch.Tensor:
    """Sorted int64 CPU indices of exactly `k` images of every class 0..num_classes-1
    (default: 0..max(label)); DataError when a class has fewer than k."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"data.per_class must be a positive integer, got {k!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"subset seed must be an integer, got {seed!r}")
    y = labels.detach().cpu().numpy().astype(np.int64).reshape(-1)
    if y.size == 0:
        raise DataError("cannot pick a per-class subset of an empty dataset")
    if num_classes is None:
        num_classes = int(y.max()) + 1
    keys = subset_keys(y.size, seed)
    idx = np.arange(y.size, dtype=np.int64)
    picked = []
    for c in range(num_classes):
        members = idx[y == c]
        if members.size < k:
            raise DataError(f"class {c} has {members.size} images, fewer than data.per_class={k}")
        order = np.lexsort((members, keys[members]))  # by key, then by index
        picked.append(members[order[:k]])
    return torch.from_numpy(np.sort(np.concatenate(picked)))


def indices_hash(indices: torch.Tensor) -> str:
    """sha256 (16 hex) of the sorted int64 indices: names a subset in a protocol."""
    a = np.ascontiguousarray(indices.detach().cpu().numpy().astype(np.int64))
    return hashlib.sha256(a.tobytes()).hexdigest()[:16]


def subset_protocol(indices: torch.Tensor, k: int, seed: int) -> Dict[str, Union[str, int]]:
    """What a number made on this subset logs beside it."""
    return {"per_class": int(k), "subset_seed": int(seed), "subset_rule": RULE,
            "subset_size": int(indices.numel()), "subset_hash": indices_hash(indices)}


def per_class_subset(ds: ImageDataset, k: int, seed: int) -> ImageDataset:
    """The dataset restricted to `per_class_indices(ds.labels, k, seed, ds.num_classes)`."""
    keep = per_class_indices(ds.labels, k, seed, ds.num_classes).to(ds.images.device)
    return dataclasses.replace(
        ds, images=ds.images[keep], labels=ds.labels[keep],
        source=f"{ds.source} [per_class={k}, seed={seed}]",
    )
