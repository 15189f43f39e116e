"""Fréchet distance between two Gaussians, in float64, via symmetric eigendecompositions.

    FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^½ S2 S1^½)^½)

For any factor A with S1 = A A^T, the symmetric PSD matrix A^T S2 A has the eigenvalues of
S1^½ S2 S1^½ (both share them with S2 S1), so

    tr((S1^½ S2 S1^½)^½) = sum(sqrt(clip(eigvalsh(A^T S2 A), 0)))

A is the Cholesky factor of S1 when S1 is positive definite (fast path: no eigenvectors
needed), else A = V diag(sqrt(clip(w, 0))) from eigh(S1) = (w, V), which handles singular
(PSD) covariances such as N < D or dead features; the eigenvalues of A^T S2 A are clipped at
0 too. Both routes are backward stable and agree to ~1e-11 relative. (For singular S1 the
sqrt turns round-off eigenvalues ~eps*|S| into ~sqrt(eps) terms: expect ~1e-8 relative error
there, as with any sqrtm formula.)

No scipy.linalg.sqrtm: its `disp=` argument is gone in SciPy 1.18, its Schur iteration is an
order of magnitude slower at D = 2048 (bench/frechet.py) and it can return complex noise. `eigvalsh(S1 @ S2)` would be wrong: that product is not symmetric.
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


def _factor_numpy(s1: np.ndarray, method: str) -> np.ndarray:
    """A with S1 = A A^T: Cholesky if S1 is positive definite (and method allows), else eigh."""
    if method == "auto":
        try:
            return np.linalg.cholesky(s1)
        except np.linalg.LinAlgError:
            pass
    w, v = np.linalg.eigh(s1)
    return v * np.sqrt(np.clip(w, 0.0, None))


def _trace_sqrt_product_numpy(s1: np.ndarray, s2: np.ndarray, method: str = "auto") -> float:
    a = _factor_numpy(s1, method)  # S1 = A A^T
    m = a.T @ s2 @ a
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def _trace_sqrt_product_torch(s1: np.ndarray, s2: np.ndarray, method: str = "auto") -> float:
    t1 = torch.from_numpy(s1)
    t2 = torch.from_numpy(s2)
    a, info = (torch.linalg.cholesky_ex(t1) if method == "auto" else (None, 1))
    if int(info) != 0:
        w, v = torch.linalg.eigh(t1)
        a = v * w.clamp_min(0).sqrt()
    m = a.T @ t2 @ a
    ev = torch.linalg.eigvalsh((m + m.T) / 2)
    return float(ev.clamp_min(0).sqrt().sum())


_BACKENDS = {"numpy": _trace_sqrt_product_numpy, "torch": _trace_sqrt_product_torch}


def frechet_distance(
    mu1: ArrayLike,
    sigma1: ArrayLike,
    mu2: ArrayLike,
    sigma2: ArrayLike,
    backend: str = "numpy",
    method: str = "auto",
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64.

    `backend`: "numpy" or "torch" (both float64 on CPU; bench/frechet.py compares them).
    `method`: "auto" (Cholesky factor of sigma1 when positive definite, else eigh) or "eigh"
    (always the clipped eigendecomposition). May be slightly negative (~ -1e-10 relative)
    for identical inputs.
    """
    mu1, mu2 = as_numpy64(mu1), as_numpy64(mu2)
    s1, s2 = as_numpy64(sigma1), as_numpy64(sigma2)
    if mu1.ndim == 0:  # 1-D Gaussians given as scalars
        mu1, mu2, s1, s2 = mu1.reshape(1), mu2.reshape(1), s1.reshape(1, 1), s2.reshape(1, 1)
    _check(mu1, s1, mu2, s2)
    if method not in ("auto", "eigh"):
        raise ValueError(f"unknown method {method!r}; choose auto or eigh")
    try:
        trace_sqrt = _BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown backend {backend!r}; choose numpy or torch") from None
    s1 = (s1 + s1.T) / 2
    s2 = (s2 + s2.T) / 2
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt(s1, s2, method))
