"""What is trained: a registered Task per kind of work the engine hosts.

    generate   noise (+ label) -> image          raygan.tasks.generate
    repair     degraded image -> clean image     raygan.tasks.repair
    translate  domain A <-> domain B, unpaired   raygan.tasks.translate

Adding a task is one module (a `Task` subclass, see raygan.tasks.base) plus its line below;
the loop, checkpoints, Ray hosts, MLflow and the CLI look tasks up here by `cfg.task`.
"""
from __future__ import annotations

from raygan.registry import Registry
from raygan.tasks.base import ExportedModel, Task, TaskContext, unwrap

TASKS = Registry("task")


def task_class(name: str) -> type:
    return TASKS.get(name)


def check_config(cfg) -> None:
    """The task's own checks of a config (names, combinations), before any data is read."""
    task_class(cfg.task).check_config(cfg)


from raygan.tasks.generate import GenerateTask  # noqa: E402

TASKS.register("generate")(GenerateTask)
from raygan.tasks.translate import TranslateTask  # noqa: E402

TASKS.register("translate")(TranslateTask)
from raygan.tasks.repair import RepairTask  # noqa: E402

TASKS.register("repair")(RepairTask)

__all__ = ["TASKS", "Task", "TaskContext", "ExportedModel", "unwrap", "task_class", "check_config"]
