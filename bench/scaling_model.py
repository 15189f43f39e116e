"""On paper: how GAN training should scale on 8-64 GPUs, from measured FLOPs and bytes.

Measured here (CPU is fine for counting): the FLOPs of one full training iteration per
image (torch.utils.flop_counter over n_critic D steps + 1 G step, forward and backward)
and the gradient bytes all-reduced per iteration (G once, D n_critic times, float32).
Assumed (stated in the output): the FLOP rate a GPU sustains on these small convnets and
the all-reduce bus bandwidth inside a node (NVLink) and across nodes (network).

Model: t_iter = t_compute(per-GPU batch) + t_allreduce (no overlap: a lower bound on
efficiency; DDP overlaps buckets with backward), ring all-reduce moving 2(N-1)/N x bytes.

    python bench/scaling_model.py [--preset cifar10-sngan] [--tflops 60] [--nvlink-gbs 150] [--net-gbs 12.5]
"""
from __future__ import annotations

import argparse

from torch.utils.flop_counter import FlopCounterMode

from common import table


def iteration_flops_per_image(preset: str, batch: int = 16):
    from raygan.tasks import load_config
    from raygan.engine.loop import Trainer

    cfg = load_config(preset, None, ["data.name=digits", f"optim.batch_size={batch}", "tracking.enabled=false",
                                     "train.device=cpu", "data.channels=" + ("3" if "cifar" in preset else "1"),
                                     "augment.diffaugment=none", "ema.half_life_kimg=0"])
    t = Trainer(cfg, None, evaluator=None)
    t.task.train_step(0)  # warm-up (lazy init)
    with FlopCounterMode(display=False) as fc:
        t.task.train_step(0)
    flops = fc.get_total_flops() / batch
    g = sum(p.numel() for p in t.task.G_plain.parameters())
    d = sum(p.numel() for p in t.task.D_plain.parameters())
    grad_bytes = 4 * (g + cfg.optim.n_critic * d)
    return flops, grad_bytes, g, d, cfg.optim.n_critic, cfg.optim.batch_size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cifar10-sngan")
    ap.add_argument("--tflops", type=float, default=60.0, help="sustained TFLOP/s per GPU on these models")
    ap.add_argument("--nvlink-gbs", type=float, default=150.0, help="all-reduce bus bandwidth in a node, GB/s")
    ap.add_argument("--net-gbs", type=float, default=12.5, help="all-reduce bus bandwidth across nodes, GB/s")
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--per-gpu-batch", type=int, default=64)
    ap.add_argument("--global-batch", type=int, default=256)
    args = ap.parse_args()
    flops, grad_bytes, g, d, n_critic, _ = iteration_flops_per_image(args.preset)
    print(f"preset {args.preset}: G {g:,} params, D {d:,} params, n_critic {n_critic}")
    print(f"measured: {flops / 1e9:.3f} GFLOP per image per iteration; {grad_bytes / 2**20:.2f} MiB of gradients "
          f"all-reduced per iteration")
    print(f"assumed: {args.tflops:.0f} TFLOP/s sustained per GPU, all-reduce bus {args.nvlink_gbs:.0f} GB/s in a "
          f"node, {args.net_gbs:.1f} GB/s across nodes, {args.gpus_per_node} GPUs per node\n")
    rows = []
    for mode, batch_of in (("weak (per-GPU batch fixed)", lambda n: args.per_gpu_batch),
                           ("strong (global batch fixed)", lambda n: max(1, args.global_batch // n))):
        for n in (1, 8, 16, 32, 64):
            b = batch_of(n)
            t_comp = flops * b / (args.tflops * 1e12)
            bw = args.nvlink_gbs if n <= args.gpus_per_node else args.net_gbs
            t_comm = 0.0 if n == 1 else grad_bytes * 2 * (n - 1) / n / (bw * 1e9)
            eff = t_comp / (t_comp + t_comm)
            rows.append([mode, n, b, f"{t_comp * 1e3:.2f}", f"{t_comm * 1e3:.2f}", f"{eff:.2f}",
                         f"{n * b / (t_comp + t_comm):,.0f}"])
    print(table(["scaling", "GPUs", "batch/GPU", "compute ms", "all-reduce ms", "efficiency", "img/s"], rows))


if __name__ == "__main__":
    main()
