"""raygan's training loop vs the pytorch/examples DCGAN loop: same model, batch, device.

Both train the same DCGAN (raygan's `dcgan` G/D, BCE/non-saturating loss, Adam 2e-4 β1 0.5)
on Fashion-MNIST padded to 32 px, alternating in rounds so that machine noise hits both.
The reference feeds a torchvision dataset through a DataLoader (as pytorch/examples does);
raygan indexes a uint8 tensor on the device. Prints img/s and the ratio (goal >= 1.0).

    python bench/throughput.py [--seconds 20] [--rounds 3] [--ngf 64] [--batch 64] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import ReferenceDCGAN, machine, reference_loader, table, torchvision_fmnist_root


def raygan_trainer(args):
    from raygan.config import load_config
    from raygan.trainer import Trainer

    cfg = load_config(None, None, [
        f"model.g={{ngf: {args.ngf}}}", f"model.d={{ndf: {args.ngf}}}", "model.z_dim=100",
        f"optim.batch_size={args.batch}", "loss.name=ns", "ema.half_life_kimg=0", f"train.device={args.device}",
        "tracking.enabled=false"])
    return Trainer(cfg, None, evaluator=None)


def time_raygan(t, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t.task.train_step(t.nimg)
        t.nimg += t.task.images_per_step()
        n += t.task.images_per_step()
        if n % (t.task.images_per_step() * 50) == 0:
            t.task.read_stats()  # once per "tick", as the loop does
    if t.device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def time_reference(ref, it, seconds: float, device) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            real, _ = next(it[0])
        except StopIteration:
            it[0] = iter(it[1])
            real, _ = next(it[0])
        ref.step(real.to(device))
        n += real.size(0)
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)

    t = raygan_trainer(args)
    from raygan.models import build_models

    torch.manual_seed(0)
    G, D = build_models("dcgan", resolution=32, channels=1, z_dim=100, g={"ngf": args.ngf}, d={"ndf": args.ngf})
    ref = ReferenceDCGAN(G.to(device), D.to(device), 100, device=device)
    loader = reference_loader(args.batch, workers=args.workers, root=torchvision_fmnist_root())
    it = [iter(loader), loader]
    # warm-up both (allocator, DataLoader workers, cudnn autotune)
    time_raygan(t, 3.0)
    time_reference(ref, it, 3.0, device)
    rg, rf = [], []
    for _ in range(args.rounds):
        rg.append(time_raygan(t, args.seconds))
        rf.append(time_reference(ref, it, args.seconds, device))
    mg, mf = statistics.median(rg), statistics.median(rf)
    print(f"machine: {machine()}")
    print(f"DCGAN ngf=ndf={args.ngf}, batch {args.batch}, {args.device}, {args.rounds} rounds x {args.seconds:.0f} s, "
          f"reference DataLoader workers={args.workers}")
    print(table(["loop", "img/s (median)", "rounds", "ratio vs reference"],
                [["pytorch/examples dcgan", mf, " ".join(f"{x:.0f}" for x in rf), 1.0],
                 ["raygan", mg, " ".join(f"{x:.0f}" for x in rg), mg / mf]]))


if __name__ == "__main__":
    main()
