"""Task `repair`: degraded image -> clean image (denoise, inpaint, super-resolve).

    task.py    the Task and its options (`repair:` section)
    step.py    its loss terms per phase (L1 + adversarial)
    net.py     which generator/discriminator a pipeline gets
    eval.py    PSNR/SSIM on held-out degradations
    infer.py   `raygan repair` on files
"""
from raygan.registry import import_modules
from raygan.tasks.repair.task import RepairTask

import_modules(__name__, __path__)  # every module of the task, so what registers in them runs

__all__ = ["RepairTask"]
