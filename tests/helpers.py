"""Plain helpers shared by test files (import them: `from helpers import params`); fixtures stay
in conftest.py. One definition each, instead of a copy per file."""
from __future__ import annotations

import re
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


def uninterrupted_and_resumed(cfg, root: Path):
    """(a run straight through, a run preempted halfway then resumed from its checkpoint) of `cfg`
    under `root`: what the exact-resume tests compare bit for bit. The resume starts where the
    preempted run's checkpoint is."""
    import pytest

    from raygan.engine.checkpoint import list_checkpoints
    from raygan.engine.loop import Trainer

    one = Trainer(cfg, root / "one", evaluator=None)
    one.run()
    half = round(cfg.train.total_kimg * 500)
    first = Trainer(cfg, root / "two", reporter=StopAt(half), evaluator=None)
    with pytest.raises(Preempted):
        first.run()
    second = Trainer(cfg, root / "resumed", evaluator=None)
    second.load(list_checkpoints(root / "two" / "checkpoints")[-1])
    assert second.nimg == first.nimg == half
    second.run()
    return one, second


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


# ------------------------------------------------------------------ one-line errors and the CLI
def one_line(code: int, err: str, pattern: str, warnings: bool = False) -> str:
    """Exit 2 and stderr is exactly one `raygan: error:` line (plus `raygan: warning:` lines when
    `warnings`) containing `pattern` (a plain substring, or a regular expression that matches)."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not (warnings and ln.startswith("raygan: warning"))]
    assert code == 2, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("raygan: error: "), err[-2000:]
    try:
        matches = re.search(pattern, lines[0]) is not None
    except re.error:
        matches = False
    assert pattern in lines[0] or matches, lines[0]
    return lines[0]


def cli(capsys, *args):
    """`raygan ARGS` in this process: (exit code, stdout, stderr)."""
    from raygan.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ tiny configs several files train
def engine_tiny(*extra):
    """A dcgan on digits with every part of the GAN step switched on (DiffAugment, flip, lazy R1, EMA)."""
    from raygan.config import load_config

    return load_config(None, None, [
        "data.name=digits", "data.resolution=28", "model.arch=dcgan", "model.z_dim=16",
        "model.g={ngf: 8}", "model.d={ndf: 8}", "optim.batch_size=32", "ema.half_life_kimg=0.5",
        "ema.rampup=0.05", "augment.diffaugment=color,translation,cutout", "augment.flip=true",
        "regularizer.name=r1", "regularizer.kwargs={weight: 1.0, every: 4}",
        "train.tick_kimg=0.256", "train.snapshot_ticks=1", "train.eval_ticks=1", "train.sample_ticks=1",
        "tracking.enabled=false", *extra])


def conditional_tiny(*extra):
    """A class-conditional dcgan on digits, no evaluation."""
    from raygan.config import load_config

    return load_config(None, None, [
        "data.name=digits", "data.resolution=28", "model.arch=dcgan", "model.z_dim=16", "model.conditional=true",
        "model.g={ngf: 8}", "model.d={ndf: 8}", "optim.batch_size=32", "ema.half_life_kimg=0.5",
        "ema.rampup=0.05", "train.tick_kimg=0.256", "train.snapshot_ticks=1", "train.eval_ticks=0",
        "train.sample_ticks=100", "tracking.enabled=false", "eval.metrics=[]", *extra])


def repair_tiny(*extra):
    """A tiny unet denoiser on digits with every part of the repair step on (warm-up, EMA, lazy R1, flips)."""
    from raygan.config import load_config

    return load_config(None, None, [
        "task=repair", "data.name=digits", "data.resolution=28", "model.arch=unet", "model.g={ngf: 8}",
        "model.d={ndf: 8}", "model.spectral_norm=true", "loss.name=lsgan", "optim.batch_size=16",
        "repair.degradations=noise:sigma=0.1..0.4", "repair.adv_warmup_kimg=0.064", "ema.half_life_kimg=0.2",
        "ema.rampup=0.1", "augment.flip=true", "regularizer.name=r1", "regularizer.kwargs={weight: 1.0, every: 3}",
        "train.tick_kimg=0.128", "train.snapshot_ticks=1", "train.sample_ticks=1", "train.eval_ticks=1",
        "eval.metrics=[psnr,ssim]", "eval.num_samples=16", "eval.final_num_samples=16", "eval.batch_size=8",
        "tracking.enabled=false", *extra])


# the GAN every `raygan augment` test trains per cell
AUGMENT_BASE = ["data.name=digits", "data.resolution=28", "model.arch=dcgan", "model.z_dim=16", "model.g={ngf: 8}",
                "model.d={ndf: 8}", "optim.batch_size=32", "ema.half_life_kimg=0.5", "train.tick_kimg=0.128",
                "augment.diffaugment=translation", "tracking.enabled=false", "eval.metrics=[]"]


class Recording(Reporter):
    """A reporter that keeps every tick's metrics."""

    def __init__(self):
        self.ticks = []

    def report(self, metrics, checkpoint_dir=None):
        self.ticks.append(dict(metrics))

