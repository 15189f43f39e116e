"""Fréchet distance between two Gaussians, in float64, via symmetric eigendecompositions.

    FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^½ S2 S1^½)^½)

S1 = V diag(w) V^T (eigh, w clipped at 0) gives A = V diag(sqrt w) with S1 = A A^T.
A^T S2 A is symmetric PSD and has the eigenvalues of S1^½ S2 S1^½ (= those of S1 S2), so
tr((S1^½ S2 S1^½)^½) = sum(sqrt(clip(eigvalsh(A^T S2 A), 0))). One eigh, one eigvalsh and
two matrix products: no scipy.linalg.sqrtm (its `disp=` argument is gone in SciPy 1.18,
and its Schur iteration is several times slower and can return complex noise).
`eigvalsh(S1 @ S2)` would be wrong: that product is not symmetric.
"""
from __future__ import annotations

import numpy as np
import torch

from raygan.metrics.stats import ArrayLike, as_numpy64


def _check(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> None:
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"frechet_distance: shapes do not match: mu1 {mu1.shape}, sigma1 {s1.shape}, "
            f"mu2 {mu2.shape}, sigma2 {s2.shape}"
        )


def _trace_sqrt_product_numpy(s1: np.ndarray, s2: np.ndarray) -> float:
    w, v = np.linalg.eigh(s1)
    a = v * np.sqrt(np.clip(w, 0.0, None))  # S1 = A A^T
    m = a.T @ s2 @ a
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def _trace_sqrt_product_torch(s1: np.ndarray, s2: np.ndarray) -> float:
    t1 = torch.from_numpy(s1)
    t2 = torch.from_numpy(s2)
    w, v = torch.linalg.eigh(t1)
    a = v * w.clamp_min(0).sqrt()
    m = a.T @ t2 @ a
    ev = torch.linalg.eigvalsh((m + m.T) / 2)
    return float(ev.clamp_min(0).sqrt().sum())


_BACKENDS = {"numpy": _trace_sqrt_product_numpy, "torch": _trace_sqrt_product_torch}


def frechet_distance(
    mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike, backend: str = "numpy"
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64.

    `backend` picks the eigensolver ("numpy" or "torch", both float64 on CPU; bench/frechet.py
    compares them). May be slightly negative (~ -1e-10) for identical inputs.
    """
    mu1, mu2 = as_numpy64(mu1), as_numpy64(mu2)
    s1, s2 = as_numpy64(sigma1), as_numpy64(sigma2)
    if mu1.ndim == 0:  # 1-D Gaussians given as scalars
        mu1, mu2, s1, s2 = mu1.reshape(1), mu2.reshape(1), s1.reshape(1, 1), s2.reshape(1, 1)
    _check(mu1, s1, mu2, s2)
    try:
        trace_sqrt = _BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown backend {backend!r}; choose numpy or torch") from None
    s1 = (s1 + s1.T) / 2
    s2 = (s2 + s2.T) / 2
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt(s1, s2))
