"""The one Ray worker entry: a typed spec and `run_worker()` serve Ray Train runs (each rank of a
TorchTrainer), one-worker Tune trials (in the trial's own process) and the ranks of a
multi-worker Tune trial's TorchTrainer.

    run_worker(WorkerSpec(config=..., report_to="train", run_location=..., mlflow_run_id=...).dump())

`report_to` says how a tick leaves the worker: "train" -> `ray.train.report` (a barrier across
ranks; in a W>1 trial Tune's `TuneReportCallback` forwards it), "tune" -> `ray.tune.report`.
Rank 0 also keeps the run's records: console lines, metrics.jsonl and pictures in the run store,
MLflow (`raygan.hosts.reporters.make_reporters`, the same reporters as a local run).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Literal, Optional

from pydantic import BaseModel, ConfigDict


class WorkerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: Dict[str, Any]
    report_to: Literal["train", "tune"] = "train"
    run_location: Optional[str] = None  # a RunStore location: rank 0 writes the run's records there
    mlflow_run_id: Optional[str] = None
    objective: Optional[str] = None  # metric value that ranks checkpoints / drives the scheduler
    keep_best: bool = False  # score checkpoints by `objective` (Ray's CheckpointConfig keeps the best)
    only_evaluated: bool = False  # report only ticks that carry `objective` (Tune's scheduler needs it)
    log_model: bool = True  # a sweep logs only its champion
    progress: bool = True
    console_prefix: str = ""
    env: Dict[str, str] = {}

    def dump(self) -> Dict[str, Any]:
        return self.model_dump(mode="json")


def _quiet_ray_train_worker() -> None:
    """Ray 2.60 logs every report ("Reporting training result ...") at INFO from a logger named
    after its file, which LoggingConfig(log_level) does not reach: lower that one logger."""
    level = os.environ.get("RAYGAN_RAY_LOG_LEVEL", "WARNING").upper()
    try:
        import logging

        from ray.train.v2._internal.execution import context as _ctx

        logging.getLogger(_ctx.__file__).setLevel(getattr(logging, level, logging.WARNING))
    except Exception:  # another Ray layout: leave its logging alone
        pass


def _host(spec: WorkerSpec):
    """(rank, prepare_model, device, get_checkpoint) for the way this worker was started."""
    if spec.report_to == "train":
        import ray.train
        import ray.train.torch

        _quiet_ray_train_worker()
        return (ray.train.get_context().get_world_rank(), ray.train.torch.prepare_model,
                ray.train.torch.get_device(), ray.train.get_checkpoint)
    import ray.tune

    return 0, None, None, ray.tune.get_checkpoint


def run_worker(spec_dict: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Build the task, restore Ray's checkpoint if there is one, run the loop, report."""
    spec = WorkerSpec.model_validate(spec_dict)
    os.environ.update(spec.env)
    from raygan.tasks import build_config
    from raygan.distributed.reporter import RayReporter
    from raygan.engine.loop import Trainer

    cfg = build_config(spec.config)
    rank, prepare_model, device, get_checkpoint = _host(spec)
    local_dir = Path(tempfile.mkdtemp(prefix=f"raygan-worker-rank{rank}-"))
    local = mlflow_rep = None
    if rank == 0:
        local, mlflow_rep = _rank0_reporters(cfg, spec)
    reporter = RayReporter(spec, rank, local)
    error: Optional[BaseException] = None
    try:
        ckpt = get_checkpoint()
        init = None
        if ckpt is None and cfg.train.init_from:  # --init-from: every rank reads the same source
            from raygan.hosts.init_source import resolve_init

            init = resolve_init(cfg)
        trainer = Trainer(cfg, local_dir if rank == 0 else None, reporter=reporter,
                          prepare_model=prepare_model, device=device, init=init)
        reporter.applied = trainer.task.applied()
        if mlflow_rep is not None:
            _log_applied(mlflow_rep, reporter.applied)
        if ckpt is not None:
            with ckpt.as_directory() as d:
                trainer.load(Path(d))
                meta = json.loads((Path(d) / "meta.json").read_text()) if (Path(d) / "meta.json").is_file() else {}
            if spec.report_to == "tune" and trainer.nimg >= cfg.train.total_nimg:
                reporter.report_done(meta.get("metrics") or {})  # restored at its end: tell Tune, nothing to redo
                return None
        summary = trainer.run()
    except BaseException as e:
        error = e
        raise
    finally:
        reporter.close(error)
        shutil.rmtree(local_dir, ignore_errors=True)
    if rank != 0:
        return None
    summary["world_size"] = trainer.world
    if mlflow_rep is not None and mlflow_rep.model is not None:
        summary["model_uri"] = mlflow_rep.model.registered or mlflow_rep.model.model_uri
    return json.loads(json.dumps(summary, default=str))


def _rank0_reporters(cfg, spec: WorkerSpec):
    """Rank 0's records: the same reporters as a local run (console lines on the real stderr:
    Ray Train's print patch would tee sys.stderr twice)."""
    from raygan.engine.reporter import ConsoleReporter, MultiReporter
    from raygan.hosts.reporters import make_reporters
    from raygan.hosts.runstore import RunStore

    if spec.run_location is None:  # a trial: console + MLflow only, its checkpoints live with Tune
        reps = [ConsoleReporter(cfg.train.total_kimg, enabled=spec.progress, bar=False, stream=sys.__stderr__,
                                prefix=spec.console_prefix)]
        mlflow_rep = None
        if cfg.tracking.enabled and spec.mlflow_run_id:
            from raygan.tracking.reporter import MLflowReporter

            mlflow_rep = MLflowReporter(cfg.to_dict(), None, uri=cfg.tracking.uri, experiment=cfg.tracking.experiment,
                                        run_id=spec.mlflow_run_id)
            reps.append(mlflow_rep)
        return MultiReporter(reps), mlflow_rep
    cfg_for_mlflow = cfg if spec.mlflow_run_id else cfg.model_copy(
        update={"tracking": cfg.tracking.model_copy(update={"enabled": False})})
    reps, mlflow_rep = make_reporters(cfg_for_mlflow, RunStore(spec.run_location), progress=False,
                                      run_id=spec.mlflow_run_id, console_stream=sys.__stderr__, copy_files=True)
    if not spec.progress:
        reps.reporters = [r for r in reps.reporters if not isinstance(r, ConsoleReporter)]
    return reps, mlflow_rep


def _log_applied(mlflow_rep, applied: Dict[str, Any]) -> None:
    from mlflow.entities import Param

    try:
        params = [Param(f"applied.{k[len('applied_'):]}", str(v)) for k, v in applied.items()]
        mlflow_rep.client.log_batch(mlflow_rep.run_id, params=params)
    except Exception:  # already logged with the same values by an earlier attempt
        pass
