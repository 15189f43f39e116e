"""Transfer learning for a GAN on 100 images: fine-tuned vs from scratch vs from scratch with ADA.

Protocol: a dcgan is pretrained (unconditional) on nine Fashion-MNIST classes (all but ankle
boot, `--pretrain-per-class` training images each, `--pretrain-kimg`). Then, on 100 training
images of the held-out class (ankle boot, a fixed seeded pick), three runs of equal length
(`--kimg`) per seed:
  finetune      `raygan train --init-from <pretrained>` (G, G_ema, D copied; fresh optimisers)
  finetune+fd   the same with FreezeD (`model.freeze_d`, D's first block frozen)
  scratch       fresh networks
  scratch+ada   fresh networks, StyleGAN2-ADA's adaptive augmentation (target 0.6; its speed
                scaled to the short run: p can go 0 -> 1 in `--ada-speed-kimg`)
FID (fmnist-cnn features, the domain extractor raygan ships) of `--samples` generated images
(the EMA generator) against the 1000 ankle-boot test images; mean ± std over `--seeds` seeds.
Goal: fine-tuning >= 2x lower FID than scratch with ADA.

    python bench/transfer.py [--pretrain-kimg 40] [--pretrain-per-class 6000] [--kimg 10] [--seeds 3]
                             [--samples 1000] [--ngf 32] [--work-dir W]

Data go through raygan's `folder` source (PNG files written once into the work dir), so the runs
are plain `raygan train` runs. `--work-dir W` keeps them: a second call reuses the pretrained run.
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

HELD_OUT = 9  # ankle boot
CONDITIONS = ("finetune", "finetune+fd", "scratch", "scratch+ada")


def write_folders(work: Path, per_class: int, shots: int) -> tuple:
    """pretrain/<class>/*.png (classes 0-8) and boot/*.png (`shots` ankle boots), once."""
    from PIL import Image

    from raygan.data import load_dataset

    pre, boot = work / f"data-pretrain{per_class}", work / f"data-boot{shots}"
    if (pre / ".done").is_file() and (boot / ".done").is_file():
        return pre, boot
    gen = torch.Generator().manual_seed(0)
    for split in ("train", "test"):  # a folder with train/ and test/: the run's own end-of-run FID has a reference
        ds = load_dataset("fashion-mnist", split=split)
        for c in range(10):
            idx = (ds.labels == c).nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=gen)]
            n = (shots if c == HELD_OUT else per_class) if split == "train" else (len(idx) if c == HELD_OUT else 20)
            where = (boot / split / "x") if c == HELD_OUT else (pre / split / str(c))
            where.mkdir(parents=True, exist_ok=True)
            for i in idx[:n].tolist():
                Image.fromarray(ds.images[i, 0].numpy(), mode="L").save(where / f"{i:05d}.png")
    (pre / ".done").touch()
    (boot / ".done").touch()
    return pre, boot


def base(args, root: Path, seed: int, kimg: float) -> list:
    return ["data.name=folder", f"data.root={root}", "data.resolution=28", "data.channels=1", "model.arch=dcgan",
            "model.z_dim=64", f"model.g={{ngf: {args.ngf}}}", f"model.d={{ndf: {args.ngf}}}", "optim.batch_size=64",
            "ema.half_life_kimg=0.5", "ema.rampup=0.05", f"train.total_kimg={kimg}", "train.tick_kimg=1",
            "train.snapshot_ticks=1000", "train.sample_ticks=1000", "train.eval_ticks=0", "eval.metrics=[fid]",
            "eval.final_num_samples=200",
            "tracking.enabled=false", f"seed={seed}"]


def fid_to(reference_feats, G, n: int, extractor) -> float:
    from raygan.metrics.evaluate import extract, to_uint8
    from raygan.metrics.frechet import frechet_distance

    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        imgs = torch.cat([to_uint8(G(torch.randn(min(500, n - i), G.z_dim, generator=gen)))
                          for i in range(0, n, 500)])
    mu, sigma = extract(imgs, extractor)[0].mu_sigma()
    return float(frechet_distance(mu, sigma, *reference_feats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrain-kimg", type=float, default=40)
    ap.add_argument("--pretrain-per-class", type=int, default=6000)
    ap.add_argument("--kimg", type=float, default=10)
    ap.add_argument("--shots", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--ada-speed-kimg", type=float, default=None, help="default: the run's --kimg / 2")
    ap.add_argument("--freeze-d", type=int, default=1)
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from raygan import api
    from raygan.data import load_dataset
    from raygan.metrics.evaluate import extract
    from raygan.metrics.extractors.base import build_extractor

    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.time()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="raygan-transfer-"))
    work.mkdir(parents=True, exist_ok=True)
    pre_data, boot_data = write_folders(work, args.pretrain_per_class, args.shots)
    extractor = build_extractor("fmnist-cnn")
    test = load_dataset("fashion-mnist", split="test")
    ref = extract(test.images[test.labels == HELD_OUT], extractor)[0].mu_sigma()
    print(f"# transfer bench  ({machine()})", flush=True)

    pre_dir = work / f"pretrain-{args.pretrain_kimg:g}kimg"
    if not (pre_dir / "checkpoints").is_dir():
        api.train(api.config(None, None, base(args, pre_data, 0, args.pretrain_kimg)), run_dir=pre_dir, progress=False)
    t_pre = time.time() - t0
    ada_speed = args.ada_speed_kimg or args.kimg / 2
    extra = {"finetune": [], "finetune+fd": [f"model.freeze_d={args.freeze_d}"], "scratch": [],
             "scratch+ada": [f"augment.ada={{target: 0.6, speed_kimg: {ada_speed:g}, interval: 4}}"]}
    conds = [c for c in args.conditions.split(",") if c]
    fids = {c: [] for c in conds}
    G_pre = api.load(pre_dir)[0]
    fid_pre = fid_to(ref, G_pre, args.samples, extractor)
    for seed in range(args.seeds):
        for c in conds:
            run = work / f"{c}-s{seed}-{args.kimg:g}kimg"
            if not (run / "checkpoints").is_dir():
                cfg = api.config(None, None, base(args, boot_data, seed, args.kimg) + extra[c])
                api.train(cfg, run_dir=run, progress=False,
                          init_from=str(pre_dir) if c.startswith("finetune") else None)
            fids[c].append(fid_to(ref, api.load(run)[0], args.samples, extractor))
            print(f"  seed {seed} {c:12s} FID {fids[c][-1]:.2f}", flush=True)
    ms = lambda v: f"{statistics.mean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else 0:.2f}"  # noqa: E731
    print()
    print(f"FID to the {len(test.labels[test.labels == HELD_OUT])} ankle-boot test images (fmnist-cnn, {args.samples} "
          f"samples, G_ema); {args.shots} training boots; {args.kimg:g} kimg per run; pretrained {args.pretrain_kimg:g} "
          f"kimg on 9 classes x {args.pretrain_per_class}; dcgan ngf={args.ngf}; {args.seeds} seeds")
    print(table(["condition", "FID mean ± std", "per seed"],
                [["pretrained (no fine-tuning)", f"{fid_pre:.2f}", ""]] +
                [[c, ms(v), ", ".join(f"{x:.1f}" for x in v)] for c, v in fids.items()]))
    if "finetune" in fids and "scratch+ada" in fids:
        ratio = statistics.mean(fids["scratch+ada"]) / statistics.mean(fids["finetune"])
        print(f"scratch+ada / finetune FID ratio: {ratio:.2f} (goal >= 2): {'met' if ratio >= 2 else 'NOT met'}")
    print(f"wall: {time.time() - t0:.0f} s (pretraining {t_pre:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"fid": fids, "fid_pretrained": fid_pre, "args": vars(args)}, indent=1))


if __name__ == "__main__":
    main()
