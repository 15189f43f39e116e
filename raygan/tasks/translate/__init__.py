"""Task `translate`: domain A <-> domain B, unpaired (CycleGAN).

    task.py    the Task and its options (`translate:` section)
    cycle.py   cycle/identity losses, image pool, lr schedule
    net.py     the two translators and two discriminators
    eval.py    domain accuracy, cycle error
    infer.py   `raygan translate` on files
"""
from raygan.registry import import_modules
from raygan.tasks.translate.task import TranslateTask

import_modules(__name__, __path__)  # every module of the task, so what registers in them runs

__all__ = ["TranslateTask"]
