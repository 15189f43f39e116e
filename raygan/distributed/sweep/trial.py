"""One Tune trial: the sampled values applied to the base config, an MLflow child run found or
created, then the same worker entry as every Ray host (`run_worker`): in this process with one
worker (`ray.tune.report` per evaluated tick), or as a TorchTrainer of W workers whose rank 0
reports through Ray Train and `TuneReportCallback`.

Every tick is evaluated with the cheap proxy (`eval.num_samples`): the objective value is what
ASHA (rungs in kimg) and the sampler see. What the trial really trains with is read back from
the built task (`applied_*` metrics and `applied.*` MLflow params). A trial whose losses go
non-finite raises DivergenceError: Tune marks it errored and the sweep goes on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional

from raygan.errors import DivergenceError, RayganError


def trial_name(trial) -> str:
    """`trial-<id>`: the trial's Tune name, folder and MLflow run name (module level: pickled with
    the Tuner for --resume)."""
    return f"trial-{trial.trial_id}"


def trial_fn(config: Dict[str, Any], plan: Optional[Dict[str, Any]] = None) -> None:
    """One Tune trial. `config`: the values Optuna sampled (by parameter name)."""
    import ray.tune

    from raygan.distributed.sweep.plan import SweepPlan
    from raygan.distributed.worker import WorkerSpec, run_worker

    p = SweepPlan.model_validate(plan)
    os.environ.update(p.env)
    ctx = ray.tune.get_context()
    trial_id, name = ctx.get_trial_id(), ctx.get_trial_name()
    sampled = p.search_space().values(config)
    cfg = p.trial_config(config)
    run_id = None
    if p.tracking_uri and p.parent_run_id:
        from raygan.tracking.sweeps import open_child_run

        run_id = open_child_run(p.tracking_uri, p.experiment, p.parent_run_id, trial_id, name, cfg.to_dict(),
                                sampled, p.options.workers_per_trial)
    W = p.options.workers_per_trial
    spec = WorkerSpec(config=cfg.to_dict(), report_to="tune" if W == 1 else "train", mlflow_run_id=run_id,
                      objective=p.objective, only_evaluated=True, log_model=False, progress=False,
                      console_prefix=f"[{name}] ", env=p.env)
    try:
        if W == 1:
            run_worker(spec.dump())
        else:
            _run_distributed(p, spec, trial_id)
    except DivergenceError as e:
        _fail(p, run_id, e)
        raise
    return None


def _run_distributed(p, spec, trial_id: str) -> None:
    from ray.tune.integration.ray_train import TuneReportCallback

    from raygan.distributed.launch import make_torch_trainer, root_cause

    o = p.options
    trainer = make_torch_trainer(spec, workers=o.workers_per_trial, cpus_per_worker=o.cpus_per_worker,
                                 gpus_per_worker=o.gpus_per_worker, run_name=f"train-{trial_id}",
                                 storage=p.trainers_path, callbacks=[TuneReportCallback()])
    try:
        trainer.fit()
    except Exception as e:
        cause = root_cause(e)
        if isinstance(cause, RayganError):
            raise cause from None
        raise


def _fail(p, run_id: Optional[str], e: BaseException) -> None:
    if run_id and p.tracking_uri:
        from raygan.tracking.store import open_client, set_status

        set_status(open_client(p.tracking_uri), run_id, "FAILED", {"raygan.error": str(e)})


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
