"""Scaling on this machine: 1 vs 2 Ray Train CPU workers (gloo), threads per worker stated.

    python bench/ray_scaling.py [--kimg 32] [--out bench/out/ray_scaling.json]

Same global batch (64) in every row, so 2 workers each compute 32 per step and all-reduce
G's and D's gradients once per G/D step. Rows: 1 worker x 1 thread (baseline), 2 workers x
1 thread (the 2 cores split by processes), 1 worker x 2 threads (the 2 cores split by
torch's intra-op threads). Throughput as in ray_overhead.py: images / wall time between the
2nd and the last tick, from the MLflow timestamps.

Also printed: the bytes each DDP all-reduce moves for G and D of a few presets (float32
gradients), the input for the on-paper GPU scaling estimate in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ray_overhead import bench_overrides, machine, run_ray, start_ray, table  # noqa: E402


def allreduce_bytes():
    """Parameter counts and float32 gradient bytes per all-reduce for G and D of some presets."""
    from raygan.tasks import load_config
    from raygan.models import build_models

    rows = []
    for preset, channels, classes in (("digits", 1, 0), ("mlp", 1, 0), ("dcgan", 1, 0), ("resnet", 3, 0),
                                      ("cifar10-sngan", 3, 10)):
        try:
            cfg = load_config(preset)
        except Exception:
            continue
        m = cfg.model
        G, D = build_models(m.arch, resolution=cfg.data.resolution, channels=cfg.data.channels or channels,
                            z_dim=m.z_dim, num_classes=classes if m.conditional else 0,
                            spectral_norm=m.spectral_norm, g=dict(m.g), d=dict(m.d))
        g = sum(p.numel() for p in G.parameters() if p.requires_grad)
        d = sum(p.numel() for p in D.parameters() if p.requires_grad)
        per_step = 4 * (g + cfg.optim.n_critic * d)
        rows.append({"preset": preset, "arch": m.arch, "res": cfg.data.resolution, "G_params": g, "D_params": d,
                     "n_critic": cfg.optim.n_critic, "MB_per_step": per_step / 2 ** 20})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kimg", type=float, default=32.0)
    p.add_argument("--out", default="bench/out/ray_scaling.json")
    args = p.parse_args(argv)

    from raygan.tasks import load_config

    tmp = Path(tempfile.mkdtemp(prefix="raygan-bench-"))
    os.environ.setdefault("RAYGAN_CACHE", str(tmp / "cache"))
    info = machine()
    start_ray(num_cpus=2)
    rows = []
    for workers, threads in ((1, 1), (2, 1), (1, 2)):
        cfg = load_config("digits", None, bench_overrides(tmp, args.kimg, threads))
        r = run_ray(cfg, tmp, workers=workers, name=f"w{workers}-t{threads}")
        r["total_threads"] = workers * threads
        rows.append(r)
    base = rows[0]["img_per_s"]
    for r in rows:
        r["speedup"] = r["img_per_s"] / base
        r["per_rank_batch"] = 64 // r["workers"]
    cols = [("workers", "workers", "{}"), ("threads/worker", "threads_per_worker", "{}"),
            ("threads in all", "total_threads", "{}"), ("batch/rank", "per_rank_batch", "{}"),
            ("steady img/s", "img_per_s", "{:.0f}"), ("speed-up vs 1x1", "speedup", "{:.2f}"),
            ("wall s", "wall_s", "{:.1f}")]
    print(f"\nScaling on {info['cpus']} CPU cores (Ray Train, gloo): digits 32px dcgan ngf=ndf=32, global batch 64, "
          f"{args.kimg:g} kimg per row; machine {info}")
    print(table(rows, cols))
    ar = allreduce_bytes()
    print("\nDDP all-reduce volume per G+D step (float32 gradients; D all-reduced n_critic times per step):")
    print(table(ar, [("preset", "preset", "{}"), ("arch", "arch", "{}"), ("px", "res", "{}"),
                     ("G params", "G_params", "{:,}"), ("D params", "D_params", "{:,}"), ("n_critic", "n_critic", "{}"),
                     ("MiB per step", "MB_per_step", "{:.2f}")]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": info, "kimg": args.kimg, "rows": rows, "allreduce": ar},
                                         indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
