"""Translation metrics (kind "translation"): translated test images judged in the target domain.

Directions: "a2b" translates domain A's test images with G_AB and judges them against domain
B's test images; "b2a" the reverse. The evidence per direction (`DirectionEvidence`) is
gathered by the task's evaluator (raygan.tasks.translate.eval); the functions below only turn
it into numbers, so every value is made one way wherever it is computed.

    name        values (direction)                                    needs
    fid_a2b     fid_a2b (min), baseline_fid_a2b                        features, target reference
    fid_b2a     fid_b2a (min), baseline_fid_b2a                        features, target reference
    domain_acc  domain_acc_a2b, domain_acc_b2a, domain_acc (max)       classifier logits
    cycle_psnr  cycle_psnr_a, cycle_psnr_b, cycle_psnr,                reconstructions
                cycle_ssim_a, cycle_ssim_b, cycle_ssim (max)

The feature metric "fid" asked of a translation run means both directions: fid_a2b, fid_b2a
and their mean `fid` (what Tune and keep-best compare), with the baselines alike.

Baselines (`baseline_*`, no direction: constants of the protocol): the untranslated input
scored the same way, i.e. what "doing nothing" gets (FID of test A against test B, and how
often the classifier already calls an A image a B). Cycle PSNR/SSIM have no baseline: doing
nothing reconstructs perfectly (+inf dB), so the number alone is reported.
`domain_acc`: fraction of translated images whose classifier argmax is the target domain's
class (fmnist-cnn's 10 Fashion-MNIST classes). PSNR/SSIM: raygan.metrics.restoration's
protocol on [0, 1] images rounded to uint8, per image then averaged, A -> B -> A against A.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from raygan.metrics.frechet import frechet_distance
from raygan.metrics.registry import METRICS, check_kind
from raygan.metrics.stats import feature_stats

DIRECTIONS = ("a2b", "b2a")
SOURCE = {"a2b": "a", "b2a": "b"}  # the domain a direction starts from (and reconstructs)


@dataclass
class DirectionEvidence:
    """What one direction's pass over the test images produced (numpy, all ranks gathered)."""

    features: Optional[np.ndarray] = None  # (n, D) of the translated images
    correct: Optional[np.ndarray] = None  # (n,) bool: classifier says "target domain"
    cycle_psnr: Optional[np.ndarray] = None  # (n,) dB, reconstruction vs input
    cycle_ssim: Optional[np.ndarray] = None  # (n,)
    ref_mu: Optional[np.ndarray] = None  # target domain's test reference moments
    ref_sigma: Optional[np.ndarray] = None
    baseline_features: Optional[np.ndarray] = None  # (n, D) of the untranslated input
    baseline_correct: Optional[np.ndarray] = None  # (n,) bool, untranslated input


def _fid(ev: DirectionEvidence, key: str) -> Dict[str, float]:
    mu, sigma = feature_stats(ev.features)
    out = {key: frechet_distance(mu, sigma, ev.ref_mu, ev.ref_sigma)}
    if ev.baseline_features is not None:
        bmu, bsigma = feature_stats(ev.baseline_features)
        out[f"baseline_{key}"] = frechet_distance(bmu, bsigma, ev.ref_mu, ev.ref_sigma)
    return out


def _mean(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else float("nan")


@METRICS.register("fid_a2b", kind="translation", keys={"fid_a2b": "min", "baseline_fid_a2b": None},
                  needs={"directions": ("a2b",), "features": True})
def fid_a2b(evidence: Dict[str, DirectionEvidence]) -> Dict[str, float]:
    return _fid(evidence["a2b"], "fid_a2b")


@METRICS.register("fid_b2a", kind="translation", keys={"fid_b2a": "min", "baseline_fid_b2a": None},
                  needs={"directions": ("b2a",), "features": True})
def fid_b2a(evidence: Dict[str, DirectionEvidence]) -> Dict[str, float]:
    return _fid(evidence["b2a"], "fid_b2a")


def fid_both(evidence: Dict[str, DirectionEvidence]) -> Dict[str, float]:
    """The feature metric "fid" of a translation run: both directions and their mean."""
    out = {**fid_a2b(evidence), **fid_b2a(evidence)}
    out["fid"] = (out["fid_a2b"] + out["fid_b2a"]) / 2
    if "baseline_fid_a2b" in out and "baseline_fid_b2a" in out:
        out["baseline_fid"] = (out["baseline_fid_a2b"] + out["baseline_fid_b2a"]) / 2
    return out


@METRICS.register("domain_acc", kind="translation",
                  keys={"domain_acc": "max", "domain_acc_a2b": "max", "domain_acc_b2a": "max",
                        "baseline_domain_acc": None, "baseline_domain_acc_a2b": None,
                        "baseline_domain_acc_b2a": None},
                  needs={"directions": DIRECTIONS, "classify": True})
def domain_acc(evidence: Dict[str, DirectionEvidence]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for d in DIRECTIONS:
        ev = evidence[d]
        out[f"domain_acc_{d}"] = _mean(ev.correct)
        if ev.baseline_correct is not None:
            out[f"baseline_domain_acc_{d}"] = _mean(ev.baseline_correct)
    out["domain_acc"] = (out["domain_acc_a2b"] + out["domain_acc_b2a"]) / 2
    if "baseline_domain_acc_a2b" in out:
        out["baseline_domain_acc"] = (out["baseline_domain_acc_a2b"] + out["baseline_domain_acc_b2a"]) / 2
    return out


@METRICS.register("cycle_psnr", kind="translation",
                  keys={"cycle_psnr": "max", "cycle_psnr_a": "max", "cycle_psnr_b": "max",
                        "cycle_ssim": "max", "cycle_ssim_a": "max", "cycle_ssim_b": "max"},
                  needs={"directions": DIRECTIONS, "cycle": True})
def cycle_psnr(evidence: Dict[str, DirectionEvidence]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for d in DIRECTIONS:
        ev, s = evidence[d], SOURCE[d]
        out[f"cycle_psnr_{s}"] = _mean(ev.cycle_psnr)
        out[f"cycle_ssim_{s}"] = _mean(ev.cycle_ssim)
    out["cycle_psnr"] = (out["cycle_psnr_a"] + out["cycle_psnr_b"]) / 2
    out["cycle_ssim"] = (out["cycle_ssim_a"] + out["cycle_ssim_b"]) / 2
    return out


def needs(names) -> Dict[str, object]:
    """What the evaluator must compute for these metric names: directions, features (FID),
    classify (logits for domain_acc), cycle (reconstructions)."""
    out = {"directions": set(), "features": False, "classify": False, "cycle": False}
    for name in names:
        if name == "fid":
            meta = {"directions": DIRECTIONS, "features": True}
        else:
            meta = METRICS.meta(name).get("needs", {})
        out["directions"].update(meta.get("directions", ()))
        for k in ("features", "classify", "cycle"):
            out[k] = out[k] or bool(meta.get(k))
    out["directions"] = tuple(d for d in DIRECTIONS if d in out["directions"])
    return out


def compute(names, evidence: Dict[str, DirectionEvidence]) -> Dict[str, float]:
    """Values of the named translation metrics ("fid" meaning both directions)."""
    out: Dict[str, float] = {}
    for name in names:
        out.update(fid_both(evidence) if name == "fid" else check_kind(name, "translation")(evidence))
    return out
