"""What is trained: a registered Task per kind of work the engine hosts.

    generate   noise (+ label) -> image          raygan.tasks.generate/
    repair     degraded image -> clean image     raygan.tasks.repair/
    translate  domain A <-> domain B, unpaired   raygan.tasks.translate/

Each task is a subpackage (task.py, step.py, net.py, eval.py, infer.py as it needs them);
shared here: base.py (the Task contract), pair.py (a G/D pair's optimisers and phases),
check.py (building a checked config), loading.py (a saved model back).

Adding a task is one subpackage: a `Task` subclass (see raygan.tasks.base) decorated with
`@TASKS.register("name")`, with its options (the config section named after it) as a nested
`Options(TaskOptions)` model. Every module of this package is imported below, which runs those
decorators; the loop, checkpoints, Ray hosts, MLflow and the CLI look tasks up by `cfg.task`.
"""
from __future__ import annotations

from raygan.registry import import_modules
from raygan.tasks.base import TASKS, ExportedModel, Task, TaskContext, task_class, unwrap
from raygan.tasks.check import build_config, check_names, load_config, with_overrides

import_modules(__name__, __path__)


def check_config(cfg) -> None:
    """The task's own checks of a config (names, combinations), before any data is read."""
    task_class(cfg.task).check_config(cfg)


__all__ = ["TASKS", "Task", "TaskContext", "ExportedModel", "unwrap", "task_class", "check_config", "check_names",
           "build_config", "load_config", "with_overrides"]
