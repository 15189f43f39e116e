"""The Ray Train host: N TorchTrainer workers run the same loop as a plain process.

Driver (`train_ray`): locks the run dir as a local run does (before the cluster starts: a second
start or a --resume while it trains is one line), checks the options, storage, run name and the
cluster's resources (fails in seconds, never waits forever), creates the MLflow run *before* fit and records it in the run
store (`<storage>/<name>/run.json`), so a worker-group restart and a later `--resume` continue
the same MLflow run; then runs `TorchTrainer.fit()` with `run_worker` on every rank.

`make_torch_trainer` is the one place a TorchTrainer is built: Train runs and multi-worker Tune
trials both come through it. The run directory on storage has a local run's layout, so `raygan
eval/sample --run-dir <storage>/<name>` and `raygan train --run-dir <storage>/<name> --resume`
read it the same way.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional

from raygan.config import Config
from raygan.distributed import cluster
from raygan.distributed.options import RayOptions
from raygan.distributed.reporter import SCORE_ATTR
from raygan.distributed.worker import WorkerSpec, run_worker
from raygan.errors import ConfigError, RayganError, RunDirError
from raygan.hosts.runstore import RunStore, already_complete, default_name


class DistributedError(RayganError):
    """The Ray workers failed (after the allowed restarts)."""


def check_options(cfg: Config, opts: RayOptions) -> None:
    """Checks that involve the config (the options' own checks live on RayOptions)."""
    if cfg.optim.batch_size % opts.workers:
        raise ConfigError(f"config: optim.batch_size {cfg.optim.batch_size} does not split evenly "
                          f"across {opts.workers} workers")
    if opts.gpus_per_worker == 0 and cfg.train.device.startswith("cuda"):
        raise ConfigError(f"config: train.device is {cfg.train.device}, but no --gpus-per-worker were asked for")
    if opts.gpus_per_worker > 0 and cfg.train.device == "cpu":
        raise ConfigError("config: train.device is cpu, but --gpus-per-worker asks for GPUs")
    if opts.keep == "best" and not cfg.eval.metrics:
        raise ConfigError("--keep best ranks checkpoints by the run's first metric: eval.metrics is empty")
    if opts.name is not None and ("/" in opts.name or opts.name in ("", ".", "..")):
        raise ConfigError(f"run name {opts.name!r}: no slashes (it names a folder under the storage path)")


def root_cause(e: BaseException) -> BaseException:
    """The exception a worker raised, from inside Ray's wrappers."""
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


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines() or [type(e).__name__])[-1 if "Traceback" in text else 0][:300]


def forward_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """raygan's and MLflow's settings travel to the workers (they may run on other nodes)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("RAYGAN_", "MLFLOW_"))}
    env.update(extra or {})
    return env


def make_torch_trainer(spec: WorkerSpec, *, workers: int, cpus_per_worker: float, gpus_per_worker: float,
                       run_name: str, storage: str, max_failures: int = 0, keep: int = 2,
                       score_order: Optional[str] = None, callbacks: Optional[List[Any]] = None):
    """A TorchTrainer whose every rank runs `run_worker(spec)`; gloo on CPU, nccl on GPU."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.train.v2.api.config import LoggingConfig

    use_gpu = gpus_per_worker > 0
    return TorchTrainer(
        train_loop_per_worker=run_worker,
        train_loop_config=spec.dump(),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker=cluster.worker_bundle(cpus_per_worker, gpus_per_worker)),
        run_config=RunConfig(
            name=run_name, storage_path=storage, callbacks=callbacks,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=keep,
                                               checkpoint_score_attribute=SCORE_ATTR if score_order else None,
                                               checkpoint_score_order=score_order or "max"),
            logging_config=LoggingConfig(log_level=os.environ.get("RAYGAN_RAY_LOG_LEVEL", "WARNING"))))


def train_ray(cfg: Config, opts: RayOptions, resume: bool = False, progress: bool = True) -> Dict[str, Any]:
    """Run the training on Ray Train; returns rank 0's summary plus where things are."""
    from raygan.hosts import storage as st

    check_options(cfg, opts)
    storage = st.resolve(opts.storage)
    name = opts.name or cfg.tracking.run_name or default_name(cfg.preset)
    store = RunStore(st.join(storage, name))
    store.check_writable()  # (creates nothing)
    # one writer per run, as for a local run: taken before the cluster starts, so a second start or
    # a --resume while it trains is one line and writes nothing
    with store.claim(other="--run-dir (--name)") as claim:
        st.check_writable(storage, "storage")
        return _train_locked(cfg, opts, storage, name, store, claim, resume, progress)


def _train_locked(cfg: Config, opts: RayOptions, storage: str, name: str, store: RunStore, claim, resume: bool,
                  progress: bool) -> Dict[str, Any]:
    from raygan.hosts import storage as st
    from raygan.metrics.registry import direction, objective

    exists = store.holds_run() or st.exists(store.join("checkpoint_manager_snapshot.json"))
    if resume and not exists:
        raise RunDirError(f"no run named '{name}' in {storage}: nothing to resume")
    if not resume and exists:
        raise RunDirError(f"a run named '{name}' already exists in {storage}; pass --resume to continue it "
                          f"or choose another --name")
    if resume:
        done = already_complete(cfg, _completed_nimg(store), store.location, store.latest_checkpoint,
                                lambda line: print(f"raygan: {line}", file=sys.stderr))
        if done is not None:
            return done
    if cfg.tracking.enabled:
        from raygan.tracking.store import preflight

        preflight(cfg)
    lineage = None
    if not resume and cfg.train.init_from:  # read and checked here; each worker loads it again (its rank's copy)
        from raygan.hosts.init_source import resolve_init

        lineage = resolve_init(cfg).lineage
    cluster.connect(opts.address)  # reachable and big enough -- before anything is written
    cluster.check_resources(opts.workers, opts.cpus_per_worker, opts.gpus_per_worker, opts.resource_wait)

    from raygan.config import budget

    cfg, fitted = budget.fit(cfg)  # as the local host: the run records (and resumes with) the fitted config
    if fitted:
        print(f"raygan: {budget.describe(cfg, fitted)}", file=sys.stderr, flush=True)
    run_id = _mlflow_run(cfg, store, name, opts.workers, lineage)
    store.write_config(cfg)
    claim.started = True  # the run exists from here on: never removed
    store.update_record(host="ray-train", workers=opts.workers, cpus_per_worker=opts.cpus_per_worker,
                        gpus_per_worker=opts.gpus_per_worker, storage=storage, name=name, task=cfg.task,
                        **{k.split(".", 1)[1]: v for k, v in (lineage or {}).items()})
    key = objective(list(cfg.eval.metrics))
    spec = WorkerSpec(config=cfg.to_dict(), report_to="train", run_location=store.location, mlflow_run_id=run_id,
                      objective=key, keep_best=opts.keep == "best", progress=False, env=forward_env())
    trainer = make_torch_trainer(spec, workers=opts.workers, cpus_per_worker=opts.cpus_per_worker,
                                 gpus_per_worker=opts.gpus_per_worker, run_name=name, storage=storage,
                                 max_failures=opts.max_failures, keep=cfg.train.keep_checkpoints,
                                 score_order=direction(key) if opts.keep == "best" else None)
    print(f"raygan: {'resuming' if resume else 'training'} {cfg.task} on {opts.workers} Ray worker(s) in "
          f"{store}" + (f"  (MLflow run {run_id})" if run_id else ""), file=sys.stderr, flush=True)
    tail = MetricsTail(store, cfg.train.total_kimg) if progress else None
    try:
        result = trainer.fit()
    except (KeyboardInterrupt, SystemExit) as e:
        # Ray Train installs its own SIGINT handler inside fit() and ends it with SystemExit
        _mark(cfg, run_id, KeyboardInterrupt())
        print(f"raygan: interrupted; resume with: raygan train --run-dir {store} --resume", file=sys.stderr)
        if isinstance(e, SystemExit):
            raise KeyboardInterrupt from None
        raise
    except Exception as e:
        cause = root_cause(e)
        _mark(cfg, run_id, cause)
        if isinstance(cause, (RayganError, KeyboardInterrupt)):
            raise cause from None
        raise DistributedError(f"training failed on the Ray workers: {type(cause).__name__}: "
                               f"{first_line(cause)} (worker logs above; resume with --resume)") from None
    finally:
        if tail is not None:
            tail.stop()
    summary: Dict[str, Any] = dict(result.return_value or {})
    latest = store.latest_checkpoint()
    summary.update({"run_dir": store.location, "storage": storage, "name": name, "workers": opts.workers,
                    "checkpoint": latest, "ray_metrics": dict(result.metrics or {})})
    if run_id:
        summary["mlflow_run_id"], summary["tracking_uri"] = run_id, cfg.tracking.uri
    return summary


def _completed_nimg(store: RunStore) -> Optional[int]:
    """Images seen by the run's latest checkpoint (its name, ckpt-<nimg>), or None."""
    from raygan.engine.checkpoint import CHECKPOINT_NAME

    latest = store.latest_checkpoint()
    m = CHECKPOINT_NAME.match(latest.rstrip("/").rsplit("/", 1)[-1]) if latest else None
    return int(m.group(1)) if m else None


def _mlflow_run(cfg: Config, store: RunStore, name: str, workers: int,
                lineage: Optional[Dict[str, str]] = None) -> Optional[str]:
    """The MLflow run, created by the driver (a restart or a resume continues it)."""
    if not cfg.tracking.enabled:
        return None
    from raygan.tracking.reporter import MLflowReporter

    rep = MLflowReporter(cfg.to_dict(), store, uri=cfg.tracking.uri, experiment=cfg.tracking.experiment,
                         run_name=name, register_model=cfg.tracking.register_model,
                         tags={"raygan.host": "ray-train", "raygan.workers": str(workers), **(lineage or {})})
    return rep.run_id


def _mark(cfg: Config, run_id: Optional[str], error: BaseException) -> None:
    """A run the workers did not finish is KILLED (Ctrl-C) or FAILED, never left RUNNING."""
    if not run_id:
        return
    try:
        from raygan.tracking.store import open_client, set_status

        client = open_client(cfg.tracking.uri)
        if client.get_run(run_id).info.status == "RUNNING":
            status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            set_status(client, run_id, status, {"raygan.error": str(error)[:5000]} if status == "FAILED" else {})
    except Exception:
        pass


class MetricsTail:
    """The driver prints each tick of a Ray run as a local run does: it follows the run's
    metrics.jsonl (written by rank 0 into the run store) from a background thread."""

    def __init__(self, store: RunStore, total_kimg: float, interval_s: float = 1.0):
        import threading

        from raygan.engine.reporter import ConsoleReporter

        self.store, self.interval = store, interval_s
        self.console = ConsoleReporter(total_kimg, bar=False)
        self.seen = len(store.metrics())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raygan-metrics-tail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        try:
            rows = self.store.metrics()
        except Exception:  # a partly written line: next time
            return
        if len(rows) < self.seen:  # truncated by a restart's redo
            self.seen = len(rows)
        for row in rows[self.seen:]:
            self.console.report(row)
        self.seen = len(rows)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()
