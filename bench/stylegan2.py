"""FID against wall time: the fmnist-stylegan2 preset vs the resnet (SNGAN) and dcgan presets.

Same machine, same training-time budget per preset, one run each (seed 0), trained in turn in
this process through raygan's own loop (`Trainer`, task.train_step), each scored at the same
wall-clock marks with one protocol: fmnist-cnn FID of the EMA generator where the preset has
one, N generated vs the 10k Fashion-MNIST test split at 32 px; evaluation time is excluded from
the clock. On a CPU StyleGAN2 pays for modulated convolutions at full width, path length's
double backward and its lazy R1, so it sees far fewer images in the same seconds: the table
says how far fewer, and at which budget (if any) it overtakes the others.

    python bench/stylegan2.py [--seconds 600] [--points 6] [--samples 5000] [--threads N]
        [--presets fmnist-stylegan2 resnet dcgan] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

PRESETS = ["fmnist-stylegan2", "resnet", "dcgan"]


def build_scorer(num_samples: int):
    from raygan.tasks import load_config
    from raygan.tasks.generate.eval import Evaluator

    ev = Evaluator(load_config("quickstart"), torch.device("cpu"), channels=1)

    def score(G) -> float:
        values, _ = ev(G, num_samples)
        return float(values["fid"])

    return score


def run_preset(preset: str, marks, score, log):
    from raygan.engine.loop import Trainer
    from raygan.tasks import load_config

    cfg = load_config(preset, None, ["tracking.enabled=false", "train.total_kimg=100000", "seed=0",
                                     "train.device=cpu"])
    t = Trainer(cfg, None, evaluator=None)
    per_step = t.task.images_per_step()
    curve, spent = [], 0.0
    for mark in marks:
        t0 = time.perf_counter()
        while spent + (time.perf_counter() - t0) < mark:
            t.task.train_step(t.nimg)
            t.nimg += per_step
        spent += time.perf_counter() - t0
        fid = score(t.task.eval_network())
        curve.append((spent, t.nimg / 1000, fid))
        log(f"{preset:18s} t={spent:.0f}s kimg={t.nimg / 1000:.2f} fid={fid:.2f}")
    return curve


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="training seconds per preset")
    ap.add_argument("--points", type=int, default=6, help="evaluations per preset, evenly spaced in time")
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--presets", nargs="*", default=PRESETS)
    ap.add_argument("--json", default=None, help="also write the curves here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    marks = [args.seconds * (i + 1) / args.points for i in range(args.points)]
    score = build_scorer(args.samples)
    log = lambda s: print(s, flush=True)  # noqa: E731
    curves = {p: run_preset(p, marks, score, log) for p in args.presets}
    print(f"\nmachine: {machine()}")
    print(f"budget {args.seconds:.0f} s of training per preset, one run each; fmnist-cnn FID, {args.samples} "
          f"generated vs 10000 fashion-mnist:test@32px (evaluation not timed)")
    headers = ["train s"] + [f"{p} {k}" for p in args.presets for k in ("kimg", "FID")]
    rows = []
    for i, mark in enumerate(marks):
        rows.append([f"{mark:.0f}"] + [v for p in args.presets
                                      for v in (f"{curves[p][i][1]:.2f}", curves[p][i][2])])
    print(table(headers, rows))
    speed = {p: curves[p][-1][1] * 1000 / curves[p][-1][0] for p in args.presets}
    print("images/s: " + ", ".join(f"{p} {v:.0f}" for p, v in speed.items()))
    best = {p: min(c[2] for c in curves[p]) for p in args.presets}
    print("best FID: " + ", ".join(f"{p} {v:.2f}" for p, v in best.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"curves": curves, "machine": machine(), "seconds": args.seconds,
                       "samples": args.samples}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
