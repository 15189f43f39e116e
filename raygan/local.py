"""The local host: one plain process runs the loop, reporting to the console, the run's
metrics.jsonl and MLflow. `raygan train` without --workers ends here."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from raygan.config import Config
from raygan.engine import rundir
from raygan.engine.reporter import ConsoleReporter, JsonlReporter, MultiReporter


def make_reporters(cfg: Config, run_dir: Path, progress: bool = True, run_id: Optional[str] = None,
                   parent_run_id: Optional[str] = None, tags: Optional[Dict[str, str]] = None):
    reps = [ConsoleReporter(cfg.train.total_kimg, enabled=progress), JsonlReporter(run_dir / "metrics.jsonl")]
    mlflow_rep = None
    if cfg.tracking.enabled:
        from raygan.tracking.reporter import MLflowReporter

        mlflow_rep = MLflowReporter(cfg.to_dict(), run_dir, uri=cfg.tracking.uri, experiment=cfg.tracking.experiment,
                                    run_name=cfg.tracking.run_name or run_dir.name, run_id=run_id,
                                    parent_run_id=parent_run_id, register_model=cfg.tracking.register_model,
                                    tags=tags)
        reps.append(mlflow_rep)
    return MultiReporter(reps), mlflow_rep


def train_local(cfg: Config, run_dir: Path, resume: bool = False, progress: bool = True) -> Dict[str, Any]:
    """Train in this process. Fresh: the run dir must not hold a run. Resume: latest checkpoint."""
    from raygan.trainer import Trainer

    run_dir = Path(run_dir)
    ckpt = rundir.resume_checkpoint(run_dir) if resume else None
    if not resume:
        rundir.prepare_fresh(run_dir)
    trainer = Trainer(cfg, run_dir)  # builds data + models: fails before anything is written
    if ckpt is not None:
        trainer.load(ckpt)
    rundir.write_config(run_dir, cfg)
    reporter, mlflow_rep = make_reporters(cfg, run_dir, progress)
    trainer.reporter = reporter
    try:
        summary = trainer.run()
    finally:
        reporter.close()
    summary["run_dir"] = str(run_dir)
    if mlflow_rep is not None:
        summary["mlflow_run_id"] = mlflow_rep.run_id
        summary["tracking_uri"] = mlflow_rep.uri
    return summary
