"""Training statistics by name, accumulated on the device and read once per tick.

A task declares its statistics and the counter each one is averaged over, e.g.

    stats = StepStats({"loss_d": "d_steps", "loss_g": "g_steps"}, device)
    stats.add("loss_d", loss)        # a device tensor: no host sync
    stats.count("d_steps")
    stats.read(reduce=dist.all_reduce_sum)   # {"loss_d": mean, "loss_g": mean}, then reset

One float64 buffer holds every sum and counter, so a tick costs one all-reduce and one
device-to-host copy whatever the task.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch


class StepStats:
    def __init__(self, averaged_over: Dict[str, str], device: torch.device):
        self.names = list(averaged_over)
        self.counters = list(dict.fromkeys(averaged_over.values()))
        self._over = dict(averaged_over)
        slots = self.names + self.counters
        self._slot = {n: i for i, n in enumerate(slots)}
        self.buffer = torch.zeros(len(slots), dtype=torch.float64, device=device)

    def add(self, name: str, value: torch.Tensor) -> None:
        self.buffer[self._slot[name]] += value.detach().double()

    def count(self, counter: str, n: int = 1) -> None:
        self.buffer[self._slot[counter]] += n

    def counted(self, counter: str) -> float:
        """A counter's value since the last read (one host sync: for tests and tools)."""
        return float(self.buffer[self._slot[counter]].item())

    def read(self, reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> Dict[str, float]:
        """Mean of each statistic since the last read (one host sync), then reset."""
        buf = self.buffer.clone()
        if reduce is not None:
            buf = reduce(buf)
        self.buffer.zero_()
        vals = buf.tolist()
        out = {}
        for name in self.names:
            n = max(vals[self._slot[self._over[name]]], 1.0)
            out[name] = vals[self._slot[name]] / n
        return out
