"""A sweep does not sample what cannot act within one trial's budget.

Some parameters are lengths in kimg or in D steps. Past a limit set by the trial's budget they no
longer change the trial (the trainer caps the repair warm-up at half the run; an EMA half-life
beyond what `ema.rampup` lets it reach by the end is the ramp itself) or cannot do their job in it
(ADA's p cannot ramp from 0 to 1 within the trial; a lazy regulariser or ADA adjustment that would
run fewer than `MIN_RUNS` times). Sampling them anyway spends trials on differences that do not
exist. `fit_space` rewrites the space before any trial: values beyond the limit become the limit
(duplicates merged), a range is cut at the limit, and a parameter left with one value is pinned
to it (a one-value choice); each change is one note that `raygan tune --dry-run` prints and the
sweep's parent run records.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Dict, List, Tuple

from raygan.distributed.sweep.params import choice_label

MIN_RUNS = 4  # a lazy interval must fit this many times into a trial's D steps


def _sampled(raw: Dict[str, Any]) -> Dict[str, List[Any]]:
    """config path -> every value or bound the space gives it (given blocks included)."""
    out: Dict[str, List[Any]] = {}

    def visit(params: Dict[str, Any]) -> None:
        for key, spec in params.items():
            if not isinstance(spec, dict):
                continue
            paths = spec.get("paths") or [str(key)]
            for p in [paths] if isinstance(paths, str) else paths:
                for d in ("choice", "uniform", "loguniform", "int", "logint"):
                    if isinstance(spec.get(d), list):
                        out.setdefault(p, []).extend(spec[d])
            for sub in (spec.get("given") or {}).values():
                if isinstance(sub, dict):
                    visit(sub)

    visit(raw.get("parameters") or {})
    return out


def _limits(base: Dict[str, Any], sampled: Dict[str, List[Any]]) -> Dict[str, Tuple[float, bool, str]]:
    """config path -> (largest value that still acts, integer?, why) for this trial base."""
    budget = float(base["train"]["total_kimg"])
    batches = [b for b in sampled.get("optim.batch_size", []) if isinstance(b, (int, float))]
    d_steps = budget * 1000 / float(max(batches + [base["optim"]["batch_size"]]))  # the fewest a trial gets
    rampup = base["ema"].get("rampup")
    lazy = max(1, math.floor(d_steps / MIN_RUNS))
    out = {
        "repair.adv_warmup_kimg": (budget / 2, False, "the trainer caps the L1 warm-up at half a trial"),
        "augment.ada.speed_kimg": (budget, False, "a slower ADA ramp cannot take p from 0 to 1 within a trial"),
        "regularizer.kwargs.every": (lazy, True, f"a lazy regulariser must run {MIN_RUNS}+ times in a trial's "
                                                 f"{d_steps:g} D steps"),
        "augment.ada.interval": (lazy, True, f"ADA must adjust p {MIN_RUNS}+ times in a trial's {d_steps:g} D steps"),
    }
    if "ema.rampup" in sampled:
        pass  # the ramp is sampled too: no limit known before the trial
    elif rampup:
        out["ema.half_life_kimg"] = (rampup * budget, False, f"with ema.rampup {rampup:g} the half-life never "
                                                             f"exceeds rampup x kimg within a trial")
    else:
        out["ema.half_life_kimg"] = (budget, False, "an EMA half-life longer than a trial")
    return out


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else repr(v)


def _fit_choice(spec: Dict[str, Any], limit: float, cast: Callable) -> str:
    old = spec["choice"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in old) or max(old) <= limit:
        return ""
    new: List[Any] = []
    for v in old:
        v = v if v <= limit else cast(limit)
        if v not in new:
            new.append(v)
    spec["choice"] = new
    return f"choice[{', '.join(map(_fmt, old))}] -> " + (
        f"pinned to {_fmt(new[0])}" if len(new) == 1 else f"choice[{', '.join(map(_fmt, new))}]")


def _fit_range(spec: Dict[str, Any], dist: str, limit: float, cast: Callable) -> str:
    low, high = (float(x) for x in spec[dist])
    if high <= limit:
        return ""
    was = f"{dist}[{low:g}, {high:g}]"
    if low >= limit:
        for k in (dist, "step"):
            spec.pop(k, None)
        spec["choice"] = [cast(limit)]
        return f"{was} -> pinned to {_fmt(cast(limit))}"
    spec[dist] = [cast(low), cast(limit)]
    if "step" in spec and float(spec["step"]) > limit - low:
        spec.pop("step")
    return f"{was} -> {dist}[{low:g}, {_fmt(cast(limit))}]"


def _fit_entry(key: str, spec: Any, limits, notes: List[str]) -> None:
    if not isinstance(spec, dict):
        return
    for label, sub in (spec.get("given") or {}).items():
        if isinstance(sub, dict):
            for k, v in sub.items():
                _fit_entry(f"{k} (if {key}={choice_label(label)})", v, limits, notes)
    paths = spec.get("paths") or [key.split(" ")[0]]
    paths = [paths] if isinstance(paths, str) else paths
    if spec.get("given") or not paths or not all(p in limits for p in paths) or len({limits[p] for p in paths}) != 1:
        return
    limit, integer, why = limits[paths[0]]
    cast = (lambda x: int(math.floor(x))) if integer else (lambda x: round(float(x), 6))
    dist = next((d for d in ("choice", "uniform", "loguniform", "int", "logint") if d in spec), None)
    if dist is None:
        return
    change = _fit_choice(spec, limit, cast) if dist == "choice" else _fit_range(spec, dist, limit, cast)
    if change:
        notes.append(f"{key}: {change} ({why})")


def fit_space(raw: Dict[str, Any], base: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """(the raw space with what cannot act in a trial of `base` cut or pinned, one note per change)."""
    out = copy.deepcopy(raw)
    notes: List[str] = []
    limits = _limits(base, _sampled(out))
    for key, spec in (out.get("parameters") or {}).items():
        _fit_entry(str(key), spec, limits, notes)
    return out, notes
