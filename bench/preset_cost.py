"""What a generation preset costs on a GPU, computed without one: parameters, training FLOPs per
image shown, activation memory, and from them an estimate of GPU memory and time.

    python bench/preset_cost.py folder-dcgan-128 folder-resnet-256 [--tflops 60]

The networks are built on PyTorch's meta device (shapes only: no memory, no compute), one G
forward + D forward/backward at batch 1 runs under `torch.utils.flop_counter.FlopCounterMode`
(2 FLOPs per multiply-add) with a saved-tensors hook summing what autograd keeps for backward.

Per iteration and image: with n_critic 1 the step runs G once with grad (raygan's fused path):
G fwd+bwd + D fwd+bwd on reals, on fakes, and once more in the G step; with n_critic k, k x (G
fwd + 2 D fwd+bwd) + G fwd+bwd + D fwd+bwd. Memory: 16 B a parameter (fp32 weights, grads, Adam
m and v) + 4 B per G parameter for the EMA copy + batch x the activations of the G step (G and D
kept for backward, fp32; bf16 autocast keeps roughly half). Time: the FLOPs at `--tflops`
sustained (default 60 TFLOP/s, an assumption: about what ResNet-50 bf16 training sustains on
an H100; bench/gpu_acceptance.py measures img/s at these widths on the real card).
Evaluation (Inception FID) and data loading are not counted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cost(preset: str, tflops: float) -> Dict[str, float]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from raygan.models import build_models
    from raygan.tasks import load_config

    cfg = load_config(preset)
    m, r, c = cfg.model, cfg.data.resolution, cfg.data.channels or 3
    with torch.device("meta"):
        G, D = build_models(m.arch, resolution=r, channels=c, z_dim=m.z_dim, spectral_norm=False,
                            g=dict(m.g), d=dict(m.d))
    saved = {"G": 0, "D": 0}
    which = ["G"]

    def pack(t):
        saved[which[0]] += t.numel() * t.element_size()
        return t

    z = torch.randn(1, m.z_dim, device="meta")
    flops = {}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with FlopCounterMode(display=False) as fc:
            x = G(z)
        flops["Gf"] = fc.get_total_flops()
        which[0] = "D"
        xd = x.detach().requires_grad_()
        with FlopCounterMode(display=False) as fc:
            out = D(xd).sum()
        flops["Df"] = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        out.backward()  # D's weight and input gradients
    flops["Db"] = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        x.backward(xd.grad)
    flops["Gb"] = fc.get_total_flops()
    gfb, dfb = flops["Gf"] + flops["Gb"], flops["Df"] + flops["Db"]
    k = cfg.optim.n_critic
    per_iter = gfb + 3 * dfb if k == 1 else k * (flops["Gf"] + 2 * dfb) + gfb + dfb
    per_img = per_iter / k  # images shown to D per iteration: k x batch
    pg, pd = sum(p.numel() for p in G.parameters()), sum(p.numel() for p in D.parameters())
    b = cfg.optim.batch_size
    mem = 16 * (pg + pd) + (4 * pg if cfg.ema.half_life_kimg > 0 else 0) + b * (saved["G"] + saved["D"])
    s_per_kimg = per_img * 1000 / (tflops * 1e12)
    return {"G params (M)": pg / 1e6, "D params (M)": pd / 1e6, "GFLOP/img": per_img / 1e9,
            "act MiB/img": (saved["G"] + saved["D"]) / 2**20, "batch": b,
            "GPU mem GiB (fp32 act)": mem / 2**30, "s/kimg": s_per_kimg,
            "h total": s_per_kimg * cfg.train.total_kimg / 3600, "total_kimg": cfg.train.total_kimg}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("presets", nargs="+")
    ap.add_argument("--tflops", type=float, default=60.0, help="assumed sustained TFLOP/s (default 60)")
    args = ap.parse_args(argv)
    rows = [(p, cost(p, args.tflops)) for p in args.presets]
    keys = list(rows[0][1])
    print("| preset | " + " | ".join(keys) + " |")
    print("|" + "---|" * (len(keys) + 1))
    for p, r in rows:
        print(f"| {p} | " + " | ".join(f"{r[k]:.3g}" for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
