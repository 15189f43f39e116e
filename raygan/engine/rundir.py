"""Run directories: one per training, never silently reused.

Layout: config.yaml (resolved), run.json (MLflow run id), checkpoints/ckpt-<nimg>/,
samples/grid-<nimg>.png, metrics.jsonl, curves.png, summary.json.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import yaml

from raygan.config import Config, build_config, deep_merge, parse_override
from raygan.engine.checkpoint import latest_checkpoint
from raygan.errors import RunDirError

CONFIG_FILE = "config.yaml"


def default_run_dir(cfg: Config, base: str = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{cfg.preset or 'custom'}-{stamp}"
    path = Path(base) / name
    i = 1
    while path.exists():
        path = Path(base) / f"{name}-{i}"
        i += 1
    return path


def holds_run(run_dir: Path) -> bool:
    return (run_dir / CONFIG_FILE).exists() or (run_dir / "checkpoints").exists()


def prepare_fresh(run_dir: Path) -> None:
    if holds_run(run_dir):
        raise RunDirError(f"run dir {run_dir} already holds a run; pass --resume to continue it "
                          f"or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)


def write_config(run_dir: Path, cfg: Config) -> None:
    tmp = run_dir / (CONFIG_FILE + ".tmp")
    tmp.write_text(cfg.to_yaml())
    tmp.replace(run_dir / CONFIG_FILE)


def load_run_config(run_dir: Path, overrides: Optional[List[str]] = None) -> Config:
    """The run's own config, with --set overrides on top (e.g. a larger train.total_kimg)."""
    f = run_dir / CONFIG_FILE
    if not f.is_file():
        raise RunDirError(f"run dir {run_dir} holds no run ({CONFIG_FILE} missing)")
    try:
        data = yaml.safe_load(f.read_text()) or {}
    except yaml.YAMLError:
        raise RunDirError(f"{f} is not valid YAML") from None
    for item in overrides or []:
        data = deep_merge(data, parse_override(item))
    return build_config(data)


def resume_checkpoint(run_dir: Path) -> Path:
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise RunDirError(f"run dir {run_dir} has no checkpoint to resume from")
    return ckpt
