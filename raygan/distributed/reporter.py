"""The one Ray reporter: a tick leaves a worker as `ray.train.report` or `ray.tune.report`, with
this rank's checkpoint files; rank 0 also feeds the run's own reporters (console, run store,
MLflow).

Checkpoints handed to Ray Train are named `checkpoints/ckpt-<nimg>` so a run under Ray storage
has a local run's layout. With keep-best, every checkpointed report carries `ckpt_score`: the
objective when it was evaluated at that tick, else the worst value (unevaluated snapshots go
first). Tune trials report only evaluated ticks (the scheduler compares objectives); all ranks
skip the same ticks because their statistics are all-reduced.
"""
from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import Any, Dict, Optional

from raygan.engine.checkpoint import checkpoint_name
from raygan.engine.reporter import Reporter

SCORE_ATTR = "ckpt_score"
CHECKPOINTS = "checkpoints"
# RAYGAN_FAULT_INJECT="rank=1,kimg=0.3,marker=/tmp/x": that rank SIGKILLs itself once (tests only)
FAULT_ENV = "RAYGAN_FAULT_INJECT"


def ray_metrics(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """The numeric part of a tick's report, with the final evaluation as final_<name>."""
    out = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out.update({f"final_{k}": v for k, v in (metrics.get("final") or {}).items()})
    return out


class RayReporter(Reporter):
    persists_checkpoints = True

    def __init__(self, spec, rank: int, local: Optional[Reporter] = None):
        self.spec = spec
        self.rank = rank
        self.local = local if rank == 0 else None
        self.applied: Dict[str, Any] = {}
        self._fault = _parse_fault(os.environ.get(FAULT_ENV, ""))

    # ------------------------------------------------------------------ rank 0's records
    def start(self, info):
        if self.local is not None:
            self.local.start(info)

    def progress(self, nimg):
        if self.local is not None:
            self.local.progress(nimg)

    def artifact(self, path, subdir=None, step=None):
        if self.local is not None:
            self.local.artifact(path, subdir, step)

    def finish(self, summary, model=None):
        if self.local is not None:
            self.local.finish(summary, model if self.spec.log_model else None)

    def close(self, error=None):
        if self.local is None:
            return
        if self.spec.only_evaluated and error is not None:
            # a trial: the scheduler stops it by raising inside report(); the sweep's callback
            # closes its run as stopped, errored (with the reason) or finished
            return
        self.local.close(error)

    # ------------------------------------------------------------------ to Ray
    def report(self, metrics, checkpoint_dir=None):
        if self.local is not None:
            self.local.report(metrics, checkpoint_dir)
        self._maybe_fault(metrics)
        objective = self.spec.objective
        if self.spec.only_evaluated and (objective is None or objective not in metrics):
            return  # a non-finite or unevaluated tick: the scheduler has nothing to compare
        out = {**ray_metrics(metrics), **self.applied}
        if checkpoint_dir is not None and self.spec.keep_best and objective:
            from raygan.metrics.registry import direction

            value = metrics.get(objective)
            worst = math.inf if direction(objective) == "min" else -math.inf
            out[SCORE_ATTR] = float(value) if value is not None and math.isfinite(value) else worst
        self._emit(out, checkpoint_dir, metrics["kimg"])

    def report_done(self, metrics: Dict[str, Any]) -> None:
        """A trial restored at its end: its last numbers, so Tune records it as finished."""
        self._emit({**ray_metrics(metrics), **self.applied}, None, metrics.get("kimg", 0.0))

    def _emit(self, out: Dict[str, Any], checkpoint_dir: Optional[str], kimg: float) -> None:
        if self.spec.report_to == "tune":
            import ray.tune

            ckpt = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
            ray.tune.report(out, checkpoint=ckpt)
            return
        import ray.train

        if checkpoint_dir is None:
            ray.train.report(out)
            return
        name = f"{CHECKPOINTS}/{checkpoint_name(int(round(kimg * 1000)))}"
        ray.train.report(out, checkpoint=ray.train.Checkpoint.from_directory(checkpoint_dir),
                         checkpoint_dir_name=name)

    # -- fault injection for the tests: one rank kills itself once, hard, mid-run
    def _maybe_fault(self, metrics) -> None:
        f = self._fault
        if not f or self.rank != f["rank"] or metrics["kimg"] < f["kimg"]:
            return
        marker = Path(f["marker"])
        if marker.exists():
            return
        # die only once the controller has registered the reports so far (the checkpoint
        # included): a report still queued in this worker would die with it
        import ray.train

        try:
            ray.train.get_all_reported_checkpoints(timeout_s=60)
        except Exception:
            pass
        marker.write_text(json.dumps({"rank": self.rank, "kimg": metrics["kimg"], "pid": os.getpid()}))
        os.kill(os.getpid(), signal.SIGKILL)


def _parse_fault(text: str) -> Optional[Dict[str, Any]]:
    if not text:
        return None
    kv = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
    return {"rank": int(kv.get("rank", 1)), "kimg": float(kv.get("kimg", 0)), "marker": kv["marker"]}
