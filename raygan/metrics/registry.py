"""The metric names a config, a sweep objective or `raygan eval --metrics` may use, and how each
is computed: the metrics registry dispatches.

A metric is ONE decorated function; its kind fixes the call it answers and what the evaluator
gathers for it, and its metadata says everything else a caller may ask without computing it:

    @METRICS.register("fid", kind="features", keys={"fid": "min"}, min_samples=10)
    def _fid(fake_feats, fake_logits, ref): ...

    METRICS.meta("fid")["keys"] == {"fid": "min"};  direction("psnr") == "max"
    min_samples("cas") == 100;  applies_to("kid", "translate") is False

Kinds (`KINDS`: the one signature of each, the evidence it needs, the tasks that compute it):

    features     fn(fake_feats (N, D), fake_logits (N, K) or None, ref: ReferenceStats) -> {key: value}
                 extractor features of generated/repaired images vs reference images' features
    restoration  fn(pred, clean, *, mask, crop) -> (N,) float64 per image (the evaluator averages)
                 repaired vs clean test images (degraded/clean pairs), [0, 1] float64
    classifier   fn(evidence: raygan.metrics.cas.ClassifierEvidence) -> {key: value}
                 a conditional generator, real labelled splits and the real-data classifier
    translation  fn(evidence: {"a2b"|"b2a": DirectionEvidence}) -> {key: value}
                 translated test images per direction

Metadata (register's keywords): `kind`; `keys` (value key -> "min" | "max" | None: the direction,
None for values logged beside, never judged); `min_samples` (the fewest samples the value means
anything with; default 2); `tasks` (default: the kind's); per kind: `knn` (features: compares the
first `eval.knn_samples` fakes and reals), `needs_mask` (restoration: a mask degradation), `needs`
(translation: directions and evidence). Every module of raygan.metrics is imported by the
package, so a new metric in any module there (or a new module) is all a new Tune objective takes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from raygan.errors import ConfigError
from raygan.metric_names import SPECS, canonical, forget, metric_of, note  # noqa: F401  (metric_of: re-exported)
from raygan.registry import Registry


@dataclass(frozen=True)
class Kind:
    signature: str
    evidence: str
    tasks: Tuple[str, ...]
    needs_classifier: bool = False  # a class-conditional generator and a classifier trained on real data
    needs_reference: bool = False  # reference images' features
    needs_pairs: bool = False  # degraded/clean pairs


KINDS: Dict[str, Kind] = {
    "features": Kind("fn(fake_feats, fake_logits, ref) -> {key: value}",
                     "extractor features vs reference features", ("generate", "repair", "translate"),
                     needs_reference=True),
    "restoration": Kind("fn(pred, clean, *, mask, crop) -> per-image (N,) values",
                        "repaired vs clean test images", ("repair",), needs_pairs=True),
    "classifier": Kind("fn(evidence: ClassifierEvidence) -> {key: value}",
                       "a conditional generator and real labelled splits", ("generate",), needs_classifier=True),
    "translation": Kind("fn(evidence: {direction: DirectionEvidence}) -> {key: value}",
                        "translated test images per direction", ("translate",)),
}
DEFAULT_MIN_SAMPLES = 2
_DIRECTIONS = ("min", "max", None)


class MetricRegistry(Registry):
    """A Registry whose entries must say their kind and value keys (checked when registered)."""

    def register(self, name: str, *, kind: str, keys: Dict[str, Optional[str]], min_samples: int = DEFAULT_MIN_SAMPLES,
                 tasks: Optional[Tuple[str, ...]] = None, **meta: Any) -> Callable[[Any], Any]:
        name = canonical(name)
        if kind not in KINDS:
            raise ValueError(f"metric '{name}': kind '{kind}' is not one of {', '.join(KINDS)}")
        if not keys or any(d not in _DIRECTIONS for d in keys.values()) or not any(keys.values()):
            raise ValueError(f"metric '{name}': keys must map value names to 'min', 'max' or None, "
                             f"at least one with a direction; got {keys}")
        if int(min_samples) < 1:
            raise ValueError(f"metric '{name}': min_samples must be >= 1")
        mirror = SPECS.get(name)  # the torch-free list of the built-in metrics must say the same
        if mirror is not None and (mirror["kind"] != kind or mirror["keys"] != dict(keys)):
            raise ValueError(f"metric '{name}' is registered as {kind} {keys}, but raygan.metric_names says {mirror}")
        tasks = tuple(tasks) if tasks is not None else KINDS[kind].tasks
        if mirror is None:
            note(name, kind, keys)
        return super().register(name, kind=kind, keys=dict(keys), min_samples=int(min_samples), tasks=tasks, **meta)


    def meta(self, name: str):
        return super().meta(canonical(name))

    def get(self, name: str) -> Any:
        return super().get(canonical(name))

    def __contains__(self, name: object) -> bool:
        return super().__contains__(canonical(name) if isinstance(name, str) else name)

    def unregister(self, name: str) -> None:
        super().unregister(canonical(name))
        forget(name)


METRICS = MetricRegistry("metric")


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
    return METRICS.meta(name)["kind"]


def of_kind(names, wanted: str) -> List[str]:
    """The names (in order) whose kind is `wanted`."""
    return [n for n in names if kind(n) == wanted]


def min_samples(name: str) -> int:
    """The fewest samples metric `name` means anything with."""
    return int(METRICS.meta(name)["min_samples"])


def tasks(name: str) -> Tuple[str, ...]:
    """The tasks whose evaluator computes metric `name`."""
    return tuple(METRICS.meta(name)["tasks"])


def applies_to(name: str, task: str) -> bool:
    return task in tasks(name)


def needs_classifier(name: str) -> bool:
    return KINDS[kind(name)].needs_classifier


def check_kind(name: str, wanted: str) -> Callable[..., Any]:
    """The function of metric `name`, which an evaluator of `wanted` metrics is about to call;
    a metric of another kind is a ConfigError (its evidence is not what this evaluator has)."""
    fn = METRICS.get(name)
    if kind(name) != wanted:
        k = KINDS[kind(name)]
        raise ConfigError(f"metric '{name}' is a {kind(name)} metric: it is computed from {k.evidence} "
                          f"(by the {', '.join(k.tasks)} evaluator), not from {KINDS[wanted].evidence}")
    return fn


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
