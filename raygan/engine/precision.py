"""One mixed-precision object per run, in the spirit of Lightning Fabric's precision plugins:
the autocast context, one grad scaler per optimiser group, backward, unscale (for clipping)
and the optimiser step. Every task trains through it and never writes its own autocast or scaler.

AMP runs on CUDA only ("bf16" or "fp16"; anything else, or a CPU/MPS device, is float32). Only
fp16 scales the loss: bf16 has float32's range. The scalers are named after the optimisers they
step ("G", "D"); their state dicts are what a checkpoint stores under "scaler" (the keys are
unchanged from the scalers the tasks used to own, so older checkpoints load).
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterable, Optional, Sequence

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, amp: str, device: torch.device, nets: Sequence[str] = ("G", "D")):
        device = torch.device(device)
        self.dtype: Optional[torch.dtype] = AMP_DTYPES.get(amp) if device.type == "cuda" else None
        fp16 = self.dtype is torch.float16
        self.scalers: Dict[str, torch.amp.GradScaler] = {
            n: torch.amp.GradScaler("cuda", enabled=fp16) for n in nets}

    def autocast(self):
        """Where the forward passes of a phase run (a no-op in float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)

    def backward(self, loss: torch.Tensor, net: str, scaled: bool = True) -> None:
        """`scaled` False: a float32 phase (a lazy regulariser) backpropagates unscaled."""
        (self.scalers[net].scale(loss) if scaled else loss).backward()

    def unscale(self, net: str, optimizer: torch.optim.Optimizer) -> None:
        """Gradients in their true units (before clipping); at most once per step."""
        self.scalers[net].unscale_(optimizer)

    def clip_grad_norm(self, net: str, optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor],
                       max_norm: float, scaled: bool = True) -> torch.Tensor:
        if scaled:
            self.unscale(net, optimizer)
        return torch.nn.utils.clip_grad_norm_(list(params), max_norm)

    def step(self, net: str, optimizer: torch.optim.Optimizer, scaled: bool = True) -> None:
        """The optimiser step (skipped by the scaler when fp16 gradients overflowed), then the
        scale update."""
        if not scaled:
            optimizer.step()
            return
        scaler = self.scalers[net]
        scaler.step(optimizer)
        scaler.update()
