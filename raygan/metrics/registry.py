"""The metric names a config, a sweep objective or `raygan eval --metrics` may use.

Each entry says what kind of evidence it needs (so a task can refuse a metric that does not
apply to it before any work) and which values it produces with their direction, so Tune,
keep-best checkpointing and "best so far" never hard-code that FID is minimised:

    METRICS.meta("fid") == {"kind": "features", "keys": {"fid": "min"}}
    direction("psnr") == "max"

Kinds: "features" (generated images vs reference features of an extractor), "restoration"
(repaired vs clean test images), "classifier" (a classifier trained on or tested against
generated images), "translation" (translated images judged in the target domain).
"""
from __future__ import annotations

from typing import Dict, Optional

from raygan.errors import ConfigError
from raygan.registry import Registry

METRICS = Registry("metric")


def direction(key: str) -> str:
    """'min' or 'max' for a metric value key (e.g. fid, kid, psnr, precision)."""
    for name in METRICS.names():
        keys: Dict[str, Optional[str]] = METRICS.meta(name).get("keys", {})
        if keys.get(key):
            return keys[key]
    raise ConfigError(f"no metric produces a value named '{key}'; metric values: {', '.join(value_keys())}")


def value_keys() -> list:
    return sorted({k for n in METRICS.names() for k, d in METRICS.meta(n).get("keys", {}).items() if d})


def better(key: str, a: float, b: float) -> bool:
    """True when value a is better than value b for metric value `key`."""
    return a < b if direction(key) == "min" else a > b


def kind(name: str) -> str:
    return METRICS.meta(name).get("kind", "features")


def primary_key(metric: str) -> str:
    """The value a metric name is judged by (fid -> fid, pr -> precision, psnr -> psnr)."""
    keys = METRICS.meta(metric).get("keys", {})
    for k, d in keys.items():
        if d:
            return k
    raise ConfigError(f"metric '{metric}' has no value with a direction")


def objective(metrics: list) -> Optional[str]:
    """The first judged value of a run's metric list (keep-best checkpoints, the default sweep
    objective), or None when it evaluates nothing."""
    return primary_key(metrics[0]) if metrics else None
