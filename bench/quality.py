"""Quality per wall-clock: the quickstart preset vs a plain pytorch/examples DCGAN.

Same machine, same training-time budget, one run, side by side. The reference is the
pytorch/examples recipe (ngf=ndf=64, nz=100, batch 64, BCE, Adam 2e-4 β1 0.5, torchvision
DataLoader, Fashion-MNIST padded to 32 px). Both are scored with the same protocol:
fmnist-cnn FID, 10k generated vs the 10k test split, evaluation time excluded from the clock.
The reference is scored with G in train mode and eval mode (BatchNorm) and gets the better
of the two. Goal: raygan reaches the reference's final FID in <= 1/3 of its time.

    python bench/quality.py [--seconds 600] [--points 8] [--samples 10000]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from common import ReferenceDCGAN, machine, reference_loader, table, torchvision_fmnist_root


def build_scorer(num_samples: int):
    from raygan.tasks import load_config
    from raygan.tasks.generate.eval import Evaluator

    cfg = load_config("quickstart")
    ev = Evaluator(cfg, torch.device("cpu"), channels=1)

    def score(G, train_mode: bool = False) -> float:
        if train_mode:  # the Evaluator puts G in eval mode; a wrapper keeps BN in batch-stat mode
            class TrainModeG(torch.nn.Module):
                def __init__(self, g):
                    super().__init__()
                    self.g, self.z_dim, self.num_classes = g, g.z_dim, 0

                def forward(self, z, y=None):
                    self.g.train()
                    return self.g(z, y)

            G = TrainModeG(G)
        values, _ = ev(G, num_samples)
        return values["fid"]

    return score


def run_reference(seconds, marks, score, log):
    from raygan.models import build_models

    torch.manual_seed(0)
    G, D = build_models("dcgan", resolution=32, channels=1, z_dim=100, g={"ngf": 64}, d={"ndf": 64})
    ref = ReferenceDCGAN(G, D, 100)
    loader = reference_loader(64, workers=2, root=torchvision_fmnist_root())
    it = iter(loader)
    curve, nimg, spent = [], 0, 0.0
    for mark in marks:
        t0 = time.perf_counter()
        while spent + (time.perf_counter() - t0) < mark:
            try:
                real, _ = next(it)
            except StopIteration:
                it = iter(loader)
                real, _ = next(it)
            ref.step(real)
            nimg += real.size(0)
        spent += time.perf_counter() - t0
        fid = min(score(G, train_mode=True), score(G, train_mode=False))
        G.train()
        curve.append((spent, nimg / 1000, fid))
        log(f"reference t={spent:.0f}s kimg={nimg / 1000:.1f} fid={fid:.2f}")
    return curve


def run_raygan(seconds, marks, score, log):
    from raygan.tasks import load_config
    from raygan.engine.loop import Trainer

    cfg = load_config("quickstart", None, ["tracking.enabled=false", "train.total_kimg=100000"])
    t = Trainer(cfg, None, evaluator=None)
    curve, spent = [], 0.0
    for mark in marks:
        t0 = time.perf_counter()
        while spent + (time.perf_counter() - t0) < mark:
            t.task.train_step(t.nimg)
            t.nimg += t.task.images_per_step()
        spent += time.perf_counter() - t0
        fid = score(t.task.eval_network())
        curve.append((spent, t.nimg / 1000, fid))
        log(f"raygan    t={spent:.0f}s kimg={t.nimg / 1000:.1f} fid={fid:.2f}")
    return curve


def first_time_reaching(curve, target):
    for t, _, fid in curve:
        if fid <= target:
            return t
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--json", default=None, help="also write the curves here")
    args = ap.parse_args()
    marks = [args.seconds * (i + 1) / args.points for i in range(args.points)]
    score = build_scorer(args.samples)
    log = lambda s: print(s, flush=True)  # noqa: E731
    ref = run_reference(args.seconds, marks, score, log)
    rg = run_raygan(args.seconds, marks, score, log)
    print(f"\nmachine: {machine()}")
    print(f"budget {args.seconds:.0f} s of training each; fmnist-cnn FID, {args.samples} generated vs 10000 "
          f"fashion-mnist:test@32px")
    rows = [[f"{r[0]:.0f}", f"{r[1]:.1f}", r[2], f"{g[1]:.1f}", g[2]] for r, g in zip(ref, rg)]
    print(table(["train s", "reference kimg", "reference FID", "raygan kimg", "raygan FID"], rows))
    target = ref[-1][2]
    reach = first_time_reaching(rg, target)
    if reach is None:
        print(f"raygan did not reach the reference's final FID {target:.2f} within {args.seconds:.0f} s")
    else:
        print(f"reference final FID {target:.2f} at {ref[-1][0]:.0f} s; raygan reached it by {reach:.0f} s "
              f"(<= {reach / ref[-1][0]:.2f} of the reference's time; resolution = one eval point, "
              f"{marks[0]:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"reference": ref, "raygan": rg, "machine": machine()}, f)


if __name__ == "__main__":
    main()
