"""Same weights before and after a refactor: train presets for a fixed kimg through the CLI and
print the sha256 of each network in the final checkpoint.

    python bench/weights_hash.py [--kimg 12] [--presets quickstart,dcgan,...]

Deterministic on one machine and torch build (CPU, one thread): run it before and after a change
and compare the hashes. Evaluation is off (it never touches the training RNG anyway).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from common import machine


def tensor_hash(sd) -> str:
    h = hashlib.sha256()
    for k in sorted(sd):
        v = sd[k]
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(repr(v).encode())
    return h.hexdigest()[:16]


def run(preset: str, kimg: float, work: Path, extra) -> dict:
    run_dir = work / preset
    cmd = [sys.executable, "-m", "raygan", "train", "--preset", preset, "--run-dir", str(run_dir), "--no-progress",
           "--set", f"train.total_kimg={kimg}", "--set", "tracking.enabled=false", "--set", "train.eval_ticks=0",
           "--set", "eval.metrics=[]", "--set", "train.threads=1"] + [a for o in extra for a in ("--set", o)]
    p = subprocess.run(cmd, cwd=work, env={**os.environ, "RAYGAN_CACHE": str(work / "cache")},
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{preset}: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt-*"))
    state = torch.load(ckpts[-1] / "state.pt", map_location="cpu", weights_only=True)
    return {name: tensor_hash(sd) for name, sd in sorted(state["models"].items())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kimg", type=float, default=12.8)
    ap.add_argument("--presets", default="quickstart,dcgan,mlp,wgan-gp,resnet,digits")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="raygan-hash-"))
    print(f"machine: {machine()}")
    print(f"{args.kimg:g} kimg per preset, CPU, 1 thread, no evaluation")
    for preset in args.presets.split(","):
        hashes = run(preset, args.kimg, work, args.overrides)
        print(f"{preset:12s} " + "  ".join(f"{k} {v}" for k, v in hashes.items()), flush=True)


if __name__ == "__main__":
    main()
