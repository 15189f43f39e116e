"""The sweep driver: Ray Tune + Optuna (TPE, define-by-run) + ASHA on the plan's objective.

`run_sweep` validates the search space against the base config, locks `<storage>/<name>` (one
driver per sweep, before the cluster starts), checks the storage and that one trial fits the
cluster (sizing `max_concurrent_trials`), creates the parent run, saves the plan, then runs
`Tuner.fit()` (a failure from there on ends the parent run FAILED, never RUNNING); `resume_sweep` restores the Tuner from storage
(`resume_errored=True`). Afterwards `raygan.distributed.sweep.champion.finish_sweep`
re-evaluates the top trials and registers the winner. While trials run, one status line per
tick says how many run, were stopped, finished or errored, and the best objective so far.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from raygan.hosts import storage
from raygan.config import Config
from raygan.distributed import cluster
from raygan.distributed.sweep import plan as plans
from raygan.distributed.sweep.options import SweepOptions, TuneError, budget_kimg, check, grace_kimg
from raygan.distributed.sweep.reasons import trial_error_reason  # noqa: F401  (re-exported)
from raygan.distributed.sweep.plan import SweepPlan
from raygan.distributed.sweep.resources import size_concurrency, trial_resources
from raygan.distributed.sweep.space import load_space
from raygan.distributed.sweep.trial import trial_fn, trial_name
from raygan.errors import RayganError, RunDirError
from raygan.hosts.runstore import RunStore, default_name


# ---------------------------------------------------------------------------- the Tuner
def _trainable(plan: SweepPlan):
    from ray import tune

    return tune.with_resources(tune.with_parameters(trial_fn, plan=plan.model_dump(mode="json")),
                               trial_resources(plan.options))


def _searcher(space, plan: SweepPlan):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    opts = plan.options
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=opts.seed, n_startup_trials=plans.tpe_startup(opts), constant_liar=True)
               if opts.sampler == "tpe" else optuna.samplers.RandomSampler(seed=opts.seed))
    return OptunaSearch(space=space, metric=plan.objective, mode=plan.mode, sampler=sampler)


def _scheduler(cfg: Config, plan: SweepPlan):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    opts = plan.options
    if opts.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="kimg", metric=plan.objective, mode=plan.mode, max_t=budget_kimg(cfg, opts),
                         grace_period=grace_kimg(cfg, opts), reduction_factor=opts.reduction_factor,
                         stop_last_trials=False)


def _run_config(plan: SweepPlan):
    from ray import tune

    from raygan.tracking.sweeps import ChildRuns

    opts = plan.options
    from raygan.distributed.sweep.callbacks import KimgBudgetStopper, SweepCallback

    runs = ChildRuns(plan.tracking_uri, plan.experiment, plan.parent_run_id)
    return tune.RunConfig(
        name=plan.name, storage_path=plan.storage, verbose=0,
        stop=KimgBudgetStopper(opts.total_kimg) if opts.total_kimg else None,
        callbacks=[SweepCallback(runs, plan.objective, plan.mode, plan.budget, opts.samples, opts.progress)],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=opts.max_failures))


def prepare(cfg: Config, opts: SweepOptions, search_space: Optional[str] = None):
    """(trial base config, validated space): everything `--dry-run` shows, no Ray."""
    from raygan.precheck import build_config, default_search_space

    from raygan.distributed.sweep.budget import fit_space
    from raygan.distributed.sweep.space import SearchSpace

    from raygan.config import budget

    check(cfg, opts)
    base = plans.trial_base(cfg, opts)
    fitted, base_notes = budget.fit(build_config(base))  # what every trial's Trainer would fit: say it here
    base = fitted.to_dict() if base_notes else base
    loaded = load_space(search_space or default_search_space(cfg), base)
    raw, notes = fit_space(loaded.raw, base)  # nothing sampled that cannot act within a trial's budget
    notes = [f"trial base: {n}" for n in base_notes] + notes
    space = loaded
    if notes:
        space = SearchSpace(raw, loaded.source, base)
        space.validate(base)
        space.text = loaded.text
    space.budget_notes = notes
    plans.check_batch_split(space, base, opts.workers_per_trial)
    return base, space


def run_sweep(cfg: Config, opts: SweepOptions, search_space: Optional[str] = None) -> Dict[str, Any]:
    """Validate, size, track and run a new sweep; then re-evaluate the top trials."""
    from ray import tune

    from raygan.distributed.launch import forward_env

    base, space = prepare(cfg, opts, search_space)
    storage_path = storage.resolve(opts.storage)
    name = opts.name or default_name(cfg.preset, prefix="tune-")
    folder = RunStore(storage.join(storage_path, name))
    folder.check_writable()  # (creates nothing)
    # one driver per sweep, as for a run dir: taken before the cluster starts
    with folder.claim("sweep", "--name") as claim:
        storage.check_writable(storage_path, "storage")
        if plans.exists(storage_path, name):
            raise RunDirError(f"a sweep named '{name}' already exists in {storage_path}; resume it with "
                              f"raygan tune --resume {name}, or choose another --name")
        if cfg.tracking.enabled:
            from raygan.tracking.store import preflight

            preflight(cfg)
            base["tracking"]["uri"] = cfg.tracking.uri
        cluster.connect(opts.address, log_to_driver=False)
        plan = plans.make_plan(cfg, opts, space, base, storage_path, name, size_concurrency(opts), forward_env())
        if plan.tracking_uri:
            from raygan.tasks import build_config
            from raygan.tracking.store import flatten
            from raygan.tracking.sweeps import create_parent_run

            params = {**plans.describe(plan, cfg), **{f"space.{k}": v for k, v in space.describe().items()},
                      "sweep.budget_fit": "; ".join(getattr(space, "budget_notes", []))[:5000] or "none",
                      **{f"base.{k}": v for k, v in flatten(base).items()}}
            files = {"search_space.yaml": plan.space_text or str(plan.space),
                     "base_config.yaml": build_config(base).to_yaml()}
            plan.parent_run_id = create_parent_run(plan.tracking_uri, plan.experiment, name, plan.path, params, files)
        with _parent_ends_with_the_sweep(plan, claim, fresh=True):
            plan.save()
            tuner = tune.Tuner(
                _trainable(plan),
                tune_config=tune.TuneConfig(search_alg=_searcher(space, plan), scheduler=_scheduler(cfg, plan),
                                            num_samples=opts.samples, max_concurrent_trials=plan.max_concurrent,
                                            trial_name_creator=trial_name, trial_dirname_creator=trial_name,
                                            reuse_actors=opts.workers_per_trial == 1),  # no torch import per trial
                run_config=_run_config(plan))
            return _fit_and_finish(tuner, plan)


def resume_sweep(name: str, storage_path: Optional[str] = None, address: Optional[str] = None,
                 progress: bool = True) -> Dict[str, Any]:
    """Continue an interrupted sweep: finished trials stay finished, unfinished and errored ones
    continue from their last checkpoints, trials not started yet are sampled."""
    from ray import tune

    storage_path = storage.resolve(storage_path)
    plan = SweepPlan.load(storage_path, name)
    with RunStore(plan.path).claim("sweep", "--name") as claim:
        claim.started = True  # the sweep exists: nothing of it is removed
        if not tune.Tuner.can_restore(plan.path):
            raise TuneError(f"sweep '{name}' in {storage_path} has no Tune state to resume from (it stopped "
                            f"before its first trial started); start it again under another --name")
        plan.options = plan.options.model_copy(update={"progress": progress})
        cluster.connect(address, log_to_driver=False)
        if plan.parent_run_id:
            from raygan.tracking.store import open_client

            client = open_client(plan.tracking_uri)
            client.update_run(plan.parent_run_id, status="RUNNING")
            client.set_tag(plan.parent_run_id, "raygan.resumed", time.strftime("%Y-%m-%d %H:%M:%S"))
        with _parent_ends_with_the_sweep(plan, claim, fresh=False):
            tuner = tune.Tuner.restore(plan.path, trainable=_trainable(plan), resume_errored=True)
            return _fit_and_finish(tuner, plan)


@contextmanager
def _parent_ends_with_the_sweep(plan: SweepPlan, claim, fresh: bool) -> Iterator[None]:
    """A sweep that fails after its parent run was created never leaves it RUNNING: FAILED with
    the reason (KILLED on Ctrl-C). A new sweep that fails before Tune saved any state takes its
    plan file back, so the same --name can be used again; otherwise it resumes."""
    from ray import tune

    from raygan.tracking.sweeps import end_parent

    try:
        yield
    except BaseException as e:
        restorable = tune.Tuner.can_restore(plan.path)
        if restorable:
            claim.started = True
            hint = f"resume with raygan tune --resume {plan.name}"
        elif fresh:
            storage.remove_file(storage.join(plan.path, plans.PLAN_FILE))
            hint = f"no trial started; run it again (the name {plan.name} is free)"
        else:
            hint = "no Tune state to resume from"
        killed = isinstance(e, KeyboardInterrupt)
        tags = {"raygan.sweep_status": f"{'interrupted' if killed else 'failed'}: {hint}"}
        if not killed:
            tags["raygan.error"] = f"{type(e).__name__}: {e}"
        end_parent(plan.tracking_uri, plan.parent_run_id, "KILLED" if killed else "FAILED", tags)
        raise


# ---------------------------------------------------------------------------- after the trials
@dataclass
class TrialRecord:
    trial_id: str
    status: str  # finished | stopped | errored | pending | running
    sampled: Dict[str, Any]
    config: Dict[str, Any]
    kimg: float = 0.0
    value: Optional[float] = None  # the objective's last proxy value
    error: Optional[str] = None
    checkpoint: Any = None  # a ray Checkpoint, or a path (W>1 trials)
    run_id: Optional[str] = None
    applied: Dict[str, Any] = field(default_factory=dict)


def collect_trials(grid, plan: SweepPlan) -> List[TrialRecord]:
    from raygan.tracking.sweeps import ChildRuns

    space = plan.search_space()
    runs = ChildRuns(plan.tracking_uri, plan.experiment, plan.parent_run_id)
    out = []
    for t in list(getattr(grid, "_experiment_analysis").trials):
        r = t.last_result or {}
        kimg = float(r.get("kimg", 0.0) or 0.0)
        status = {"TERMINATED": "finished", "ERROR": "errored", "PENDING": "pending",
                  "RUNNING": "running", "PAUSED": "pending"}.get(t.status, t.status.lower())
        if status == "finished" and kimg < plan.budget - 1e-6:
            status = "stopped" if r.get(plan.objective) is not None else "pending"
        try:
            cfg = space.apply(plan.base, t.config).to_dict()
        except RayganError:
            cfg = {}
        out.append(TrialRecord(
            trial_id=t.trial_id, status=status, sampled=space.values(t.config), config=cfg, kimg=kimg,
            value=r.get(plan.objective), error=trial_error_reason(t) if status == "errored" else None,
            checkpoint=t.checkpoint or r.get("checkpoint_path"), run_id=runs.run_id(t.trial_id),
            applied={k: v for k, v in r.items() if k.startswith("applied_")}))
    return out


class _QuietTune:
    """Tune's own console output off (raygan prints its status lines and a summary): the legacy
    reporter honours verbose=0, the new output engine prints its header regardless."""

    _ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}

    def __enter__(self):
        import logging

        self._old = {k: os.environ.get(k) for k in self._ENV}
        os.environ.update(self._ENV)
        self._level = logging.getLogger("ray.tune").level
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # raygan prints one line per failed trial

    def __exit__(self, *exc):
        import logging

        logging.getLogger("ray.tune").setLevel(self._level)
        for k, v in self._old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return False


def _fit_and_finish(tuner, plan: SweepPlan) -> Dict[str, Any]:
    from raygan.distributed.sweep.champion import finish_sweep
    from raygan.tracking.sweeps import mark_parent

    hint = {"raygan.sweep_status": f"interrupted: resume with raygan tune --resume {plan.name}"}
    try:
        with _QuietTune():
            grid = tuner.fit()
    except KeyboardInterrupt:
        mark_parent(plan.tracking_uri, plan.parent_run_id, "KILLED", hint)
        raise
    trials = collect_trials(grid, plan)
    summary: Dict[str, Any] = {"name": plan.name, "storage": plan.storage, "trials": trials,
                               "tracking_uri": plan.tracking_uri, "parent_run_id": plan.parent_run_id,
                               "experiment": plan.experiment, "objective": plan.objective, "mode": plan.mode}
    opts = plan.options
    unfinished = [t for t in trials if t.status in ("pending", "running")]
    if not opts.total_kimg and (unfinished or len(trials) < opts.samples):
        summary["interrupted"] = True
        mark_parent(plan.tracking_uri, plan.parent_run_id, "KILLED", hint)
        return summary
    if opts.finish:
        summary.update(finish_sweep(plan, trials))
    else:
        mark_parent(plan.tracking_uri, plan.parent_run_id, "FINISHED", {})
    return summary
