"""What a logged run says about itself, read from its params, metrics and tags: its objective and
most honest score, its role (train, trial, sweep, augment, truncation), each value's protocol, and
a logged metric's direction. `raygan runs` (raygan.tracking.runs) ranks and prints with these.
"""
from __future__ import annotations

import json
import math
from typing import Dict, Optional, Tuple


def objective_key(run) -> Optional[str]:
    """The value a run is judged by: a sweep's objective, else its config's first metric."""
    from raygan.errors import ConfigError
    from raygan.metric_names import primary_key

    p = run.data.params
    if p.get("sweep.objective"):
        return p["sweep.objective"].split(" ", 1)[0]
    try:
        metrics = json.loads(p.get("eval.metrics", "[]"))
        return primary_key(metrics[0]) if metrics else None
    except (ValueError, ConfigError):
        return "fid" if "fid" in run.data.metrics else None


def run_score(run) -> Tuple[Optional[str], Optional[str], Optional[float], Optional[float]]:
    """(objective, which metric holds it, value, std) of the run's most honest value."""
    key = objective_key(run)
    if key is None:
        return None, None, None, None
    m = run.data.metrics
    for k, std in ((f"reeval_{key}_mean", f"reeval_{key}_std"), (f"best_{key}_mean", f"best_{key}_std"),
                   (f"final_{key}", None), (key, None)):
        v = m.get(k)
        if v is not None and math.isfinite(v):
            return key, k, v, m.get(std) if std else None
    return key, None, None, None


def role(run) -> str:
    t = run.data.tags
    # `raygan augment`: its parent and per-cell children; `raygan eval --trunc-sweep`: a curve, not a run to rank
    if t.get("raygan.kind") in ("augment", "augment-cell", "truncation"):
        return t["raygan.kind"]
    if t.get("raygan.role") == "sweep":
        return "sweep"
    if t.get("raygan.trial_id"):
        return "trial"
    return "train"


def protocol_of(tags: Dict[str, str], prefix: str) -> Dict[str, str]:
    return {k[len(prefix):]: v for k, v in tags.items() if k.startswith(prefix)}


def protocol_text(tags: Dict[str, str], prefix: str, key: str) -> str:
    """Value `key`'s own metric protocol, from the tags under `prefix` ('' when none were logged)."""
    from raygan.metric_names import protocol_text as text

    p = protocol_of(tags, prefix)
    return text(key, p) if p else ""


def score_protocol(run, source: Optional[str]) -> str:
    """The protocol of the value `source` (reeval_psnr_mean, best_fid_mean, final_psnr, psnr)."""
    tags = run.data.tags
    prefix, key = "eval.protocol.", source or "fid"
    for pre, tag in (("reeval_", "reeval.protocol."), ("best_proxy_", "eval.protocol."), ("best_", "best.protocol."),
                     ("final_", "final.protocol.")):
        if key.startswith(pre):
            prefix, key = tag, key[len(pre):]
            break
    key = key[:-len("_mean")] if key.endswith("_mean") else key
    return (protocol_text(tags, prefix, key) or protocol_text(tags, "final.protocol.", key)
            or protocol_text(tags, "eval.protocol.", key))


def metric_direction(name: str) -> Optional[str]:
    """'min'/'max' for a logged metric (psnr, final_psnr, reeval_psnr_mean, best_fid_mean, ...);
    None for one without a direction (kimg, losses)."""
    from raygan.errors import ConfigError
    from raygan.metric_names import direction

    key = name
    for prefix in ("best_proxy_", "reeval_", "best_", "final_"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    if key.endswith("_mean") and key != name:
        key = key[:-len("_mean")]
    try:
        return direction(key)
    except ConfigError:
        return None
