"""`raygan augment` in MLflow: one parent run for the experiment, one child run per cell
(K real images per class, condition), through MlflowClient with explicit run ids. The parent
gets each classifier's accuracy as it ends (`AugmentTracker.result`), the rest at the end.

Parent: the protocol as params (classifier recipe, seeds, Ks, synthetic count, GAN source,
subset rule), the table (`augment/table.txt`), the plot (`augment/augment.png`), every row as
JSON (`augment/rows.json`) and what trained each cell's GAN (`augment/gans.json`); metrics
`acc_mean/K<k>/<condition>` for the side-by-side view. Child: params k, condition, seeds; metrics
acc_mean, acc_std and `acc` once per seed (step = seed).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

from raygan.tracking.store import (flatten, get_or_create_experiment, metric_batch, open_client,
                                   resolve_tracking_uri, set_status, source_tags)


class AugmentTracker:
    """The parent run of one `raygan augment` call, filled while it runs: made at the first
    classifier result (a bad argument makes no run), each classifier's accuracy as
    `acc/K<k>/<condition>` (step = seed) when it ends and `acc_mean`/`acc_std` of a
    (K, condition) when its last seed ends, so an interrupted experiment keeps what it measured
    (status FAILED); `finish` adds the protocol, the table, rows, GANs and the children, `plot`
    the picture last."""

    def __init__(self, uri: Optional[str] = None, experiment: str = "raygan", run_name: Optional[str] = None,
                 tags: Optional[Dict[str, str]] = None, params: Optional[Dict[str, Any]] = None):
        self.uri = resolve_tracking_uri(uri)
        self.experiment, self.run_name, self.tags = experiment, run_name, tags or {}
        self.start_params = flatten(dict(params or {}))
        self.client = None
        self.exp_id: Optional[str] = None
        self.run_id: Optional[str] = None

    def _parent(self) -> str:
        from mlflow.entities import Param

        if self.run_id is None:
            self.client = open_client(self.uri)
            self.exp_id = get_or_create_experiment(self.client, self.experiment, self.uri)
            run = self.client.create_run(self.exp_id, run_name=self.run_name or "augment",
                                         tags={**source_tags(), "raygan.kind": "augment", **self.tags})
            self.run_id = run.info.run_id
            if self.start_params:
                self.client.log_batch(self.run_id, params=[Param(k, v[:6000]) for k, v in self.start_params.items()])
        return self.run_id

    def result(self, k: int, condition: str, seed: int, acc: float, row=None) -> None:
        """run_augment's `on_result`: one classifier's accuracy; the arm's mean once complete."""
        pid = self._parent()
        metrics = metric_batch({f"acc/K{k}/{condition}": acc}, step=int(seed))
        if row is not None:
            metrics += metric_batch({f"acc_mean/K{k}/{condition}": row.mean, f"acc_std/K{k}/{condition}": row.std})
        self.client.log_batch(pid, metrics=metrics)

    def finish(self, outcome) -> str:
        """Everything but the plot; the run is FINISHED after this. Returns the parent run id."""
        from mlflow.entities import Param

        pid = self._parent()
        client, result = self.client, outcome.result
        try:
            params = [Param(k, v[:6000]) for k, v in flatten(dict(outcome.protocol)).items()
                      if k not in self.start_params]
            for i in range(0, len(params), 100):
                client.log_batch(pid, params=params[i:i + 100])
            client.log_batch(pid, metrics=metric_batch(
                {f"acc_mean/K{r.k}/{r.condition}": r.mean for r in result.rows}))
            with tempfile.TemporaryDirectory(prefix="raygan-augment-") as tmp:
                files = {"table.txt": outcome.table + "\n",
                         "rows.json": json.dumps([_row(r) for r in result.rows], indent=2),
                         "gans.json": json.dumps(outcome.gans, indent=2, default=str)}
                for name, text in files.items():
                    (Path(tmp) / name).write_text(text)
                    client.log_artifact(pid, str(Path(tmp) / name), "augment")
            for r in result.rows:
                child = client.create_run(self.exp_id, run_name=f"K={r.k} {r.condition}",
                                          tags={"mlflow.parentRunId": pid, "raygan.kind": "augment-cell"})
                cid = child.info.run_id
                client.log_batch(cid, params=[Param("k", str(r.k)), Param("condition", r.condition),
                                              Param("seeds", ",".join(map(str, r.seeds)))])
                per_seed = [m for s, v in zip(r.seeds, r.values) for m in metric_batch({"acc": v}, step=int(s))]
                client.log_batch(cid, metrics=metric_batch({"acc_mean": r.mean, "acc_std": r.std}) + per_seed)
                set_status(client, cid, "FINISHED")
        except BaseException:
            self.fail()
            raise
        set_status(client, pid, "FINISHED")
        return pid

    def plot(self, path: str) -> None:
        self.client.log_artifact(self._parent(), str(path), "augment")

    def fail(self) -> None:
        """Mark the parent FAILED (an error or Ctrl-C); what it has logged stays."""
        if self.run_id is not None:
            set_status(self.client, self.run_id, "FAILED")


def log_augment(outcome, uri: Optional[str] = None, experiment: str = "raygan", run_name: Optional[str] = None,
                tags: Optional[Dict[str, str]] = None) -> str:
    """Log a finished `AugmentOutcome` (raygan.experiments.augment_run) at once; returns the parent run id."""
    tracker = AugmentTracker(uri, experiment, run_name, tags)
    pid = tracker.finish(outcome)
    if outcome.plot_path:
        tracker.plot(outcome.plot_path)
    return pid


def _row(r) -> Dict[str, Any]:
    return {"k": r.k, "condition": r.condition, "mean": r.mean, "std": r.std, "values": r.values, "seeds": r.seeds}
