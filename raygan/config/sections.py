"""The tables the task layer fills so that config stays a bottom layer.

Config knows the sections every task shares (data, model, optim, train, ...). A task's own
options live with the task (`RepairTask.Options`): registering a task (`@TASKS.register`) puts
its name and its options model here, and the config's section named after the task is
validated by that model. The task layer also adds the checks that need its registries (names of
architectures, sources, metrics...) with `add_check`; `build_config` runs them. Nothing here
imports upwards: the tables are empty until `raygan.tasks` is imported, and a config that names
a task no one registered fails saying so.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Type

from pydantic import BaseModel

#: task name -> its options model (None: the task has no options of its own), in registration order
TASK_OPTIONS: Dict[str, Optional[Type[BaseModel]]] = {}
#: checks a built config must pass (registry names, task combinations), added by the task layer
CHECKS: List[Callable[..., None]] = []


def register_task(name: str, options: Optional[Type[BaseModel]] = None) -> None:
    """A task `name` exists; `options` (a `TaskOptions` model) validates the config's `name:` section."""
    if options is not None and not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise TypeError(f"task '{name}': Options must be a pydantic model (a TaskOptions subclass)")
    TASK_OPTIONS[name] = options


def unregister_task(name: str) -> None:
    TASK_OPTIONS.pop(name, None)


def option_sections() -> Dict[str, Type[BaseModel]]:
    """Config section name -> the model that validates it (the tasks that have options)."""
    return {name: model for name, model in TASK_OPTIONS.items() if model is not None}


def add_check(fn: Callable[..., None]) -> Callable[..., None]:
    if fn not in CHECKS:
        CHECKS.append(fn)
    return fn
