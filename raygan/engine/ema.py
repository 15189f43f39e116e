"""Exponential moving average of the generator, with its half-life in kimg.

A half-life in images (not steps) means the same averaging at any batch size or worker
count: per step beta = 0.5 ** (batch / (half_life_kimg * 1000)), as in StyleGAN2-ADA.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn


def make_ema(generator: nn.Module) -> nn.Module:
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


def ema_beta(batch_size: int, half_life_kimg: float, cur_nimg: int, rampup: Optional[float]) -> float:
    half_life_nimg = half_life_kimg * 1000.0
    if rampup is not None:
        half_life_nimg = min(half_life_nimg, cur_nimg * rampup)
    if half_life_nimg <= 0:
        return 0.0
    return 0.5 ** (batch_size / half_life_nimg)


@torch.no_grad()
def update_ema(ema: nn.Module, generator: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * generator; buffers (BN statistics) are copied."""
    ema_p = [p for p in ema.parameters()]
    g_p = [p.detach() for p in generator.parameters()]
    torch._foreach_lerp_(ema_p, g_p, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), generator.buffers()):
        b_ema.copy_(b)
