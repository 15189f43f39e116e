"""Hyperparameter search: Ray Tune + Optuna (TPE, define-by-run) + ASHA, minimising FID.

Driver (`run_sweep`, `resume_sweep`):
  validates the search space against the base config, checks the storage and that one trial
  fits the cluster (sizing `max_concurrent_trials` to what fits), creates the sweep's MLflow
  parent run, writes `<storage>/<name>/raygan-sweep.json` (everything `--resume` needs), then
  runs `Tuner.fit()` (or `Tuner.restore(..., resume_errored=True).fit()`).

Trials (`trial_fn`, a Tune function trainable):
  the sampled values are applied to the base config (`SearchSpace.apply`); the trial's MLflow
  child run is found by its tags (trial id + sweep) or created, so a retried or resumed trial
  continues the same run. With one worker the core loop runs in the trial's process and
  reports every tick with `ray.tune.report` (metrics + a checkpoint); with W workers the trial
  builds a TorchTrainer (`RunConfig(name=f"train-{trial_id}", callbacks=[TuneReportCallback()])`)
  whose rank 0 reports through Ray Train. Every tick is evaluated with the cheap proxy
  (`eval.num_samples` generated images, the config's extractor): that `fid` is what ASHA
  (rungs in kimg) and TPE see. What the trial *really* trains with is read back from the
  built objects (optimiser lr/betas, loss and regulariser classes, n_critic, ...) and reported
  as `applied_*` metrics and `applied.*` MLflow params.

Afterwards (`finish_sweep`): the top-k trials by proxy FID are re-evaluated from their last
checkpoints with more samples and several evaluation seeds (different from the proxy's noise),
the winner is chosen on the mean, and its generator is logged to its child run, registered and
given the alias `champion`. A trial whose losses go non-finite raises DivergenceError: Tune
marks it errored (the reason is tagged on its MLflow run) and the sweep goes on.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from raygan.config import Config, build_config
from raygan.distributed import cluster
from raygan.distributed.search_space import SearchSpace, load_space
from raygan.engine.reporter import Reporter
from raygan.errors import ConfigError, DivergenceError, RayganError, RunDirError

SWEEP_FILE = "raygan-sweep.json"
TRAINERS_DIR = "trainers"  # <storage>/<name>/trainers/train-<trial_id>: W>1 trials' Ray Train runs
METRIC = "fid"
TRIAL_TAG = "raygan.trial_id"
SWEEP_TAG = "raygan.sweep"  # the parent run id, on every child run
CHAMPION = "champion"
_DRIVER_CPU_W = 0.25  # CPU reserved for a W>1 trial's own process (it only waits on its workers)
_FORWARD_ENV_PREFIXES = ("RAYGAN_", "MLFLOW_")


class TuneError(RayganError):
    """A sweep that cannot run as asked (options, resources, nothing to resume)."""


@dataclass
class SweepOptions:
    samples: int = 8
    max_concurrent: Optional[int] = None  # None: as many as the cluster holds
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    budget_kimg: Optional[float] = None  # per trial; None: the config's train.total_kimg
    total_kimg: Optional[float] = None  # optional cap on the kimg of all trials together
    scheduler: str = "asha"  # asha | fifo
    sampler: str = "tpe"  # tpe | random
    seed: int = 0  # the sampler's seed
    grace_kimg: Optional[float] = None  # ASHA's first rung; None: budget / reduction_factor^2
    reduction_factor: float = 3.0
    tick_kimg: Optional[float] = None  # evaluation interval; None: min(train.tick_kimg, grace)
    top_k: int = 3
    reeval_samples: Optional[int] = None  # None: eval.final_num_samples
    reeval_seeds: int = 3
    register_model: Optional[str] = None  # None: tracking.register_model
    storage: Optional[str] = None
    name: Optional[str] = None
    address: Optional[str] = None
    max_failures: int = 0  # retries of a failed trial (from its last checkpoint)
    progress: bool = True  # one line per finished trial on stderr
    finish: bool = True  # False: stop after the trials (no re-evaluation, no champion; benchmarks)


# ---------------------------------------------------------------------------- options
def validate_options(cfg: Config, opts: SweepOptions) -> None:
    if opts.samples < 1:
        raise TuneError("--samples must be at least 1")
    if opts.max_concurrent is not None and opts.max_concurrent < 1:
        raise TuneError("--max-concurrent must be at least 1")
    if opts.workers_per_trial < 1:
        raise TuneError("--workers-per-trial must be at least 1")
    if opts.cpus_per_worker <= 0:
        raise TuneError("--cpus-per-worker must be positive")
    if opts.gpus_per_worker < 0:
        raise TuneError("--gpus-per-worker must not be negative")
    if opts.scheduler not in ("asha", "fifo"):
        raise TuneError(f"--scheduler must be asha or fifo, got {opts.scheduler!r}")
    if opts.sampler not in ("tpe", "random"):
        raise TuneError(f"--sampler must be tpe or random, got {opts.sampler!r}")
    budget = budget_kimg(cfg, opts)
    if budget <= 0:
        raise TuneError("--budget-kimg must be positive")
    if opts.total_kimg is not None and opts.total_kimg <= 0:
        raise TuneError("--total-kimg must be positive")
    if opts.reduction_factor <= 1:
        raise TuneError("--reduction-factor must be above 1")
    grace = grace_kimg(cfg, opts)
    if not 0 < grace <= budget:
        raise TuneError(f"--grace-kimg must be in (0, budget {budget:g}], got {grace:g}")
    if opts.tick_kimg is not None and opts.tick_kimg <= 0:
        raise TuneError("--tick-kimg must be positive")
    if opts.top_k < 1:
        raise TuneError("--top-k must be at least 1")
    if opts.reeval_seeds < 1:
        raise TuneError("--reeval-seeds must be at least 1")
    if opts.reeval_samples is not None and opts.reeval_samples < 2:
        raise TuneError("--reeval-samples must be at least 2")
    if opts.max_failures < -1:
        raise TuneError("--max-failures must be -1 (retry forever), 0 or more")
    if opts.gpus_per_worker == 0 and cfg.train.device.startswith("cuda"):
        raise TuneError(f"config: train.device is {cfg.train.device}, but no --gpus-per-worker were asked for")


def budget_kimg(cfg: Config, opts: SweepOptions) -> float:
    return float(opts.budget_kimg if opts.budget_kimg is not None else cfg.train.total_kimg)


def grace_kimg(cfg: Config, opts: SweepOptions) -> float:
    if opts.grace_kimg is not None:
        return float(opts.grace_kimg)
    return budget_kimg(cfg, opts) / opts.reduction_factor ** 2


def trial_base(cfg: Config, opts: SweepOptions) -> Dict[str, Any]:
    """The config every trial starts from: the user's, with the sweep's training protocol.

    Each tick is evaluated (the proxy the scheduler and sampler see) with the same sample
    count at the end as during training, and checkpointed (ASHA may stop a trial at any rung;
    a resumed trial continues from its last tick). Trials log no model; the winner's is
    logged after the re-evaluation."""
    d = cfg.to_dict()
    budget = budget_kimg(cfg, opts)
    tick = opts.tick_kimg if opts.tick_kimg is not None else min(cfg.train.tick_kimg, grace_kimg(cfg, opts))
    d["train"].update({"total_kimg": budget, "tick_kimg": min(tick, budget), "eval_ticks": 1, "snapshot_ticks": 1})
    d["eval"]["final_num_samples"] = d["eval"]["num_samples"]
    if METRIC not in d["eval"]["metrics"]:
        d["eval"]["metrics"] = [METRIC] + list(d["eval"]["metrics"])
    d["tracking"]["register_model"] = None
    return d


# ---------------------------------------------------------------------------- resources
def trial_resources(opts: SweepOptions) -> Dict[str, float]:
    """What Tune reserves for the trial's own process."""
    if opts.workers_per_trial == 1:
        res = {"cpu": opts.cpus_per_worker}
        if opts.gpus_per_worker:
            res["gpu"] = opts.gpus_per_worker
        return res
    return {"cpu": _DRIVER_CPU_W}


def trial_capacity(nodes: List[Dict[str, float]], opts: SweepOptions) -> int:
    """How many trials run at once on these nodes (each W>1 trial: W worker bundles + its own
    process; Tune does not see the workers, so this is where they are counted)."""
    W = opts.workers_per_trial
    bundle = cluster.worker_bundle(opts.cpus_per_worker, opts.gpus_per_worker)
    if W == 1:
        return cluster.bundles_that_fit(nodes, bundle)
    nodes = [dict(n) for n in nodes]
    count = 0
    while True:  # place trials one by one: its process, then its W workers
        placed = _take(nodes, {"CPU": _DRIVER_CPU_W}, 1) and _take(nodes, bundle, W)
        if not placed:
            return count
        count += 1


def _take(nodes: List[Dict[str, float]], bundle: Dict[str, float], n: int) -> bool:
    trial = [dict(x) for x in nodes]
    for _ in range(n):
        for res in trial:
            if all(res.get(k, 0.0) + 1e-9 >= v for k, v in bundle.items()):
                for k, v in bundle.items():
                    res[k] = res.get(k, 0.0) - v
                break
        else:
            return False
    nodes[:] = trial
    return True


def size_concurrency(opts: SweepOptions, nodes: Optional[List[Dict[str, float]]] = None) -> int:
    """max_concurrent_trials from the cluster; a trial that cannot fit at all is an error."""
    nodes = nodes if nodes is not None else cluster._alive_nodes()
    cap = trial_capacity(nodes, opts)
    W = opts.workers_per_trial
    if cap < 1:
        need = f"{W} worker{'s' if W != 1 else ''} x {cluster.worker_bundle(opts.cpus_per_worker, opts.gpus_per_worker)}"
        raise TuneError(f"the cluster cannot place one trial ({need}): it has {cluster._describe(nodes)}; "
                        f"use fewer --workers-per-trial or smaller --cpus-per-worker/--gpus-per-worker")
    want = opts.max_concurrent or cap
    if want > cap:
        print(f"raygan: note: --max-concurrent {want} lowered to {cap}: that is how many trials of "
              f"{W} worker(s) fit on the cluster", file=sys.stderr)
    return max(1, min(want, cap, opts.samples))


# ---------------------------------------------------------------------------- MLflow helpers
def _mlflow_client(uri: str):
    from raygan.tracking.reporter import _client

    return _client(uri)


def find_child_run(client, experiment_id: str, parent_run_id: str, trial_id: str) -> Optional[str]:
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}' and tags.`{SWEEP_TAG}` = '{parent_run_id}'",
        max_results=5)
    return runs[0].info.run_id if runs else None


def mlflow_key(name: str) -> str:
    """A name MLflow accepts as a param/metric key (alphanumerics, _ - . space : /)."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name)


def _set_status(client, run_id: str, status: str, tags: Optional[Dict[str, str]] = None) -> None:
    try:
        for k, v in (tags or {}).items():
            client.set_tag(run_id, k, str(v)[:5000])
        client.set_terminated(run_id, status)
    except Exception:  # bookkeeping must never fail a sweep
        pass


def _forward_env() -> Dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_ENV_PREFIXES)}


# ---------------------------------------------------------------------------- what a trial applies
def _log_applied(mlflow_rep, applied: Dict[str, Any]) -> None:
    if mlflow_rep is None:
        return
    from mlflow.entities import Param

    try:
        params = [Param(f"applied.{k[len('applied_'):]}", str(v)) for k, v in applied.items()]
        mlflow_rep.client.log_batch(mlflow_rep.run_id, params=params)
    except Exception:  # already logged with the same values by an earlier attempt
        pass


def _numeric(metrics: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# ---------------------------------------------------------------------------- trial: one worker
class TuneReporter(Reporter):
    """The loop's ticks become `ray.tune.report` calls (metrics + the tick's checkpoint) and
    MLflow metrics on the trial's child run. Non-finite ticks go to MLflow only: the loop
    raises DivergenceError after `train.nan_ticks` of them, which errors the trial."""

    persists_checkpoints = True

    def __init__(self, mlflow_rep=None, applied: Optional[Dict[str, Any]] = None):
        self.mlflow = mlflow_rep
        self.applied = applied or {}

    def start(self, info):
        if self.mlflow is not None:
            self.mlflow.start(info)

    def report(self, metrics, checkpoint_dir=None):
        if self.mlflow is not None:
            self.mlflow.report(metrics, checkpoint_dir)
        if METRIC not in metrics:  # a non-finite tick: not evaluated
            return
        from raygan.distributed.train import ray_metrics

        self._emit({**ray_metrics(metrics), **self.applied}, checkpoint_dir, metrics["kimg"])

    def _emit(self, out: Dict[str, Any], checkpoint_dir: Optional[str], kimg: float) -> None:
        import ray.tune

        ckpt = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.tune.report(out, checkpoint=ckpt)

    def artifact(self, path, subdir=None, step=None):
        if self.mlflow is not None:
            self.mlflow.artifact(path, subdir, step)

    def finish(self, summary, model=None):
        if self.mlflow is not None:  # no model per trial: the winner's is logged after the sweep
            self.mlflow.finish(summary, None)


def _open_child_run(spec: Dict[str, Any], cfg: Config, trial_id: str, trial_name: str,
                    sampled: Dict[str, Any], run_dir: Optional[Path]):
    """The trial's MLflow child run: found by tags (a retry or resume) or created."""
    if not spec.get("tracking_uri"):
        return None
    from raygan.tracking.reporter import MLflowReporter, get_or_create_experiment

    uri = spec["tracking_uri"]
    client = _mlflow_client(uri)
    exp_id = get_or_create_experiment(client, spec["experiment"], uri)
    run_id = find_child_run(client, exp_id, spec["parent_run_id"], trial_id)
    tags = {TRIAL_TAG: trial_id, SWEEP_TAG: spec["parent_run_id"], "raygan.host": "tune-trial",
            "raygan.trial_name": trial_name, "raygan.sampled": json.dumps(sampled, default=str)[:5000],
            "raygan.workers": str(spec["options"]["workers_per_trial"])}
    rep = MLflowReporter(cfg.to_dict(), run_dir, uri=uri, experiment=spec["experiment"], run_name=trial_name,
                         run_id=run_id, parent_run_id=spec["parent_run_id"], tags=tags)
    if run_id is not None:
        client.set_tag(run_id, "raygan.retried", "true")
    return rep


def trial_fn(config: Dict[str, Any], sweep: Optional[Dict[str, Any]] = None) -> None:
    """One Tune trial. `config`: the values Optuna sampled (by parameter name)."""
    import ray.tune

    from raygan.engine import rundir
    from raygan.trainer import Trainer

    spec = sweep or {}
    os.environ.update(spec.get("env") or {})
    ctx = ray.tune.get_context()
    trial_id, trial_name = ctx.get_trial_id(), ctx.get_trial_name()
    space = SearchSpace(spec["space"], spec["space_source"], spec["base"])
    sampled = space.values(config)
    cfg = space.apply(spec["base"], config)
    if spec["options"]["workers_per_trial"] > 1:
        return _run_distributed_trial(spec, cfg, trial_id, trial_name, sampled)

    local_dir = Path(tempfile.mkdtemp(prefix=f"raygan-trial-{trial_id}-"))
    mlflow_rep = None
    try:
        rundir.write_config(local_dir, cfg)
        mlflow_rep = _open_child_run(spec, cfg, trial_id, trial_name, sampled, local_dir)
        reporter = TuneReporter(mlflow_rep)
        trainer = Trainer(cfg, local_dir, reporter=reporter)
        reporter.applied = trainer.task.applied()
        _log_applied(mlflow_rep, reporter.applied)
        ckpt = ray.tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                trainer.load(Path(d))
                meta_file = Path(d) / "meta.json"
                meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
            if trainer.nimg >= round(cfg.train.total_kimg * 1000):
                # restored at its end (the sweep stopped before Tune saw the trial finish)
                ray.tune.report({**_numeric(meta.get("metrics") or {}), **reporter.applied})
                return None
        trainer.run()
    except DivergenceError as e:
        if mlflow_rep is not None:
            _set_status(mlflow_rep.client, mlflow_rep.run_id, "FAILED", {"raygan.error": str(e)})
        raise
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    return None


# ---------------------------------------------------------------------------- trial: W workers
def _run_distributed_trial(spec: Dict[str, Any], cfg: Config, trial_id: str, trial_name: str,
                           sampled: Dict[str, Any]) -> None:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from raygan.distributed.train import _root_cause

    opts = spec["options"]
    W = opts["workers_per_trial"]
    mlflow_rep = _open_child_run(spec, cfg, trial_id, trial_name, sampled, None)
    use_gpu = opts["gpus_per_worker"] > 0
    trainer = TorchTrainer(
        train_loop_per_worker=tune_worker_loop,
        train_loop_config={"config": cfg.to_dict(), "mlflow_run_id": mlflow_rep.run_id if mlflow_rep else None,
                           "tracking_uri": spec.get("tracking_uri"), "experiment": spec.get("experiment"),
                           "env": spec.get("env") or {}, "name": f"train-{trial_id}"},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=W, use_gpu=use_gpu,
                                     resources_per_worker=cluster.worker_bundle(opts["cpus_per_worker"],
                                                                                opts["gpus_per_worker"])),
        run_config=RunConfig(name=f"train-{trial_id}", storage_path=cluster.join(spec["storage"], spec["name"],
                                                                                 TRAINERS_DIR),
                             callbacks=[TuneReportCallback()],
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=0)))
    try:
        trainer.fit()
    except Exception as e:
        cause = _root_cause(e)
        if mlflow_rep is not None and isinstance(cause, DivergenceError):
            _set_status(mlflow_rep.client, mlflow_rep.run_id, "FAILED", {"raygan.error": str(cause)})
        if isinstance(cause, RayganError):
            raise cause from None
        raise
    return None


def tune_worker_loop(config: Dict[str, Any]) -> None:
    """One Ray Train worker of a W>1 trial: the core loop with DDP-prepared G and D; rank 0
    reports (through TuneReportCallback) and logs to the trial's MLflow child run."""
    os.environ.update(config.get("env") or {})
    import ray.train
    import ray.train.torch

    from raygan.engine import rundir
    from raygan.trainer import Trainer

    cfg = build_config(config["config"])
    rank = ray.train.get_context().get_world_rank()
    local_dir = Path(tempfile.mkdtemp(prefix=f"raygan-{config['name']}-rank{rank}-"))
    mlflow_rep = None
    if rank == 0:
        rundir.write_config(local_dir, cfg)
        if config.get("mlflow_run_id"):
            from raygan.tracking.reporter import MLflowReporter

            mlflow_rep = MLflowReporter(cfg.to_dict(), local_dir, uri=config["tracking_uri"],
                                        experiment=config["experiment"], run_id=config["mlflow_run_id"])
    reporter = _TuneWorkerReporter(rank, mlflow_rep)
    try:
        trainer = Trainer(cfg, local_dir if rank == 0 else None, reporter=reporter,
                          prepare_model=ray.train.torch.prepare_model, device=ray.train.torch.get_device())
        reporter.applied = trainer.task.applied()
        if rank == 0:
            _log_applied(mlflow_rep, reporter.applied)
        ckpt = ray.train.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                trainer.load(Path(d))
        trainer.run()
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)


class _TuneWorkerReporter(TuneReporter):
    """Rank r of a W>1 trial: every evaluated tick goes to `ray.train.report` (a barrier across
    ranks; all ranks skip the same non-finite ticks, their statistics are all-reduced) with this
    rank's checkpoint files; rank 0 also logs to MLflow. No model is logged per trial."""

    def __init__(self, rank: int, mlflow_rep=None):
        super().__init__(mlflow_rep if rank == 0 else None)
        self.rank = rank

    def _emit(self, out: Dict[str, Any], checkpoint_dir: Optional[str], kimg: float) -> None:
        import ray.train

        from raygan.distributed.train import ray_checkpoint

        ckpt, name = ray_checkpoint(checkpoint_dir, kimg)
        ray.train.report(out, checkpoint=ckpt, checkpoint_dir_name=name)


# ---------------------------------------------------------------------------- driver callbacks
try:  # Ray is a dependency, but keep the module importable for `--help` without it
    from ray.tune import Callback as _Callback
    from ray.tune.stopper import Stopper as _Stopper
except Exception:  # pragma: no cover
    _Callback = object
    _Stopper = object


class SweepCallback(_Callback):
    """In the driver: closes each trial's MLflow child run with what happened to it (finished,
    stopped early by ASHA at a rung, errored with the reason) and prints one line per trial."""

    def __init__(self, tracking_uri: Optional[str], experiment: str, parent_run_id: Optional[str],
                 budget_kimg: float, samples: int, progress: bool = True):
        self.uri, self.experiment, self.parent = tracking_uri, experiment, parent_run_id
        self.budget, self.samples, self.progress = budget_kimg, samples, progress
        self.done = 0

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("_client_obj", None)
        return d

    def _client(self):
        if not self.uri:
            return None
        if getattr(self, "_client_obj", None) is None:
            self._client_obj = _mlflow_client(self.uri)
            from raygan.tracking.reporter import get_or_create_experiment

            self._exp_id = get_or_create_experiment(self._client_obj, self.experiment, self.uri)
        return self._client_obj

    def _run_id(self, trial) -> Optional[str]:
        client = self._client()
        if client is None:
            return None
        try:
            return find_child_run(client, self._exp_id, self.parent, trial.trial_id)
        except Exception:
            return None

    def _say(self, text: str) -> None:
        if self.progress:
            print(text, file=sys.stderr, flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = trial.last_result or {}
        kimg = r.get("kimg")
        stopped = kimg is not None and kimg < self.budget - 1e-6
        self.done += 1
        run_id = self._run_id(trial)
        if run_id:
            if stopped:
                _set_status(self._client(), run_id, "KILLED",
                            {"raygan.trial_status": f"stopped early by the scheduler at {kimg:g} kimg"})
            else:
                _set_status(self._client(), run_id, "FINISHED", {"raygan.trial_status": "finished"})
        fid = r.get(METRIC)
        what = f"stopped at {kimg:g} kimg" if stopped else (f"finished {kimg:g} kimg" if kimg is not None
                                                          else "ended without a result")
        self._say(f"[tune] {trial.trial_id}  {what}  fid {fid:.2f}" if fid is not None
                  else f"[tune] {trial.trial_id}  {what}")

    def on_trial_error(self, iteration, trials, trial, **info):
        reason = trial_error_reason(trial)
        self.done += 1
        run_id = self._run_id(trial)
        if run_id:
            _set_status(self._client(), run_id, "FAILED",
                        {"raygan.trial_status": "errored", "raygan.error": reason})
        self._say(f"[tune] {trial.trial_id}  errored: {reason}")


class KimgBudgetStopper(_Stopper):
    """Ends the sweep once all trials together have trained `total_kimg` (the benchmark's fixed
    budget): running trials are stopped, no new ones start."""

    def __init__(self, total_kimg: float):
        self.total = total_kimg
        self.kimg: Dict[str, float] = {}

    def __call__(self, trial_id, result):
        self.kimg[trial_id] = max(self.kimg.get(trial_id, 0.0), float(result.get("kimg", 0.0)))
        return False

    def stop_all(self):
        return sum(self.kimg.values()) >= self.total - 1e-9


def trial_error_reason(trial_or_error) -> str:
    """The one line that says why a trial failed (DivergenceError's message when it diverged)."""
    err = None
    if hasattr(trial_or_error, "get_error"):
        try:
            err = trial_or_error.get_error()
        except Exception:
            err = None
        if err is None:
            ef = getattr(trial_or_error, "error_file", None)
            if ef and os.path.isfile(ef):
                err = Path(ef).read_text()
    else:
        err = trial_or_error
    if err is None:
        return "unknown error"
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(err)):
        err = cause
    text = str(err)
    for line in reversed(text.strip().splitlines()):
        for cls in ("DivergenceError", "ConfigError", "DataError", "CheckpointError", "RayganError"):
            if f"{cls}: " in line:
                return line.split(f"{cls}: ", 1)[1].strip()[:500]
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else type(err).__name__)[:500]


# ---------------------------------------------------------------------------- building the Tuner
def _trainable(spec: Dict[str, Any]):
    from ray import tune

    opts = SweepOptions(**spec["options"])
    return tune.with_resources(tune.with_parameters(trial_fn, sweep=spec), trial_resources(opts))


def _searcher(space: SearchSpace, opts: SweepOptions):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=opts.seed, n_startup_trials=tpe_startup(opts), constant_liar=True)
               if opts.sampler == "tpe" else optuna.samplers.RandomSampler(seed=opts.seed))
    return OptunaSearch(space=space, metric=METRIC, mode="min", sampler=sampler)


def _scheduler(cfg: Config, opts: SweepOptions):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if opts.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="kimg", metric=METRIC, mode="min", max_t=budget_kimg(cfg, opts),
                         grace_period=grace_kimg(cfg, opts), reduction_factor=opts.reduction_factor,
                         stop_last_trials=False)


def describe_scheduler(cfg: Config, opts: SweepOptions) -> str:
    if opts.scheduler == "fifo":
        return f"fifo (every trial trains {budget_kimg(cfg, opts):g} kimg)"
    return (f"asha(time_attr=kimg, grace_period={grace_kimg(cfg, opts):g}, reduction_factor="
            f"{opts.reduction_factor:g}, max_t={budget_kimg(cfg, opts):g}, stop_last_trials=False)")


def tpe_startup(opts: SweepOptions) -> int:
    """Random trials before TPE models the results: Optuna's 10 would leave a small sweep
    random all along; a quarter of the samples (3 to 10)."""
    return max(3, min(10, opts.samples // 4))


def describe_sampler(opts: SweepOptions) -> str:
    if opts.sampler == "tpe":
        return (f"optuna TPESampler(seed={opts.seed}, n_startup_trials={tpe_startup(opts)}, "
                f"constant_liar=True)")
    return f"optuna RandomSampler(seed={opts.seed})"


def _run_config(spec: Dict[str, Any], cfg: Config, opts: SweepOptions):
    from ray import tune

    stop = KimgBudgetStopper(opts.total_kimg) if opts.total_kimg else None
    return tune.RunConfig(
        name=spec["name"], storage_path=spec["storage"], verbose=0, stop=stop,
        callbacks=[SweepCallback(spec.get("tracking_uri"), spec["experiment"], spec.get("parent_run_id"),
                                 budget_kimg(cfg, opts), opts.samples, opts.progress)],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=opts.max_failures))


# ---------------------------------------------------------------------------- the sweep
def trial_name(trial) -> str:
    """`trial-<id>`: the trial's Tune name, folder and MLflow run name (module level: pickled
    with the Tuner for --resume)."""
    return f"trial-{trial.trial_id}"


def default_name(cfg: Config) -> str:
    return f"tune-{cfg.preset or 'custom'}-{time.strftime('%Y%m%d-%H%M%S')}"


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"sweep name {name!r}: no slashes (it names a folder under the storage path)")


def _create_parent_run(spec: Dict[str, Any], cfg: Config, opts: SweepOptions, space: SearchSpace) -> str:
    from mlflow.entities import Param

    from raygan.tracking.reporter import flatten, get_or_create_experiment

    uri = spec["tracking_uri"]
    client = _mlflow_client(uri)
    exp_id = get_or_create_experiment(client, spec["experiment"], uri)
    run = client.create_run(exp_id, run_name=spec["name"], tags={
        "raygan.role": "sweep", "raygan.sweep_name": spec["name"],
        "raygan.sweep_path": cluster.join(spec["storage"], spec["name"]), "raygan.host": "tune"})
    run_id = run.info.run_id
    params = {
        "sweep.samples": opts.samples, "sweep.sampler": describe_sampler(opts),
        "sweep.scheduler": describe_scheduler(cfg, opts), "sweep.metric": f"{METRIC} (min)",
        "sweep.budget_kimg": budget_kimg(cfg, opts), "sweep.total_kimg": opts.total_kimg,
        "sweep.workers_per_trial": opts.workers_per_trial, "sweep.cpus_per_worker": opts.cpus_per_worker,
        "sweep.gpus_per_worker": opts.gpus_per_worker, "sweep.max_concurrent": spec["max_concurrent"],
        "sweep.top_k": opts.top_k, "sweep.reeval_samples": spec["reeval_samples"],
        "sweep.reeval_seeds": json.dumps(spec["reeval_seeds"]), "sweep.space": space.source,
        "sweep.proxy": f"{cfg.eval.extractor} {METRIC} on {cfg.eval.num_samples} samples every "
                       f"{spec['base']['train']['tick_kimg']:g} kimg",
    }
    params.update({f"space.{k}": v for k, v in space.describe().items()})
    params.update({f"base.{k}": v for k, v in flatten(spec["base"]).items()})
    items = [Param(mlflow_key(k)[:250], str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "search_space.yaml").write_text(getattr(space, "text", "") or json.dumps(space.raw, indent=1))
        (Path(d) / "base_config.yaml").write_text(build_config(spec["base"]).to_yaml())
        client.log_artifact(run_id, str(Path(d) / "search_space.yaml"))
        client.log_artifact(run_id, str(Path(d) / "base_config.yaml"))
    return run_id


def run_sweep(cfg: Config, opts: SweepOptions, search_space: Optional[str] = None) -> Dict[str, Any]:
    """Validate, size, track and run a new sweep; then re-evaluate the top trials."""
    validate_options(cfg, opts)
    base = trial_base(cfg, opts)
    space = load_space(search_space, base)
    _check_batch_split(space, base, opts.workers_per_trial)
    storage = cluster.resolve_storage(opts.storage)
    cluster.check_storage(storage)
    name = opts.name or default_name(cfg)
    _check_name(name)
    if sweep_exists(storage, name):
        raise RunDirError(f"a sweep named '{name}' already exists in {storage}; resume it with "
                          f"raygan tune --resume {name}, or choose another --name")
    cluster.connect(opts.address, log_to_driver=False)
    max_concurrent = size_concurrency(opts)

    tracking_uri = None
    if cfg.tracking.enabled:
        from raygan.tracking.store import resolve_tracking_uri

        tracking_uri = resolve_tracking_uri(cfg.tracking.uri)
        base["tracking"]["uri"] = tracking_uri
    reeval_samples = opts.reeval_samples or cfg.eval.final_num_samples
    spec: Dict[str, Any] = {
        "version": 1, "name": name, "storage": storage, "base": base, "space": space.raw,
        "space_source": space.source, "space_text": getattr(space, "text", ""), "options": asdict(opts),
        "experiment": name, "tracking_uri": tracking_uri, "parent_run_id": None,
        "max_concurrent": max_concurrent, "reeval_samples": reeval_samples,
        "reeval_seeds": [cfg.eval.seed + 1 + i for i in range(opts.reeval_seeds)],
        "register_model": opts.register_model or cfg.tracking.register_model,
        "env": _forward_env(), "created": time.time(),
    }
    if tracking_uri:
        spec["parent_run_id"] = _create_parent_run(spec, cfg, opts, space)
    cluster.write_text(storage, f"{name}/{SWEEP_FILE}", json.dumps(spec, indent=1, default=str))

    from ray import tune

    tuner = tune.Tuner(
        _trainable(spec),
        tune_config=tune.TuneConfig(search_alg=_searcher(space, opts), scheduler=_scheduler(cfg, opts),
                                    num_samples=opts.samples, max_concurrent_trials=max_concurrent,
                                    trial_name_creator=trial_name, trial_dirname_creator=trial_name,
                                    reuse_actors=opts.workers_per_trial == 1),  # no torch import per trial
        run_config=_run_config(spec, cfg, opts))
    return _fit_and_finish(tuner, spec)


def sweep_exists(storage: str, name: str) -> bool:
    return cluster.exists(storage, f"{name}/{SWEEP_FILE}") or cluster.exists(storage, f"{name}/tuner.pkl")


def load_spec(storage: str, name: str) -> Dict[str, Any]:
    text = cluster.read_text(storage, f"{name}/{SWEEP_FILE}")
    if text is None:
        raise TuneError(f"no sweep named '{name}' in {storage} ({SWEEP_FILE} missing): nothing to resume "
                        f"(pass the same --storage it ran with)")
    return json.loads(text)


def resume_sweep(name: str, storage: Optional[str] = None, address: Optional[str] = None,
                 progress: bool = True) -> Dict[str, Any]:
    """Continue an interrupted sweep: finished trials stay finished, unfinished and errored
    ones continue from their last checkpoints, trials not started yet are sampled."""
    from ray import tune

    _check_name(name)
    storage = cluster.resolve_storage(storage)
    spec = load_spec(storage, name)
    path = cluster.join(storage, name)
    if not tune.Tuner.can_restore(path):
        raise TuneError(f"sweep '{name}' in {storage} has no Tune state to resume from (it stopped "
                        f"before its first trial started); start it again under another --name")
    spec["options"]["progress"] = progress
    cluster.connect(address, log_to_driver=False)
    if spec.get("parent_run_id"):
        client = _mlflow_client(spec["tracking_uri"])
        client.update_run(spec["parent_run_id"], status="RUNNING")
        client.set_tag(spec["parent_run_id"], "raygan.resumed", time.strftime("%Y-%m-%d %H:%M:%S"))
    tuner = tune.Tuner.restore(path, trainable=_trainable(spec), resume_errored=True)
    return _fit_and_finish(tuner, spec)


def _check_batch_split(space: SearchSpace, base: Dict[str, Any], W: int) -> None:
    if W == 1:
        return
    from raygan.distributed.search_space import _walk

    sizes = {base["optim"]["batch_size"]}
    for p in _walk(space.params):
        if "optim.batch_size" in p.paths:
            sizes |= set(p.choices) if p.dist == "choice" else set()
            if p.dist != "choice":
                raise TuneError(f"{space.source}: optim.batch_size must be a choice when trials have "
                                f"{W} workers (each must split evenly)")
    bad = sorted(b for b in sizes if int(b) % W)
    if bad:
        raise TuneError(f"{space.source}: optim.batch_size {bad[0]} does not split evenly across "
                        f"{W} workers per trial")


# ---------------------------------------------------------------------------- after the sweep
@dataclass
class TrialRecord:
    trial_id: str
    status: str  # finished | stopped | errored | pending | running
    sampled: Dict[str, Any]
    config: Dict[str, Any]
    kimg: float = 0.0
    fid: Optional[float] = None
    error: Optional[str] = None
    checkpoint: Any = None  # a ray Checkpoint, or a path (W>1 trials)
    run_id: Optional[str] = None
    applied: Dict[str, Any] = field(default_factory=dict)
    end_time: Optional[float] = None
    path: Optional[str] = None


def collect_trials(grid, spec: Dict[str, Any]) -> List[TrialRecord]:
    space = SearchSpace(spec["space"], spec["space_source"], spec["base"])
    budget = spec["base"]["train"]["total_kimg"]
    trials = list(getattr(grid, "_experiment_analysis").trials)
    client = exp_id = None
    if spec.get("tracking_uri"):
        from raygan.tracking.reporter import get_or_create_experiment

        client = _mlflow_client(spec["tracking_uri"])
        exp_id = get_or_create_experiment(client, spec["experiment"], spec["tracking_uri"])
    out = []
    for t in trials:
        r = t.last_result or {}
        kimg = float(r.get("kimg", 0.0) or 0.0)
        status = {"TERMINATED": "finished", "ERROR": "errored", "PENDING": "pending",
                  "RUNNING": "running", "PAUSED": "pending"}.get(t.status, t.status.lower())
        if status == "finished" and kimg < budget - 1e-6:
            status = "stopped" if r.get(METRIC) is not None else "pending"
        try:
            cfg = space.apply(spec["base"], t.config).to_dict()
        except RayganError:
            cfg = {}
        ckpt = t.checkpoint
        if ckpt is None and r.get("checkpoint_path"):
            ckpt = r["checkpoint_path"]
        rec = TrialRecord(
            trial_id=t.trial_id, status=status, sampled=space.values(t.config), config=cfg, kimg=kimg,
            fid=r.get(METRIC), error=trial_error_reason(t) if status == "errored" else None, checkpoint=ckpt,
            applied={k: v for k, v in r.items() if k.startswith("applied_")}, end_time=getattr(getattr(t, "run_metadata", None), "last_result_time", None) or r.get("timestamp"),
            path=getattr(t, "path", None))
        if client is not None:
            try:
                rec.run_id = find_child_run(client, exp_id, spec["parent_run_id"], t.trial_id)
            except Exception:
                pass
        out.append(rec)
    return out


class _quiet_tune:
    """Tune's own console output off (raygan prints a line per trial and a summary): the
    legacy reporter honours verbose=0, the new output engine prints its header regardless."""

    _ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}

    _LOGGERS = ("ray.tune",)  # failed trials' tracebacks: raygan prints one line per trial instead

    def __enter__(self):
        import logging

        self._old = {k: os.environ.get(k) for k in self._ENV}
        os.environ.update(self._ENV)
        self._levels = {n: logging.getLogger(n).level for n in self._LOGGERS}
        for n in self._LOGGERS:
            logging.getLogger(n).setLevel(logging.CRITICAL)

    def __exit__(self, *exc):
        import logging

        for n, level in self._levels.items():
            logging.getLogger(n).setLevel(level)
        for k, v in self._old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return False


def _fit_and_finish(tuner, spec: Dict[str, Any]) -> Dict[str, Any]:
    try:
        with _quiet_tune():
            grid = tuner.fit()
    except KeyboardInterrupt:
        _mark_parent(spec, "KILLED", interrupted=True)
        raise
    trials = collect_trials(grid, spec)
    summary: Dict[str, Any] = {"name": spec["name"], "storage": spec["storage"], "trials": trials,
                               "tracking_uri": spec.get("tracking_uri"),
                               "parent_run_id": spec.get("parent_run_id"), "experiment": spec["experiment"]}
    opts = SweepOptions(**spec["options"])
    unfinished = [t for t in trials if t.status in ("pending", "running")]
    if (unfinished and not opts.total_kimg) or len(trials) < opts.samples and not opts.total_kimg:
        summary["interrupted"] = True
        _mark_parent(spec, "KILLED", interrupted=True)
        return summary
    if opts.finish:
        summary.update(finish_sweep(spec, trials))
    else:
        _mark_parent(spec, "FINISHED")
    return summary


def _mark_parent(spec: Dict[str, Any], status: str, interrupted: bool = False) -> None:
    if not spec.get("parent_run_id"):
        return
    tags = {}
    if interrupted:
        tags["raygan.sweep_status"] = f"interrupted: resume with raygan tune --resume {spec['name']}"
    _set_status(_mlflow_client(spec["tracking_uri"]), spec["parent_run_id"], status, tags)


def reevaluate(cfg_dict: Dict[str, Any], checkpoint: Any, seeds: List[int], num_samples: int) -> Dict[str, Any]:
    """FID of a checkpoint's exported network (EMA when enabled) with `num_samples` samples for
    each evaluation seed: mean, sample std, the values, and the protocol."""
    from raygan.engine.device import resolve_device
    from raygan.tasks import task_class
    from raygan.tasks.loading import load_model

    cfg = build_config(cfg_dict)
    device = resolve_device(cfg.train.device)
    with _checkpoint_dir(checkpoint) as d:
        loaded = load_model(Path(d), device=device)
    fids, protocol = [], None
    for s in seeds:
        seeded = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"seed": int(s)})})
        ev = task_class(cfg.task).evaluator_for(seeded, device, loaded.model_spec)
        values, protocol = ev(loaded.module, num_samples)
        fids.append(float(values[METRIC]))
    std = statistics.stdev(fids) if len(fids) > 1 else 0.0
    return {"fids": fids, "mean": statistics.fmean(fids), "std": std, "kimg": loaded.nimg / 1000.0,
            "protocol": {**(protocol or {}), "seeds": list(seeds),
                         "statistic": f"mean ± sample std over {len(seeds)} evaluation seeds"}}


class _checkpoint_dir:
    """A local directory for a ray Checkpoint or a checkpoint path (local or a URI)."""

    def __init__(self, checkpoint: Any):
        self.checkpoint = checkpoint
        self._ctx = None

    def __enter__(self) -> str:
        ck = self.checkpoint
        if isinstance(ck, (str, Path)):
            if not cluster.is_uri(str(ck)) and Path(ck).is_dir():
                return str(ck)
            from ray.train import Checkpoint

            ck = Checkpoint(str(ck))
        self._ctx = ck.as_directory()
        return self._ctx.__enter__()

    def __exit__(self, *exc):
        if self._ctx is not None:
            return self._ctx.__exit__(*exc)
        return False


def log_champion(cfg_dict: Dict[str, Any], checkpoint: Any, tracking_uri: str, run_id: str,
                 register_model: Optional[str], tags: Dict[str, str]) -> Dict[str, Optional[str]]:
    """Log the winner's generator to its child run, register it and point `champion` at it."""
    import torch

    from raygan.tasks.loading import load_model
    from raygan.tracking.reporter import log_generator_model

    with _checkpoint_dir(checkpoint) as d:
        loaded = load_model(Path(d), device=torch.device("cpu"))
    client = _mlflow_client(tracking_uri)
    status = client.get_run(run_id).info.status
    example = torch.randn(4, loaded.module.z_dim) if hasattr(loaded.module, "z_dim") else None
    info = log_generator_model(run_id, loaded.module, example, register_model)
    if status != "FINISHED":
        client.set_terminated(run_id, status)
    client.set_tag(run_id, "raygan.model_uri", info.model_uri)
    out: Dict[str, Optional[str]] = {"model_uri": info.model_uri, "registered": None, "champion_uri": None}
    if register_model and info.registered_model_version is not None:
        v = str(info.registered_model_version)
        for k, val in tags.items():
            client.set_model_version_tag(register_model, v, k, str(val)[:5000])
        client.set_registered_model_alias(register_model, CHAMPION, v)
        client.set_tag(run_id, "raygan.registered_model", f"models:/{register_model}/{v}")
        out["registered"] = f"models:/{register_model}/{v}"
        out["champion_uri"] = f"models:/{register_model}@{CHAMPION}"
        out["version"] = v
    return out


def _remote(fn, spec: Dict[str, Any], gpu: bool = True):
    import ray

    opts = spec["options"]
    return ray.remote(num_cpus=min(1.0, float(opts["cpus_per_worker"])),
                      num_gpus=float(opts["gpus_per_worker"]) if gpu else 0,
                      runtime_env={"env_vars": spec.get("env") or {}})(fn)


def finish_sweep(spec: Dict[str, Any], trials: List[TrialRecord]) -> Dict[str, Any]:
    """Re-evaluate the top-k trials (more samples, several seeds), choose the winner on the
    mean, log and register its generator, record everything on the parent run."""
    import ray

    opts = SweepOptions(**spec["options"])
    # a trial that diverged is not a candidate, whatever its last FID before the NaNs
    scored = sorted((t for t in trials if t.status != "errored" and t.fid is not None and math.isfinite(t.fid)
                     and t.checkpoint is not None), key=lambda t: t.fid)
    top = scored[:opts.top_k]
    out: Dict[str, Any] = {"top": [], "winner": None}
    counts = {s: sum(t.status == s for t in trials) for s in ("finished", "stopped", "errored")}
    spent = sum(t.kimg for t in trials)
    client = _mlflow_client(spec["tracking_uri"]) if spec.get("tracking_uri") else None
    if not top:
        if client is not None:
            client.log_batch(spec["parent_run_id"], metrics=_metric_list(
                {"trials_finished": counts["finished"], "trials_stopped": counts["stopped"],
                 "trials_errored": counts["errored"], "kimg_spent": spent}))
            _set_status(client, spec["parent_run_id"], "FAILED", {"raygan.sweep_status": "no trial produced a FID"})
        out.update(counts=counts, kimg_spent=spent)
        return out

    seeds, n = spec["reeval_seeds"], int(spec["reeval_samples"])
    task = _remote(reevaluate, spec)
    futures = [task.remote(t.config, t.checkpoint, seeds, n) for t in top]
    evals = ray.get(futures)
    rows = []
    for t, e in zip(top, evals):
        rows.append({"trial_id": t.trial_id, "run_id": t.run_id, "proxy_fid": t.fid, "kimg": t.kimg,
                     "status": t.status, "sampled": t.sampled, **e})
        if client is not None and t.run_id:
            try:
                client.log_batch(t.run_id, metrics=_metric_list({"reeval_fid_mean": e["mean"],
                                                                 "reeval_fid_std": e["std"]}))
                for k, v in _flat_protocol(e["protocol"], "reeval.protocol.").items():
                    client.set_tag(t.run_id, k, v)
            except Exception:
                pass
    winner = min(rows, key=lambda r: r["mean"])
    out.update(top=rows, winner=winner, counts=counts, kimg_spent=spent)
    wt = next(t for t in top if t.trial_id == winner["trial_id"])

    if client is not None:
        pid = spec["parent_run_id"]
        champion: Dict[str, Optional[str]] = {}
        if wt.run_id:
            tags = {"fid_mean": f"{winner['mean']:.4f}", "fid_std": f"{winner['std']:.4f}",
                    "sweep": spec["name"], "trial_id": wt.trial_id,
                    "protocol": json.dumps(winner["protocol"], default=str)}
            args = (wt.config, wt.checkpoint, spec["tracking_uri"], wt.run_id, spec.get("register_model"), tags)
            if spec["tracking_uri"].startswith("sqlite:"):  # a local store: this machine, no task needed
                champion = log_champion(*args)
            else:
                champion = ray.get(_remote(log_champion, spec, gpu=False).remote(*args))
            out["champion"] = champion
        client.log_batch(pid, metrics=_metric_list({
            "best_fid_mean": winner["mean"], "best_fid_std": winner["std"], "best_proxy_fid": winner["proxy_fid"],
            "trials_finished": counts["finished"], "trials_stopped": counts["stopped"],
            "trials_errored": counts["errored"], "kimg_spent": spent}))
        tags = {"raygan.winner_trial": wt.trial_id, "raygan.winner_run_id": wt.run_id or "",
                "raygan.winner_sampled": json.dumps(wt.sampled, default=str)[:5000],
                "raygan.sweep_status": "finished"}
        tags.update(_flat_protocol(winner["protocol"], "best.protocol."))
        if champion.get("champion_uri"):
            tags["raygan.champion_uri"] = champion["champion_uri"]
            tags["raygan.registered_model"] = champion["registered"] or ""
        elif champion.get("model_uri"):
            tags["raygan.model_uri"] = champion["model_uri"]
        for k, v in tags.items():
            client.set_tag(pid, k, v)
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "reevaluation.json"
            f.write_text(json.dumps({"top": rows, "winner": winner["trial_id"]}, indent=1, default=str))
            client.log_artifact(pid, str(f))
        client.set_terminated(pid, "FINISHED")
    return out


def _metric_list(values: Dict[str, float]):
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    return [Metric(k, float(v), ts, 0) for k, v in values.items() if v is not None]


def _flat_protocol(protocol: Dict[str, Any], prefix: str) -> Dict[str, str]:
    from raygan.tracking.reporter import flatten

    return {k: v[:5000] for k, v in flatten(protocol, prefix).items()}
