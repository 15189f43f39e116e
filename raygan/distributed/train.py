"""The Ray Train host: N TorchTrainer workers run the same loop as a plain process.

Driver (this process, `train_ray`):
  checks the storage, the run name and the cluster's resources (fails in seconds, never
  waits forever), writes `<storage>/<name>/config.yaml`, creates the MLflow run *before*
  fit and writes its id to `<storage>/<name>/run.json` -- so a worker-group restart and a
  later `--resume` continue the same MLflow run -- then runs `TorchTrainer.fit()`.

Workers (`train_loop_per_worker`):
  build `Trainer(cfg, ..., prepare_model=ray.train.torch.prepare_model,
  device=ray.train.torch.get_device())` (G and D each DDP-wrapped; gloo on CPU, nccl on GPU),
  load `ray.train.get_checkpoint()` when there is one (a restart after a fault, or --resume),
  and run. Every rank reports every tick (`ray.train.report` is a barrier); at snapshot ticks
  each rank hands over its own files (rank 0: state.pt + meta.json, every rank: its
  rng-rank<r>.pt) and Ray merges them into `<storage>/<name>/checkpoints/ckpt-<nimg>/`.
  Only rank 0 talks to MLflow (metrics, sample grids, the final generator).

The run directory on storage therefore has the same layout as a local run
(config.yaml, run.json, checkpoints/ckpt-<nimg>/state.pt), so with a local or NFS storage
path `raygan eval --run-dir <storage>/<name>` and `raygan sample --run-dir ...` work on it.

Checkpoint retention (`CheckpointConfig`): keep="last" keeps the newest
`train.keep_checkpoints`; keep="best" keeps the `train.keep_checkpoints` with the lowest
FID (or KID) *plus* the newest one (Ray never deletes the latest, which is what a restart
resumes from). Every checkpointed report carries the score attribute `ckpt_score`: the
metric when it was evaluated at that tick, +inf otherwise (so unevaluated snapshots are
the first to go).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from raygan.config import Config, build_config
from raygan.distributed import cluster
from raygan.engine.reporter import ConsoleReporter, Reporter
from raygan.errors import ConfigError, RayganError, RunDirError

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
CHECKPOINT_DIRNAME = "checkpoints"
SCORE_ATTR = "ckpt_score"
# RAYGAN_FAULT_INJECT="rank=1,kimg=0.3,marker=/tmp/x": that rank SIGKILLs itself once (tests only)
FAULT_ENV = "RAYGAN_FAULT_INJECT"
_FORWARD_ENV_PREFIXES = ("RAYGAN_", "MLFLOW_")


class DistributedError(RayganError):
    """The Ray workers failed (after the allowed restarts)."""


@dataclass
class RayOptions:
    workers: int
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    storage: Optional[str] = None  # local/NFS path or URI; default $RAYGAN_STORAGE or ./runs
    name: Optional[str] = None  # the run's name = RunConfig(name); default <preset>-<time>
    max_failures: int = 0
    address: Optional[str] = None
    keep: str = "last"  # last | best
    resume: bool = False
    progress: bool = True
    resource_wait_s: float = 0.0
    env: Dict[str, str] = field(default_factory=dict)  # extra env vars for the workers


# ---------------------------------------------------------------------------- helpers
def default_name(cfg: Config) -> str:
    return cfg.tracking.run_name or f"{cfg.preset or 'custom'}-{time.strftime('%Y%m%d-%H%M%S')}"


def score_metric(cfg: Config) -> Optional[str]:
    """The lower-is-better metric keep="best" ranks checkpoints by."""
    for m in ("fid", "kid"):
        if m in cfg.eval.metrics:
            return m
    return None


def holds_run(storage: str, name: str) -> bool:
    from ray.train.v2._internal.constants import CHECKPOINT_MANAGER_SNAPSHOT_FILENAME

    return any(cluster.exists(storage, f"{name}/{f}")
               for f in (CONFIG_FILE, RUN_FILE, CHECKPOINT_DIRNAME, CHECKPOINT_MANAGER_SNAPSHOT_FILENAME))


def load_run_config(storage: str, name: str, overrides: Optional[List[str]] = None) -> Config:
    """The stored run's own config (for --resume), with --set overrides on top."""
    import yaml

    from raygan.config import deep_merge, parse_override

    text = cluster.read_text(storage, f"{name}/{CONFIG_FILE}")
    if text is None:
        raise RunDirError(f"no run named '{name}' in {storage} ({CONFIG_FILE} missing): nothing to resume")
    data = yaml.safe_load(text) or {}
    for item in overrides or []:
        data = deep_merge(data, parse_override(item))
    return build_config(data)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines() or [type(e).__name__])[-1 if "Traceback" in text else 0][:300]


def _root_cause(e: BaseException) -> BaseException:
    seen = set()
    while id(e) not in seen:
        seen.add(id(e))
        failures = getattr(e, "worker_failures", None)
        if failures:
            e = failures[min(failures)]
            continue
        for attr in ("controller_failure", "health_check_failure", "cause", "failure"):
            inner = getattr(e, attr, None)
            if isinstance(inner, BaseException):
                e = inner
                break
        else:
            if e.__cause__ is not None:
                e = e.__cause__
                continue
            return e
    return e


def _forward_env(extra: Dict[str, str]) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_ENV_PREFIXES)}
    env.update(extra)
    return env


# ---------------------------------------------------------------------------- driver
def validate_options(cfg: Config, opts: RayOptions) -> None:
    if opts.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if opts.cpus_per_worker <= 0:
        raise ConfigError("--cpus-per-worker must be positive")
    if opts.gpus_per_worker < 0:
        raise ConfigError("--gpus-per-worker must not be negative")
    if opts.max_failures < -1:
        raise ConfigError("--max-failures must be -1 (retry forever), 0 or more")
    if cfg.optim.batch_size % opts.workers:
        raise ConfigError(f"config: optim.batch_size {cfg.optim.batch_size} does not split evenly "
                          f"across {opts.workers} workers")
    if opts.gpus_per_worker == 0 and cfg.train.device.startswith("cuda"):
        raise ConfigError(f"config: train.device is {cfg.train.device}, but no --gpus-per-worker were asked for")
    if opts.gpus_per_worker > 0 and cfg.train.device == "cpu":
        raise ConfigError("config: train.device is cpu, but --gpus-per-worker asks for GPUs")
    if opts.keep not in ("last", "best"):
        raise ConfigError(f"--keep must be 'last' or 'best', got {opts.keep!r}")
    if opts.keep == "best" and score_metric(cfg) is None:
        raise ConfigError("--keep best ranks checkpoints by FID or KID: add fid or kid to eval.metrics")


def _create_mlflow_run(cfg: Config, name: str, run_path: str, workers: int) -> Dict[str, str]:
    from raygan.tracking.reporter import MLflowReporter

    rep = MLflowReporter(cfg.to_dict(), None, uri=cfg.tracking.uri, experiment=cfg.tracking.experiment,
                         run_name=name, register_model=cfg.tracking.register_model,
                         tags={"raygan.run_dir": run_path, "raygan.host": "ray-train",
                               "raygan.workers": str(workers)})
    return {"run_id": rep.run_id, "tracking_uri": rep.uri}


def _mark_failed(run: Optional[Dict[str, str]]) -> None:
    if not run:
        return
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=run["tracking_uri"])
        if client.get_run(run["run_id"]).info.status == "RUNNING":
            client.set_terminated(run["run_id"], "FAILED")
    except Exception:
        pass


def train_ray(cfg: Config, opts: RayOptions) -> Dict[str, Any]:
    """Run the training on Ray Train; returns the summary (rank 0's, plus where things are)."""
    validate_options(cfg, opts)
    storage = cluster.resolve_storage(opts.storage)
    cluster.check_storage(storage)
    name = opts.name or default_name(cfg)
    if "/" in name or name in (".", ".."):
        raise ConfigError(f"run name {name!r}: no slashes (it names a folder under the storage path)")
    run_path = cluster.join(storage, name)
    exists = holds_run(storage, name)
    if opts.resume and not exists:
        raise RunDirError(f"no run named '{name}' in {storage}: nothing to resume")
    if not opts.resume and exists:
        raise RunDirError(f"a run named '{name}' already exists in {storage}; pass --resume to continue it "
                          f"or choose another --name")

    # MLflow: an absolute URI, the same for the driver and every worker on every node
    if cfg.tracking.enabled:
        from raygan.tracking.store import resolve_tracking_uri

        cfg = cfg.model_copy(deep=True)
        cfg.tracking.uri = resolve_tracking_uri(cfg.tracking.uri)

    # the cluster: reachable, and big enough -- before anything is written
    cluster.connect(opts.address)
    cluster.check_resources(opts.workers, opts.cpus_per_worker, opts.gpus_per_worker, opts.resource_wait_s)

    run: Optional[Dict[str, str]] = None
    if cfg.tracking.enabled:
        stored = cluster.read_text(storage, f"{name}/{RUN_FILE}") if opts.resume else None
        try:
            run = json.loads(stored) if stored else _create_mlflow_run(cfg, name, run_path, opts.workers)
        except RayganError:
            raise
        except Exception as e:
            raise RayganError(f"MLflow at {cfg.tracking.uri}: {type(e).__name__}: {_first_line(e)}") from None
    cluster.write_text(storage, f"{name}/{CONFIG_FILE}", cfg.to_yaml())
    if run:
        cluster.write_text(storage, f"{name}/{RUN_FILE}", json.dumps(run, indent=1))

    trainer = _make_trainer(cfg, opts, storage, name, run)
    try:
        result = trainer.fit()
    except KeyboardInterrupt:
        _mark_failed(run)
        raise
    except Exception as e:
        _mark_failed(run)
        cause = _root_cause(e)
        if isinstance(cause, RayganError):
            raise cause
        raise DistributedError(f"training failed on the Ray workers: {type(cause).__name__}: "
                               f"{_first_line(cause)} (worker logs above; resume with --resume)") from None

    summary: Dict[str, Any] = dict(result.return_value or {})
    ckpt = result.checkpoint
    summary.update({
        "run_dir": run_path, "storage": storage, "name": name, "workers": opts.workers,
        "checkpoint": (cluster.join(storage, name, ckpt.path.split(f"/{name}/", 1)[1])
                       if ckpt is not None and f"/{name}/" in ckpt.path else getattr(ckpt, "path", None)),
        "ray_metrics": dict(result.metrics or {}),
    })
    if run:
        summary["mlflow_run_id"], summary["tracking_uri"] = run["run_id"], run["tracking_uri"]
    return summary


def _make_trainer(cfg: Config, opts: RayOptions, storage: str, name: str, run: Optional[Dict[str, str]]):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.v2.api.config import LoggingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    use_gpu = opts.gpus_per_worker > 0
    score = score_metric(cfg) if opts.keep == "best" else None
    loop_config = {
        "config": cfg.to_dict(),
        "mlflow_run_id": run["run_id"] if run else None,
        "name": name,
        "score_metric": score,
        "progress": opts.progress,
        "env": _forward_env(opts.env),
    }
    ckpt_config = CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints,
                                   checkpoint_score_attribute=SCORE_ATTR if score else None,
                                   checkpoint_score_order="min")
    return TorchTrainer(
        train_loop_per_worker=train_loop_per_worker,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=opts.workers, use_gpu=use_gpu,
                                     resources_per_worker=cluster.worker_bundle(opts.cpus_per_worker,
                                                                                opts.gpus_per_worker)),
        run_config=RunConfig(name=name, storage_path=storage,
                             failure_config=FailureConfig(max_failures=opts.max_failures),
                             checkpoint_config=ckpt_config,
                             logging_config=LoggingConfig(log_level=os.environ.get("RAYGAN_RAY_LOG_LEVEL", "WARNING"))),
    )


# ---------------------------------------------------------------------------- workers
def ray_metrics(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """The numeric part of a tick's report, with the final evaluation as final_<name>."""
    out = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out.update({f"final_{k}": v for k, v in (metrics.get("final") or {}).items()})
    return out


def ray_checkpoint(checkpoint_dir: Optional[str], kimg: float):
    """(Checkpoint, its dir name under storage: checkpoints/ckpt-<nimg>), or (None, None)."""
    if checkpoint_dir is None:
        return None, None
    from ray.train import Checkpoint

    from raygan.engine.checkpoint import checkpoint_name

    return (Checkpoint.from_directory(checkpoint_dir),
            f"{CHECKPOINT_DIRNAME}/{checkpoint_name(int(round(kimg * 1000)))}")


class RayReporter(Reporter):
    """Reports every tick to Ray (a barrier across ranks) with this rank's checkpoint files;
    rank 0 also reports to MLflow and the console."""

    persists_checkpoints = True

    def __init__(self, rank: int, mlflow_rep: Optional[Reporter] = None, console: Optional[Reporter] = None,
                 score_metric: Optional[str] = None):
        self.rank = rank
        self.mlflow = mlflow_rep if rank == 0 else None
        self.console = console if rank == 0 else None
        self.score_metric = score_metric
        self._fault = _parse_fault(os.environ.get(FAULT_ENV, ""))

    def _local(self) -> List[Reporter]:
        return [r for r in (self.console, self.mlflow) if r is not None]

    def start(self, info):
        for r in self._local():
            r.start(info)
        if self.mlflow is not None and info.get("resumed_from"):
            # a visible mark in the run where a restart (or --resume) picked up
            self.mlflow._log_metrics({"restart_kimg": info["nimg"] / 1000.0}, int(info["nimg"]))

    def progress(self, nimg):
        if self.console is not None:
            self.console.progress(nimg)

    def report(self, metrics, checkpoint_dir=None):
        import ray.train

        for r in self._local():
            r.report(metrics, checkpoint_dir)
        self._maybe_fault(metrics)
        out = ray_metrics(metrics)
        ckpt, name = ray_checkpoint(checkpoint_dir, metrics["kimg"])
        if ckpt is not None:
            if self.score_metric:
                value = metrics.get(self.score_metric)
                out[SCORE_ATTR] = float(value) if value is not None and math.isfinite(value) else math.inf
        ray.train.report(out, checkpoint=ckpt, checkpoint_dir_name=name)

    def artifact(self, path, subdir=None, step=None):
        if self.mlflow is not None:
            self.mlflow.artifact(path, subdir, step)

    def finish(self, summary, model=None):
        if self.mlflow is not None:
            self.mlflow.finish(summary, model)

    def close(self):
        for r in self._local():
            r.close()

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


def train_loop_per_worker(config: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """One Ray Train worker: the core loop with DDP-prepared G and D."""
    os.environ.update(config.get("env") or {})
    import ray.train
    import ray.train.torch

    from raygan.engine import rundir
    from raygan.trainer import Trainer

    _quiet_ray_train_worker()
    cfg = build_config(config["config"])
    rank = ray.train.get_context().get_world_rank()
    local_dir = Path(tempfile.mkdtemp(prefix=f"raygan-{config['name']}-rank{rank}-"))
    mlflow_rep = console = None
    if rank == 0:
        rundir.write_config(local_dir, cfg)  # logged as an artifact at the end
        # sys.__stderr__: one line per tick (Ray Train's print patch would tee sys.stderr twice)
        console = ConsoleReporter(cfg.train.total_kimg, enabled=config.get("progress", True),
                                  stream=sys.__stderr__)
        if cfg.tracking.enabled and config.get("mlflow_run_id"):
            from raygan.tracking.reporter import MLflowReporter

            mlflow_rep = MLflowReporter(cfg.to_dict(), local_dir, uri=cfg.tracking.uri,
                                        experiment=cfg.tracking.experiment, run_id=config["mlflow_run_id"],
                                        register_model=cfg.tracking.register_model)
    reporter = RayReporter(rank, mlflow_rep, console, config.get("score_metric"))
    try:
        trainer = Trainer(cfg, local_dir if rank == 0 else None, reporter=reporter,
                          prepare_model=ray.train.torch.prepare_model, device=ray.train.torch.get_device())
        ckpt = ray.train.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                trainer.load(Path(d))
        summary = trainer.run()
    finally:
        reporter.close()
        shutil.rmtree(local_dir, ignore_errors=True)
    if rank != 0:
        return None
    summary["world_size"] = trainer.world
    return json.loads(json.dumps(summary, default=str))
