"""MLflowReporter: the loop's reports become one MLflow run (continued after a resume).

Uses MlflowClient with an explicit run id rather than the fluent active-run state, so it works
the same in a plain process, a Ray Train worker and a Tune trial thread. Per tick: the
numeric metrics (step = images seen) and the task's picture as an image with that step (the UI
steps through them). At the end: config, curves, summary, final metrics with their protocol,
and the exported model (weights + spec, no pickle), registered when a name is configured.
After a resume, ticks the resumed run redoes (they follow the checkpoint) are not logged twice.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict, Optional

from raygan.engine.reporter import Reporter
from raygan.tracking.store import (flatten, get_or_create_experiment, metric_batch, open_client, set_status,
                                   source_tags)


class MLflowReporter(Reporter):
    def __init__(self, config: Dict[str, Any], store=None, *, uri: str, experiment: str = "raygan",
                 run_name: Optional[str] = None, run_id: Optional[str] = None,
                 parent_run_id: Optional[str] = None, register_model: Optional[str] = None,
                 tags: Optional[Dict[str, str]] = None):
        self.uri = uri
        self.client = open_client(uri)
        self.config = config
        self.store = store  # a RunStore: config.yaml, metrics.jsonl, summary.json live there
        self.register_model = register_model
        self.finished = False
        self.logged_until = -1  # images seen of the last tick already in MLflow (skipped on redo)
        self.model = None
        copied_from = None
        if run_id is None and store is not None:
            run_id = store.read_record().get("run_id")  # resume: the same MLflow run ...
            if run_id is not None and self._is_copy(store, run_id):
                copied_from, run_id = run_id, None  # ... unless this run dir is a copy of one that has it
        if run_id is not None:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            self.resumed = True
            hist = self.client.get_metric_history(run_id, "kimg")
            self.logged_until = max((m.step for m in hist), default=-1)
        else:
            exp_id = get_or_create_experiment(self.client, experiment, uri)
            all_tags = {"raygan.run_dir": str(store) if store is not None else "", **source_tags(), **(tags or {})}
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            if copied_from:
                all_tags["raygan.copied_from"] = copied_from
            run = self.client.create_run(exp_id, run_name=run_name, tags=all_tags)
            self.run_id = run.info.run_id
            self.resumed = False
            self._log_params(config)
        if store is not None:
            store.update_record(run_id=self.run_id, tracking_uri=self.uri, run_dir=str(store))

    def _is_copy(self, store, run_id: str) -> bool:
        """A resumed run dir that is a copy of another one still holding this MLflow run (cp -r)
        must not log into the original's run: it gets its own, and says so. A moved one continues."""
        try:
            tagged = self.client.get_run(run_id).data.tags.get("raygan.run_dir")
        except Exception:
            tagged = None
        original = store.copy_of(tagged)
        if original is not None:
            print(f"raygan: {store} is a copy of {original} (MLflow run {run_id}): it continues in a new "
                  f"MLflow run", file=sys.stderr, flush=True)
            return True
        if tagged and tagged != str(store):
            try:
                self.client.set_tag(run_id, "raygan.run_dir", str(store))  # moved: the run lives here now
            except Exception:
                pass
        return False

    # ------------------------------------------------------------------ helpers
    def _log_params(self, config: Dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, v[:6000]) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def log_metrics(self, values: Dict[str, float], step: int) -> None:
        ms = metric_batch(values, step)
        if ms:
            self.client.log_batch(self.run_id, metrics=ms)

    # ------------------------------------------------------------------ Reporter
    def start(self, info):
        self.client.set_tag(self.run_id, "raygan.world_size", str(info.get("world_size", 1)))
        if info.get("resumed_from"):
            self.client.set_tag(self.run_id, "raygan.resumed_from", str(info["resumed_from"]))
            self.log_metrics({"restart_kimg": info["nimg"] / 1000.0}, int(info["nimg"]))

    def report(self, metrics, checkpoint_dir=None):
        step = int(round(metrics["kimg"] * 1000))
        if step <= self.logged_until:
            return  # redone after a resume: already in the run's history
        self.log_metrics(metrics, step)
        protocol = metrics.get("protocol")
        if protocol:
            for k, v in flatten(protocol, "eval.protocol.").items():
                self.client.set_tag(self.run_id, k, v[:5000])

    def artifact(self, path, subdir=None, step=None):
        if subdir == "samples" and step is not None:
            if step <= self.logged_until:
                return
            from PIL import Image

            with Image.open(path) as im:
                self.client.log_image(self.run_id, im.copy(), key="samples", step=int(step))
            return
        self.client.log_artifact(self.run_id, path, subdir)

    def finish(self, summary, model=None):
        final = summary.get("final") or {}
        step = int(round(summary["kimg"] * 1000))
        self.log_metrics({f"final_{k}": v for k, v in final.items()}, step)
        if summary.get("protocol"):
            for k, v in flatten(summary["protocol"], "final.protocol.").items():
                self.client.set_tag(self.run_id, k, v[:5000])
        if self.store is not None:
            self._log_run_files(summary)
        if model is not None:
            self.log_model(model, version_tags(final, summary.get("protocol")))
        self.client.set_terminated(self.run_id, "FINISHED")
        self.finished = True

    def _log_run_files(self, summary) -> None:
        import tempfile
        from pathlib import Path

        from raygan.hosts import storage
        from raygan.tracking.plots import curves_png

        with tempfile.TemporaryDirectory() as d:
            text = storage.read_text(self.store.join("config.yaml"))
            if text:
                cfg = Path(d) / "config.yaml"
                cfg.write_text(text)
                self.client.log_artifact(self.run_id, str(cfg))
            plot = curves_png(self.store.metrics(), Path(d) / "curves.png")
            if plot is not None:
                self.client.log_artifact(self.run_id, str(plot))
                storage.put_file(str(plot), self.store.join("curves.png"))
            out = Path(d) / "summary.json"
            out.write_text(json.dumps(summary, indent=1, default=str))
            self.store.write_summary(summary)
            self.client.log_artifact(self.run_id, str(out))

    def log_model(self, model, tags: Dict[str, str]):
        from raygan.tracking.models import log_model

        self.model = log_model(self.client, self.run_id, model, self.register_model, tags)
        return self.model

    def close(self, error: Optional[BaseException] = None):
        if self.finished:
            return
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        tags = {"raygan.error": str(error)[:5000]} if error is not None and status == "FAILED" else {}
        set_status(self.client, self.run_id, status, tags)


def version_tags(values: Dict[str, float], protocol: Optional[Dict[str, Any]] = None,
                 std: Optional[Dict[str, float]] = None) -> Dict[str, str]:
    """Model-version tags: the same metric names for a training run and a sweep's champion
    (`fid`, and `fid_std` when several evaluation seeds were averaged), plus the protocol."""
    tags = {k: f"{v:.6g}" for k, v in values.items() if isinstance(v, (int, float))}
    tags.update({f"{k}_std": f"{v:.6g}" for k, v in (std or {}).items()})
    if protocol:
        tags["protocol"] = json.dumps(protocol, default=str, sort_keys=True)[:5000]
    return tags

