"""Inception Score from classifier logits: exp(E_x KL(p(y|x) || p(y))), per split.

Split i holds rows [i*N//splits, (i+1)*N//splits) (the original Salimans et al. slicing);
p(y) is the mean of p(y|x) within the split. Returns the mean and the population std over
splits. Computed in float64 from log_softmax, so one-hot (saturated) predictions give exact
values: uniform logits -> 1.0, confident and class-balanced over K classes -> K.
With the FID Inception the logits are its 1008 bias-free outputs (see extractors/inception.py).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from raygan.metrics.stats import ArrayLike


def inception_score(logits: ArrayLike, splits: int = 10) -> Tuple[float, float]:
    t = logits if isinstance(logits, torch.Tensor) else torch.as_tensor(np.asarray(logits))
    t = t.detach().to("cpu", torch.float64)
    n = t.shape[0]
    if t.ndim != 2 or n < splits:
        raise ValueError(f"inception_score: need (N >= splits={splits}, K) logits, got {tuple(t.shape)}")
    logp = torch.log_softmax(t, dim=1)
    scores = []
    for i in range(splits):
        lp = logp[i * n // splits : (i + 1) * n // splits]
        p = lp.exp()
        log_py = torch.logsumexp(lp, dim=0) - np.log(lp.shape[0])  # log mean_x p(y|x)
        kl = (p * (lp - log_py)).sum(dim=1).mean()
        scores.append(float(torch.exp(kl)))
    s = np.asarray(scores)
    return float(s.mean()), float(s.std())
