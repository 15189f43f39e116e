"""The same training step from two checkouts of raygan, alternating, to show a restructuring
left throughput unchanged (the engine issue's "ratio unchanged within noise").

    git worktree add /tmp/oldtree <old commit>
    python bench/engine_ab.py --old /tmp/oldtree [--seconds 15] [--rounds 3]

Each round runs a fresh process per checkout (DCGAN ngf=ndf=64, batch 64, 32 px, CPU, 1 thread)
and reports img/s; the table gives the medians and the new/old ratio.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from common import machine, table

STEP = r'''
import sys, time, torch
torch.set_num_threads(1)
from raygan.tasks import load_config
try:
    from raygan.engine.loop import Trainer
except ImportError:  # a tree from before the loop moved into engine/
    from raygan.trainer import Trainer
cfg = load_config(None, None, ["model.g={ngf: 64}", "model.d={ndf: 64}", "model.z_dim=100", "optim.batch_size=64",
                               "loss.name=ns", "ema.half_life_kimg=0", "train.device=cpu", "tracking.enabled=false"])
t = Trainer(cfg, None, evaluator=None)
new = hasattr(t, "task")  # after the task seam
def step():
    if new:
        t.task.train_step(t.nimg)
    else:
        t.step.step(t.next_real, t.nimg)
    t.nimg += 64
for _ in range(3):
    step()
t0, n = time.perf_counter(), 0
while time.perf_counter() - t0 < float(sys.argv[1]):
    step()
    n += 64
print(n / (time.perf_counter() - t0))
'''


def run(tree: Path, seconds: float) -> float:
    p = subprocess.run([sys.executable, "-c", STEP, str(seconds)], cwd=tree, capture_output=True, text=True,
                       env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    return float(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="a checkout of the old commit")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    new_tree = Path(__file__).resolve().parent.parent
    old, new = [], []
    for _ in range(args.rounds):
        old.append(run(Path(args.old), args.seconds))
        new.append(run(new_tree, args.seconds))
    mo, mn = statistics.median(old), statistics.median(new)
    print(f"machine: {machine()}")
    print(table(["checkout", "img/s (median)", "rounds", "ratio"],
                [["old", f"{mo:.1f}", " ".join(f"{v:.0f}" for v in old), "1"],
                 ["new", f"{mn:.1f}", " ".join(f"{v:.0f}" for v in new), f"{mn / mo:.3f}"]]))


if __name__ == "__main__":
    main()
