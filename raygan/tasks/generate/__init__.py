"""Task `generate`: noise (+ label) -> image.

    task.py    the Task (data, networks, tick, checkpoint state, export)
    step.py    its loss terms per phase of the adversarial step
    checks.py  config checks that need no data
    eval.py    FID/KID/PR/IS/CAS evaluation of a generator
"""
from raygan.registry import import_modules
from raygan.tasks.generate.task import GenerateTask

import_modules(__name__, __path__)  # every module of the task, so what registers in them runs

__all__ = ["GenerateTask"]
