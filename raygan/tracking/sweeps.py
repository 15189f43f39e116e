"""A sweep in MLflow: one parent run (the plan, the result, the winner's picture), one child run
per trial (found again by its tags when the trial retries or the sweep resumes), and the
champion: the winner's model logged to its child run, registered and aliased `champion`."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from raygan.tracking.store import (flatten, get_or_create_experiment, metric_batch, mlflow_key, open_client,
                                   set_status, source_tags)

TRIAL_TAG = "raygan.trial_id"
SWEEP_TAG = "raygan.sweep"  # the parent run id, on every child run
CHAMPION = "champion"


def create_parent_run(uri: str, experiment: str, name: str, sweep_path: str, params: Dict[str, Any],
                      files: Dict[str, str]) -> str:
    from mlflow.entities import Param

    client = open_client(uri)
    exp_id = get_or_create_experiment(client, experiment, uri)
    run = client.create_run(exp_id, run_name=name, tags={
        "raygan.role": "sweep", "raygan.sweep_name": name, "raygan.sweep_path": sweep_path,
        "raygan.host": "tune", **source_tags()})
    items = [Param(mlflow_key(k)[:250], str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i:i + 100])
    with tempfile.TemporaryDirectory() as d:
        for fname, text in files.items():
            (Path(d) / fname).write_text(text)
            client.log_artifact(run.info.run_id, str(Path(d) / fname))
    return run.info.run_id


def find_child_run(client, experiment_id: str, parent_run_id: str, trial_id: str) -> Optional[str]:
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}' and tags.`{SWEEP_TAG}` = '{parent_run_id}'",
        max_results=5)
    return runs[0].info.run_id if runs else None


def open_child_run(uri: str, experiment: str, parent_run_id: str, trial_id: str, trial_name: str,
                   config: Dict[str, Any], sampled: Dict[str, Any], workers: int) -> str:
    """The trial's child run: found by tags (a retry or resume) or created with its params."""
    from raygan.tracking.reporter import MLflowReporter

    client = open_client(uri)
    exp_id = get_or_create_experiment(client, experiment, uri)
    run_id = find_child_run(client, exp_id, parent_run_id, trial_id)
    if run_id is not None:
        client.set_tag(run_id, "raygan.retried", "true")
        return run_id
    tags = {TRIAL_TAG: trial_id, SWEEP_TAG: parent_run_id, "raygan.host": "tune-trial",
            "raygan.trial_name": trial_name, "raygan.sampled": json.dumps(sampled, default=str)[:5000],
            "raygan.workers": str(workers)}
    rep = MLflowReporter(config, None, uri=uri, experiment=experiment, run_name=trial_name,
                         parent_run_id=parent_run_id, tags=tags)
    return rep.run_id


class ChildRuns:
    """Child runs looked up from the driver (callbacks, collection), one client, lazily."""

    def __init__(self, uri: Optional[str], experiment: str, parent_run_id: Optional[str]):
        self.uri, self.experiment, self.parent = uri, experiment, parent_run_id
        self._client = None
        self._exp_id = None

    def __getstate__(self):  # pickled with Tune's callbacks: no live client
        return {**self.__dict__, "_client": None}

    @property
    def client(self):
        if self._client is None and self.uri:
            self._client = open_client(self.uri)
            self._exp_id = get_or_create_experiment(self._client, self.experiment, self.uri)
        return self._client

    def run_id(self, trial_id: str) -> Optional[str]:
        if self.client is None or not self.parent:
            return None
        try:
            return find_child_run(self.client, self._exp_id, self.parent, trial_id)
        except Exception:
            return None

    def close(self, trial_id: str, status: str, tags: Dict[str, str]) -> None:
        rid = self.run_id(trial_id)
        if rid:
            set_status(self.client, rid, status, tags)

    def log(self, run_id: str, metrics: Dict[str, float], tags: Dict[str, str]) -> None:
        try:
            self.client.log_batch(run_id, metrics=metric_batch(metrics))
            for k, v in tags.items():
                self.client.set_tag(run_id, k, v[:5000])
        except Exception:
            pass


def mark_parent(uri: Optional[str], parent_run_id: Optional[str], status: str, tags: Dict[str, str]) -> None:
    if uri and parent_run_id:
        set_status(open_client(uri), parent_run_id, status, tags)


def end_parent(uri: Optional[str], parent_run_id: Optional[str], status: str, tags: Dict[str, str]) -> None:
    """A sweep that ended by an error: the parent run gets `status` unless it already ended."""
    if not (uri and parent_run_id):
        return
    try:
        client = open_client(uri)
        if client.get_run(parent_run_id).info.status != "RUNNING":
            return
    except Exception:
        return
    set_status(client, parent_run_id, status, tags)


def record_result(uri: str, parent_run_id: str, metrics: Dict[str, float], tags: Dict[str, str],
                  texts: Dict[str, str], images: Optional[Dict[str, str]] = None, status: str = "FINISHED") -> None:
    """The sweep's outcome on its parent run: numbers, winner, protocol, text artifacts (name ->
    content, e.g. the re-evaluation table) and pictures (name -> PNG path, e.g. the winner's)."""
    client = open_client(uri)
    client.log_batch(parent_run_id, metrics=metric_batch(metrics))
    for k, v in tags.items():
        client.set_tag(parent_run_id, k, str(v)[:5000])
    with tempfile.TemporaryDirectory() as d:
        for name, content in texts.items():
            (Path(d) / name).write_text(content)
            client.log_artifact(parent_run_id, str(Path(d) / name))
    for name, path in (images or {}).items():
        from PIL import Image

        with Image.open(path) as im:
            client.log_image(parent_run_id, im.copy(), artifact_file=f"winner/{name}")
    client.set_terminated(parent_run_id, status)


def register_champion(uri: str, run_id: str, exported, register_as: Optional[str],
                      tags: Dict[str, str]) -> Dict[str, Optional[str]]:
    """Log the winner's model to its child run, register it and point `champion` at it."""
    from raygan.tracking.models import log_model

    client = open_client(uri)
    status = client.get_run(run_id).info.status
    logged = log_model(client, run_id, exported, register_as, tags)
    if status != "RUNNING":  # logging reopens nothing, but keep the trial's own end state
        client.set_terminated(run_id, status)
    out: Dict[str, Optional[str]] = {"model_uri": logged.model_uri, "registered": logged.registered,
                                     "champion_uri": None, "version": logged.version}
    if register_as and logged.version is not None:
        client.set_registered_model_alias(register_as, CHAMPION, logged.version)
        out["champion_uri"] = f"models:/{register_as}@{CHAMPION}"
    return out


def protocol_tags(protocol: Dict[str, Any], prefix: str) -> Dict[str, str]:
    return {k: v[:5000] for k, v in flatten(protocol, prefix).items()}


def child_runs(uri: str, experiment: str) -> List[Any]:
    client = open_client(uri, create=False)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get(TRIAL_TAG)]
