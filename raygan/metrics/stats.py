"""Feature statistics: mean and covariance in float64, whole-array or accumulated.

`feature_stats` takes all features at once. `FeatureStats` accumulates count, sum and
sum of outer products batch by batch on the features' device, so a DDP caller can
all-reduce (SUM) its three tensors and let rank 0 compute the Fréchet distance:

    stats = FeatureStats()
    for batch in shard:
        stats.update(extractor(batch)["features"])
    for t in stats.tensors():          # live tensors: reduced in place
        torch.distributed.all_reduce(t)
    mu, sigma = stats.mu_sigma()
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def as_numpy64(x: ArrayLike) -> np.ndarray:
    """A float64 numpy copy/view of an array or tensor (any device)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def feature_stats(features: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D), both float64, of features (N, D)."""
    x = as_numpy64(features)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"feature_stats needs features of shape (N>=2, D), got {x.shape}")
    mu = x.mean(axis=0)
    xc = x - mu
    sigma = xc.T @ xc / (x.shape[0] - 1)
    return mu, sigma


class FeatureStats:
    """Running count, sum and sum of outer products of features, in float64.

    The three accumulators live on the device of the first batch. `tensors()` returns
    them (not copies) so `all_reduce(SUM)` on each merges ranks in place;
    `from_tensors` builds an instance from such a list. With `keep=True` the raw
    features are also kept (float32, on CPU) for KID / precision-recall / density-coverage,
    which need samples rather than moments.
    """

    def __init__(self, dim: Optional[int] = None, keep: bool = False, device: Union[str, torch.device, None] = None):
        self.dim = dim
        self.keep = keep
        self._kept: List[torch.Tensor] = []
        self.count: Optional[torch.Tensor] = None  # (1,) float64: float so it all-reduces with the sums
        self.sum: Optional[torch.Tensor] = None  # (D,)
        self.sum_outer: Optional[torch.Tensor] = None  # (D, D)
        if dim is not None:
            self._alloc(dim, torch.device(device or "cpu"))

    def _alloc(self, dim: int, device: torch.device) -> None:
        self.dim = dim
        self.count = torch.zeros(1, dtype=torch.float64, device=device)
        self.sum = torch.zeros(dim, dtype=torch.float64, device=device)
        self.sum_outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    def update(self, features: ArrayLike) -> "FeatureStats":
        x = features if isinstance(features, torch.Tensor) else torch.as_tensor(np.asarray(features))
        x = x.detach()
        if x.ndim != 2:
            raise ValueError(f"FeatureStats.update needs (N, D) features, got {tuple(x.shape)}")
        if self.sum is None:
            self._alloc(x.shape[1], x.device)
        elif x.shape[1] != self.dim:
            raise ValueError(f"feature dim changed: {self.dim} -> {x.shape[1]}")
        x64 = x.to(self.sum.device, torch.float64)
        self.count += x64.shape[0]
        self.sum += x64.sum(dim=0)
        self.sum_outer.addmm_(x64.T, x64)
        if self.keep:
            self._kept.append(x.to("cpu", torch.float32))
        return self

    @property
    def n(self) -> int:
        return 0 if self.count is None else int(round(float(self.count.item())))

    def tensors(self) -> List[torch.Tensor]:
        """[count (1,), sum (D,), sum_outer (D, D)]: the live accumulators, for all_reduce(SUM)."""
        if self.sum is None:
            raise ValueError("FeatureStats is empty: call update() first (or construct with dim=)")
        return [self.count, self.sum, self.sum_outer]

    @classmethod
    def from_tensors(cls, tensors: Sequence[torch.Tensor], features: Optional[ArrayLike] = None) -> "FeatureStats":
        count, s, so = tensors
        out = cls(keep=features is not None)
        out.dim = int(s.shape[0])
        out.count = count.detach().to(torch.float64).reshape(1).clone()
        out.sum = s.detach().to(torch.float64).clone()
        out.sum_outer = so.detach().to(torch.float64).clone()
        if features is not None:
            f = features if isinstance(features, torch.Tensor) else torch.as_tensor(np.asarray(features))
            out._kept = [f.detach().to("cpu", torch.float32)]
        return out

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Add another accumulator's sums (and kept features) into this one."""
        if other.sum is None:
            return self
        if self.sum is None:
            self._alloc(other.dim, other.sum.device)
        for mine, theirs in zip(self.tensors(), other.tensors()):
            mine += theirs.to(mine.device)
        if self.keep:
            self._kept.extend(other._kept)
        return self

    def mu_sigma(self) -> Tuple[np.ndarray, np.ndarray]:
        """Mean (D,) and unbiased covariance (D, D) as float64 numpy arrays."""
        n = self.n
        if n < 2:
            raise ValueError(f"need at least 2 samples for a covariance, have {n}")
        s = self.sum.to("cpu").numpy()
        so = self.sum_outer.to("cpu").numpy()
        mu = s / n
        sigma = (so - n * np.outer(mu, mu)) / (n - 1)
        return mu, (sigma + sigma.T) / 2

    @property
    def features(self) -> Optional[torch.Tensor]:
        """The kept raw features (N, D) float32 on CPU, or None when keep=False."""
        if not self.keep:
            return None
        if not self._kept:
            return torch.zeros(0, self.dim or 0)
        if len(self._kept) > 1:
            self._kept = [torch.cat(self._kept)]
        return self._kept[0]

    def __repr__(self) -> str:
        return f"FeatureStats(n={self.n}, dim={self.dim}, keep={self.keep})"
