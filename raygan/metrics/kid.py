"""Kernel Inception Distance: unbiased MMD² with the cubic polynomial kernel, over subsets.

k(x, y) = (x·y / d + 1)^3 (Bińkowski et al. 2018; as in StyleGAN2-ADA and torch-fidelity).
For each of `num_subsets` draws of m = min(subset_size, N_real, N_fake) rows without
replacement from each set:

    MMD² = [Σ_{i≠j} k(x_i,x_j) + Σ_{i≠j} k(y_i,y_j)] / (m(m-1)) - 2 Σ_{i,j} k(x_i,y_j) / m²

Returns the mean and the (population) standard deviation over subsets. The estimator is
unbiased, so for two samples of one distribution it scatters around 0 and can be negative.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from raygan.metrics.stats import ArrayLike


def _as_tensor64(x: ArrayLike) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.detach().to(torch.float64)


def mmd2_cubic(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² between samples x (m, d) and y (m, d) with the cubic kernel."""
    m, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    off = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(off - 2 * kxy.sum() / (m * m))


def kid(
    real_feats: ArrayLike,
    fake_feats: ArrayLike,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> Tuple[float, float]:
    """(mean, std) of the subset MMD² estimates between real and fake features (N, D)."""
    real = _as_tensor64(real_feats)
    fake = _as_tensor64(fake_feats)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"kid: need (N, D) features of one D, got {tuple(real.shape)} and {tuple(fake.shape)}")
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise ValueError("kid: need at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    vals = np.empty(num_subsets)
    for i in range(num_subsets):
        ix = torch.from_numpy(rng.choice(real.shape[0], m, replace=False))
        iy = torch.from_numpy(rng.choice(fake.shape[0], m, replace=False))
        vals[i] = mmd2_cubic(real[ix.to(real.device)], fake[iy.to(fake.device)])
    return float(vals.mean()), float(vals.std())
