"""Data-efficient GAN training: FID of the conditional DCGAN on 1k, 5k and 60k Fashion-MNIST
training images, without D augmentation vs DiffAugment vs ADA, at equal kimg.

Each cell trains the base preset (`fmnist-cgan-100pc`: conditional DCGAN ngf=ndf=32, EMA G)
with `data.per_class = images / 10` (class-balanced subset, seed 0; 60k = all of train) for
`--kimg` thousand real images shown to D, then scores the EMA generator with fmnist-cnn FID,
`--samples` generated (balanced classes) vs the 10k test split. Modes:
  none         no D augmentation
  diffaugment  DiffAugment `--policy` (default translation,cutout) on reals and fakes
  ada          ADA (bgc pipeline, target 0.6), speed `--ada-speed-kimg` (default kimg/4, so p can
               reach 1 within a short run; StyleGAN2-ADA's 500 kimg is sized for runs of 25M+)
Goal (issue 10): ADA or DiffAugment at 5k within 1.5x of the 60k FID without augmentation.

    python bench/data_efficient.py [--sizes 1000,5000,60000] [--modes none,diffaugment,ada]
                                   [--kimg 20] [--samples 10000] [--seeds 0] [--threads 2]

The default (9 runs of 20 kimg + 10k-sample FID each) takes about 25 minutes on 2 CPU cores;
the comparison the issue asks for wants more kimg (e.g. --kimg 200, ~4 h on 2 cores, minutes on a GPU).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from common import machine, table

MODES = ("none", "diffaugment", "ada")


def config(base, images, mode, kimg, samples, seed, policy, ada_speed, extra):
    from raygan.tasks import load_config

    over = [f"train.total_kimg={kimg}", "train.eval_ticks=0", "train.snapshot_ticks=1000", "train.sample_ticks=1000",
            "tracking.enabled=false", "eval.metrics=[fid]", f"eval.final_num_samples={samples}", f"seed={seed}",
            f"train.tick_kimg={max(kimg / 10, 1.0)}"]
    over.append("data.per_class=null" if images >= 60000 else f"data.per_class={images // 10}")
    over.append(f"augment.diffaugment={policy}" if mode == "diffaugment" else "augment.diffaugment=none")
    if mode == "ada":
        over.append(f"augment.ada={{target: 0.6, speed_kimg: {ada_speed}, interval: 4}}")
    return load_config(base, None, over + list(extra))


def run_cell(cfg, work):
    from raygan.engine.loop import Trainer

    t0 = time.time()
    trainer = Trainer(cfg, work, evaluator="auto")
    summary = trainer.run()
    p = trainer.task.augment.adaptive.p if trainer.task.augment is not None and trainer.task.augment.adaptive else None
    return {"fid": summary["final"]["fid"], "wall_s": time.time() - t0, "ada_p": None if p is None else float(p),
            "train_images": len(trainer.task.data.labels), "kimg": summary["kimg"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="fmnist-cgan-100pc")
    ap.add_argument("--sizes", default="1000,5000,60000")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--kimg", type=float, default=20.0)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--policy", default="translation,cutout")
    ap.add_argument("--ada-speed-kimg", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra config overrides")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",")]
    ada_speed = args.ada_speed_kimg or max(args.kimg / 4, 0.5)
    print(f"machine: {machine()}")
    print(f"base {args.base}; {args.kimg:g} kimg per run; FID fmnist-cnn, {args.samples} generated vs test (10k); "
          f"DiffAugment {args.policy}; ADA target 0.6, speed {ada_speed:g} kimg; seeds {args.seeds}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="raygan-dataeff-"))
    cells = {}
    for n in sizes:
        for mode in modes:
            runs = []
            for s in seeds:
                cfg = config(args.base, n, mode, args.kimg, args.samples, s, args.policy, ada_speed, args.overrides)
                r = run_cell(cfg, work / f"{n}-{mode}-{s}")
                runs.append(r)
                print(f"  {n:>6} images  {mode:<12} seed {s}: FID {r['fid']:.2f}  ({r['wall_s']:.0f} s"
                      + (f", final p {r['ada_p']:.2f}" if r["ada_p"] is not None else "") + ")", flush=True)
            cells[(n, mode)] = runs
    ref_key = (max(sizes), "none")
    ref = statistics.fmean(r["fid"] for r in cells[ref_key]) if ref_key in cells else None
    rows = []
    for n in sizes:
        row = [n]
        for mode in modes:
            fids = [r["fid"] for r in cells[(n, mode)]]
            m = statistics.fmean(fids)
            cell = f"{m:.2f}" + (f" ± {statistics.stdev(fids):.2f}" if len(fids) > 1 else "")
            row.append(cell + (f" ({m / ref:.2f}x)" if ref else ""))
        rows.append(row)
    print()
    print(f"FID (lower is better; in brackets: ratio to {max(sizes)} images without augmentation)")
    print(table(["train images", *modes], rows))
    if ref and 5000 in sizes:
        best = min((statistics.fmean(r["fid"] for r in cells[(5000, m)]), m) for m in modes if m != "none")
        verdict = "met" if best[0] <= 1.5 * ref else "missed"
        print(f"goal (best augmented 5k within 1.5x of {max(sizes)} without): {best[1]} {best[0]:.2f} vs "
              f"{1.5 * ref:.2f} -> {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{n}/{m}": v for (n, m), v in cells.items()}, indent=2))


if __name__ == "__main__":
    main()
