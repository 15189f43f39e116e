"""MLflowReporter: the loop's reports become one MLflow run (continued after a resume).

Uses MlflowClient with an explicit run id rather than the fluent active-run state, so it
works the same in a plain process, a Ray Train worker and a Tune trial thread.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from raygan.engine.reporter import Reporter
from raygan.tracking.store import artifact_root, resolve_tracking_uri

RUN_FILE = "run.json"


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, str]:
    out: Dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
    return out


def _client(uri: str):
    import logging

    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating tables..."
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def get_or_create_experiment(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_root(uri))
    except Exception:  # created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


class MLflowReporter(Reporter):
    def __init__(self, config: Dict[str, Any], run_dir: Optional[Path] = None, *, uri: Optional[str] = None,
                 experiment: str = "raygan", run_name: Optional[str] = None, run_id: Optional[str] = None,
                 parent_run_id: Optional[str] = None, register_model: Optional[str] = None,
                 tags: Optional[Dict[str, str]] = None):
        self.uri = resolve_tracking_uri(uri)
        self.client = _client(self.uri)
        self.config = config
        self.run_dir = Path(run_dir) if run_dir else None
        self.register_model = register_model
        self.finished = False
        self.history: List[Dict[str, float]] = []
        self._protocol_logged = False
        run_file = self.run_dir / RUN_FILE if self.run_dir else None
        if run_id is None and run_file is not None and run_file.is_file():
            run_id = json.loads(run_file.read_text()).get("run_id")  # resume: the same MLflow run
        if run_id is not None:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            self.resumed = True
        else:
            exp_id = get_or_create_experiment(self.client, experiment, self.uri)
            all_tags = {"raygan.run_dir": str(self.run_dir.resolve()) if self.run_dir else "",
                        **(tags or {})}
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            run = self.client.create_run(exp_id, run_name=run_name, tags=all_tags)
            self.run_id = run.info.run_id
            self.resumed = False
            self._log_params(config)
        if run_file is not None:
            run_file.parent.mkdir(parents=True, exist_ok=True)
            run_file.write_text(json.dumps({"run_id": self.run_id, "tracking_uri": self.uri}, indent=1))

    # ------------------------------------------------------------------ helpers
    def _log_params(self, config: Dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, v[:6000]) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def _log_metrics(self, values: Dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        ms = [Metric(k, float(v), ts, step) for k, v in values.items()]
        if ms:
            self.client.log_batch(self.run_id, metrics=ms)

    # ------------------------------------------------------------------ Reporter
    def start(self, info):
        self.client.set_tag(self.run_id, "raygan.world_size", str(info.get("world_size", 1)))
        if info.get("resumed_from"):
            self.client.set_tag(self.run_id, "raygan.resumed_from", str(info["resumed_from"]))

    def report(self, metrics, checkpoint_dir=None):
        step = int(round(metrics["kimg"] * 1000))
        numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._log_metrics(numeric, step)
        self.history.append(numeric)
        protocol = metrics.get("protocol")
        if protocol and not self._protocol_logged:
            for k, v in flatten(protocol, "eval.protocol.").items():
                self.client.set_tag(self.run_id, k, v)
            self._protocol_logged = True

    def artifact(self, path, subdir=None, step=None):
        self.client.log_artifact(self.run_id, path, subdir)

    def finish(self, summary, model=None):
        final = summary.get("final") or {}
        step = int(round(summary["kimg"] * 1000))
        self._log_metrics({f"final_{k}": v for k, v in final.items()}, step)
        if summary.get("protocol"):
            for k, v in flatten(summary["protocol"], "final.protocol.").items():
                self.client.set_tag(self.run_id, k, v)
        if self.run_dir is not None:
            cfg_file = self.run_dir / "config.yaml"
            if cfg_file.is_file():
                self.client.log_artifact(self.run_id, str(cfg_file))
            plot = self._plot()
            if plot is not None:
                self.client.log_artifact(self.run_id, str(plot))
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
            self.client.log_artifact(self.run_id, str(self.run_dir / "summary.json"))
        if model is not None:
            self.log_generator(model.module, model.example, final)
        self.client.set_terminated(self.run_id, "FINISHED")
        self.finished = True

    def log_generator(self, generator, example, final: Dict[str, float]) -> Optional[str]:
        info = log_generator_model(self.run_id, generator, example, self.register_model)
        self.client.set_tag(self.run_id, "raygan.model_uri", info.model_uri)
        if self.register_model and info.registered_model_version is not None:
            v = str(info.registered_model_version)
            for k, val in final.items():
                self.client.set_model_version_tag(self.register_model, v, k, str(val))
            self.client.set_tag(self.run_id, "raygan.registered_model", f"models:/{self.register_model}/{v}")
        return info.model_uri

    def _plot(self) -> Optional[Path]:
        if not self.history or self.run_dir is None:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.history
        if self.run_dir and (self.run_dir / "metrics.jsonl").is_file():  # whole run, also before a resume
            rows = [json.loads(line) for line in (self.run_dir / "metrics.jsonl").read_text().splitlines() if line]
        kimg = [r["kimg"] for r in rows]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for key in ("loss_d", "loss_g"):
            axes[0].plot(kimg, [r.get(key, float("nan")) for r in rows], label=key)
        axes[0].set_xlabel("kimg")
        axes[0].legend()
        fid = [(r["kimg"], r["fid"]) for r in rows if "fid" in r]
        if fid:
            axes[1].plot(*zip(*fid), marker="o")
        axes[1].set_xlabel("kimg")
        axes[1].set_ylabel("FID")
        fig.tight_layout()
        out = self.run_dir / "curves.png"
        fig.savefig(out, dpi=90)
        plt.close(fig)
        return out

    def close(self):
        if not self.finished:
            try:
                self.client.set_terminated(self.run_id, "FAILED")
            except Exception:
                pass


def model_requirements() -> List[str]:
    """Given explicitly: MLflow's inference loads the model in a subprocess (seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("torch", "torchvision", "raygan"):
        try:
            out.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except PackageNotFoundError:
            pass
    return out


def log_generator_model(run_id: str, generator, example=None, register_model: Optional[str] = None):
    """Log a CPU copy of the generator to `run_id` (pickle format: G takes (z, y)); register it
    under `register_model` when given. Returns MLflow's ModelInfo."""
    import copy
    import logging

    import mlflow
    import mlflow.pytorch

    G = copy.deepcopy(generator).cpu().eval()
    kwargs: Dict[str, Any] = {}
    if example is not None and not getattr(G, "num_classes", 0):
        kwargs["input_example"] = example.numpy() if hasattr(example, "numpy") else example
    # the pickle format is chosen on purpose; don't repeat MLflow's caution for every run
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
    with mlflow.start_run(run_id=run_id):
        return mlflow.pytorch.log_model(G, name="generator", serialization_format="pickle",
                                        registered_model_name=register_model, await_registration_for=0,
                                        pip_requirements=model_requirements(), **kwargs)
