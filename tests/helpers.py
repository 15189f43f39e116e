"""Plain helpers shared by test files (import them: `from helpers import params`); fixtures stay
in conftest.py. One definition each, instead of a copy per file."""
from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch

from raygan.engine.reporter import Reporter


def params(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """A module's state dict, cloned (a snapshot that later training cannot change)."""
    return {k: v.clone() for k, v in module.state_dict().items()}


def bitwise_differences(a: Any, b: Any, where: str = "") -> List[str]:
    """Where two nested states (dicts, lists, tuples of tensors and plain values: state dicts,
    optimiser states, task states) differ, bit for bit; [] when they are identical."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
        return [] if same else [where or "<tensor>"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(map(str, a.keys() ^ b.keys()))}"]
        return [d for k in a for d in bitwise_differences(a[k], b[k], f"{where}.{k}" if where else str(k))]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in bitwise_differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def assert_bitwise_equal(a: Any, b: Any) -> None:
    diff = bitwise_differences(a, b)
    assert not diff, f"{len(diff)} differences, first: {diff[:5]}"


def sets(overrides: Sequence[str]) -> List[str]:
    """CLI arguments `--set o` for each override."""
    out: List[str] = []
    for o in overrides:
        out += ["--set", o]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Preempted(Exception):
    pass


class StopAt(Reporter):
    """A host that dies right after the checkpoint written at `nimg` (a preempted run): the run
    keeps its own total (and so its schedules) up to the checkpoint a resume starts from."""

    def __init__(self, nimg: int):
        super().__init__()
        self.nimg = nimg

    def report(self, metrics, checkpoint_dir=None):
        if round(metrics["kimg"] * 1000) >= self.nimg:
            raise Preempted


@contextmanager
def isolated_dir(tmp: Path):
    """For module-scoped fixtures: work in `tmp`, with its own raygan cache and no MLflow tracking
    URI from the environment (function-scoped tests use conftest's `in_tmp`)."""
    import pytest

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("RAYGAN_CACHE", str(tmp / "cache"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield mp

