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

from typing import Any, Callable

from raygan.metric_names import (SPECS, better, canonical, direction, kind, metric_of, objective,  # noqa: F401
                                 primary_key, value_keys)
from raygan.registry import Registry


class MetricRegistry(Registry):
    """The metric functions by name. Names are spelled one way (raygan.metric_names: underscores;
    a dashed alias is accepted), and what a registration declares must match that list."""

    def register(self, name: str, **meta: Any) -> Callable[[Any], Any]:
        name = canonical(name)
        spec = SPECS.get(name)
        if spec is None or any(meta.get(k) != v for k, v in spec.items()):
            raise ValueError(f"metric '{name}' is registered as {meta}, but raygan.metric_names says {spec}")
        return super().register(name, **meta)

    def meta(self, name: str):
        return super().meta(canonical(name))

    def get(self, name: str) -> Any:
        return super().get(canonical(name))

    def __contains__(self, name: object) -> bool:
        return super().__contains__(canonical(name) if isinstance(name, str) else name)


METRICS = MetricRegistry("metric")
