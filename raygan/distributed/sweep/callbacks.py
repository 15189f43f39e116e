"""The sweep driver's Tune callbacks: live status lines, each trial's MLflow child run closed with
what happened to it, and the sweep-wide kimg budget. Apart from the driver so that `raygan tune
--dry-run` (and anything else that imports the driver) does not import Ray Tune."""
from __future__ import annotations

import sys
from typing import Dict, Optional

from ray.tune import Callback as _Callback
from ray.tune.stopper import Stopper as _Stopper

from raygan.distributed.sweep.trial import trial_error_reason


# ---------------------------------------------------------------------------- driver callbacks
class SweepCallback(_Callback):
    """In the driver: a live status line per reported tick, one line per ended trial, and each
    trial's MLflow child run closed with what happened to it (finished, stopped at a rung by
    the scheduler, errored with the reason)."""

    def __init__(self, runs, objective: str, mode: str, budget: float, samples: int, progress: bool = True):
        self.runs, self.objective, self.mode = runs, objective, mode
        self.budget, self.samples, self.progress = budget, samples, progress
        self.best: Optional[float] = None
        self.best_trial = ""
        self.state: Dict[str, str] = {}

    def _say(self, text: str) -> None:
        if self.progress:
            print(text, file=sys.stderr, flush=True)

    def _status(self) -> str:
        counts = {s: sum(v == s for v in self.state.values()) for s in ("running", "stopped", "finished", "errored")}
        best = f"best {self.objective} {self.best:.4g} ({self.best_trial})" if self.best is not None else \
            f"no {self.objective} yet"
        return (f"[tune] {counts['running']} running, {counts['stopped']} stopped, {counts['finished']} done, "
                f"{counts['errored']} errored of {self.samples}; {best}")

    def on_trial_start(self, iteration, trials, trial, **info):
        self.state[trial.trial_id] = "running"

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.state[trial.trial_id] = "running"
        v = result.get(self.objective)
        if v is not None and (self.best is None or (v < self.best if self.mode == "min" else v > self.best)):
            self.best, self.best_trial = float(v), trial.trial_id
        self._say(f"{self._status()}  | {trial.trial_id} kimg {result.get('kimg', 0):g} "
                  f"{self.objective} {v:.4g}" if v is not None else self._status())

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = trial.last_result or {}
        kimg = r.get("kimg")
        stopped = kimg is not None and kimg < self.budget - 1e-6
        self.state[trial.trial_id] = "stopped" if stopped else "finished"
        if stopped:
            self.runs.close(trial.trial_id, "KILLED",
                            {"raygan.trial_status": f"stopped early by the scheduler at {kimg:g} kimg"})
        else:
            self.runs.close(trial.trial_id, "FINISHED", {"raygan.trial_status": "finished"})
        what = f"stopped at {kimg:g} kimg" if stopped else (f"finished {kimg:g} kimg" if kimg is not None
                                                          else "ended without a result")
        v = r.get(self.objective)
        self._say(f"[tune] {trial.trial_id}  {what}" + (f"  {self.objective} {v:.4g}" if v is not None else ""))

    def on_trial_error(self, iteration, trials, trial, **info):
        reason = trial_error_reason(trial)
        self.state[trial.trial_id] = "errored"
        self.runs.close(trial.trial_id, "FAILED", {"raygan.trial_status": "errored", "raygan.error": reason})
        self._say(f"[tune] {trial.trial_id}  errored: {reason}")


class KimgBudgetStopper(_Stopper):
    """Ends the sweep once all trials together have trained `total_kimg` (a benchmark's fixed
    budget): running trials are stopped, no new ones start."""

    def __init__(self, total_kimg: float):
        self.total = total_kimg
        self.kimg: Dict[str, float] = {}

    def __call__(self, trial_id, result):
        self.kimg[trial_id] = max(self.kimg.get(trial_id, 0.0), float(result.get("kimg", 0.0)))
        return False

    def stop_all(self):
        return sum(self.kimg.values()) >= self.total - 1e-9
