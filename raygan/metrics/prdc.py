"""k-NN manifold metrics on features: precision/recall and density/coverage.

Precision/recall (Kynkäänniemi et al. 2019): each sample of a set gets a ball whose radius is
the distance to its k-th nearest neighbour in that set (itself excluded). Precision = share
of fake samples inside at least one real ball; recall = share of real samples inside at
least one fake ball.

Density/coverage (Naeem et al. 2020), real balls only, k-th neighbour radius:
density = (1 / (k M)) Σ_fake #{real balls containing it}; coverage = share of real samples
whose ball holds at least one fake sample.

"Inside" is `distance <= radius` throughout (the closed balls of the precision/recall paper).
Distances come from torch.cdist in row chunks, so 10k x 10k sets need ~chunk x N floats at a
time, never N x N. They are computed in float64 on features centred on the real mean: a
constant shift of every feature cannot change a result (in float32, |x|^2 + |y|^2 - 2xy loses
the small distances to cancellation once the features sit far from the origin).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from raygan.metrics.stats import ArrayLike

CHUNK = 1024


def _t(x: ArrayLike, device=None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.detach().to(torch.float64)
    return t.to(device) if device is not None else t


def _centred(real: ArrayLike, fake: ArrayLike) -> Tuple[torch.Tensor, torch.Tensor]:
    r = _t(real)
    f = _t(fake, r.device)
    mu = r.mean(dim=0, keepdim=True)
    return r - mu, f - mu


def knn_radii(x: torch.Tensor, k: int, chunk: Optional[int] = None) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row (N,)."""
    chunk = chunk or CHUNK
    n = x.shape[0]
    if n <= k:
        raise ValueError(f"need more than k={k} samples for k-NN radii, have {n}")
    out = []
    for i in range(0, n, chunk):
        d = torch.cdist(x[i : i + chunk], x)
        # the k+1-th smallest counts the row itself (distance 0) as the first
        out.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def _ball_hits(points: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor, chunk: Optional[int] = None):
    """For each point: number of balls (centers, radii) that contain it (M,)."""
    chunk = chunk or CHUNK
    out = []
    for i in range(0, points.shape[0], chunk):
        d = torch.cdist(points[i : i + chunk], centers)
        out.append((d <= radii[None, :]).sum(dim=1))
    return torch.cat(out)


def _covered(centers: torch.Tensor, radii: torch.Tensor, points: torch.Tensor, chunk: Optional[int] = None):
    """For each center: whether its ball holds at least one point (N,) bool."""
    chunk = chunk or CHUNK
    out = []
    for i in range(0, centers.shape[0], chunk):
        d = torch.cdist(centers[i : i + chunk], points)
        out.append(d.min(dim=1).values <= radii[i : i + chunk])
    return torch.cat(out)


def precision_recall(real: ArrayLike, fake: ArrayLike, k: int = 3) -> Tuple[float, float]:
    """(precision, recall) of fake features against real features, k-NN balls."""
    r, f = _centred(real, fake)
    precision = (_ball_hits(f, r, knn_radii(r, k)) > 0).double().mean()
    recall = (_ball_hits(r, f, knn_radii(f, k)) > 0).double().mean()
    return float(precision), float(recall)


def density_coverage(real: ArrayLike, fake: ArrayLike, k: int = 5) -> Tuple[float, float]:
    """(density, coverage) of fake features against real features, k-NN balls on real only."""
    r, f = _centred(real, fake)
    radii = knn_radii(r, k)
    density = _ball_hits(f, r, radii).double().sum() / (k * f.shape[0])
    coverage = _covered(r, radii, f).double().mean()
    return float(density), float(coverage)
