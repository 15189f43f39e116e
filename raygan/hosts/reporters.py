"""What a run reports to, the same on every host: the console, the run store (metrics.jsonl,
samples) and MLflow. The local host and the Ray worker's rank 0 both build them here, so
neither host imports the other."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from raygan.config import Config
from raygan.engine.reporter import ConsoleReporter, JsonlReporter, MultiReporter, Reporter
from raygan.hosts import storage
from raygan.hosts.runstore import RunStore


class RunFilesReporter(Reporter):
    """Copies each tick's picture into the run store when the loop wrote it elsewhere (a Ray
    worker's temp dir), so every host leaves the same run-directory contents."""

    def __init__(self, store: RunStore):
        self.store = store

    def artifact(self, path, subdir=None, step=None):
        if subdir == "samples" and step is not None:
            target = self.store.picture_path(int(step))
            if str(Path(path).resolve()) != str(target):
                storage.put_file(path, target)


def make_reporters(cfg: Config, store: RunStore, progress: bool = True, run_id: Optional[str] = None,
                   parent_run_id: Optional[str] = None, tags: Optional[Dict[str, str]] = None,
                   console_stream=None, copy_files: bool = False, run_name: Optional[str] = None):
    """(all reporters, the MLflow one or None) for the process that owns a run's records."""
    reps: List[Reporter] = [ConsoleReporter(cfg.train.total_kimg, bar=progress, stream=console_stream),
                            JsonlReporter(store)]
    if copy_files:
        reps.append(RunFilesReporter(store))
    mlflow_rep = None
    if cfg.tracking.enabled:
        from raygan.tracking.reporter import MLflowReporter

        mlflow_rep = MLflowReporter(cfg.to_dict(), store, uri=cfg.tracking.uri, experiment=cfg.tracking.experiment,
                                    run_name=run_name or cfg.tracking.run_name or store.name, run_id=run_id,
                                    parent_run_id=parent_run_id, register_model=cfg.tracking.register_model,
                                    tags=tags)
        reps.append(mlflow_rep)
    return MultiReporter(reps), mlflow_rep
