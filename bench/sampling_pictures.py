"""The README's pictures of using a trained generator: a truncation grid (rows: latents, columns:
psi), an interpolation grid and the truncation sweep's fidelity-diversity curve, all from one
small class-conditional DCGAN on Fashion-MNIST (trained here unless --run-dir names one), through
raygan.api exactly as `raygan sample` / `raygan eval --trunc-sweep` make them.

    python bench/sampling_pictures.py                       # trains ~30 kimg (a few CPU minutes)
    python bench/sampling_pictures.py --run-dir runs/cdcgan --out docs

The style-mixing picture needs a stylegan2 run:
    raygan sample --run-dir R --mix --num 5 --out docs/mixing.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PSIS = (0.0, 0.25, 0.5, 0.75, 1.0)
MODEL = ["data.name=fashion-mnist", "data.resolution=32", "model.arch=dcgan", "model.z_dim=64",
         "model.conditional=true", "model.g={ngf: 32}", "model.d={ndf: 32}", "loss.name=ns", "optim.batch_size=64",
         "optim.g_lr=0.0005", "optim.d_lr=0.0005", "optim.g_betas=[0.5, 0.999]", "optim.d_betas=[0.5, 0.999]",
         "ema.half_life_kimg=2.0", "ema.rampup=0.05", "train.tick_kimg=10", "train.eval_ticks=0",
         "train.sample_ticks=100", "eval.metrics=[]", "tracking.enabled=false"]


def save(images, nrow: int, path: Path) -> None:
    from torchvision.utils import save_image

    save_image(images.float() / 255.0, str(path), nrow=nrow, padding=2, pad_value=1.0)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default=None, help="a trained generate run (default: train one into --work)")
    ap.add_argument("--work", default="runs/sampling-pictures", help="where the model is trained")
    ap.add_argument("--kimg", type=float, default=30.0, help="training length when training")
    ap.add_argument("--out", default=str(ROOT / "docs"), help="folder of the pictures")
    ap.add_argument("--sweep-samples", type=int, default=2000, help="images per psi in the sweep")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()

    import torch

    import raygan.api as rg

    run_dir = args.run_dir
    if run_dir is None:
        run_dir = args.work
        if not (Path(run_dir) / "run.json").is_file():
            rg.train(rg.config(overrides=MODEL + [f"train.total_kimg={args.kimg:g}"]), run_dir=run_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # rows: 5 latents of classes 0..4 (the same z and class along a row); columns: psi 0 .. 1
    cols = [rg.sample(run_dir, num=5, seed=args.seed, trunc=psi)[0] for psi in PSIS]
    grid = torch.stack(cols, dim=1).reshape(-1, *cols[0].shape[1:])
    save(grid, len(PSIS), out / "truncation.png")
    # 5 rows (classes 0..4) of 8-step slerps between two latents, at psi 1
    images, _ = rg.sample(run_dir, num=5, seed=args.seed, interp=8)
    save(images, 8, out / "interpolation.png")
    plot = out / "truncation-sweep.png"
    if plot.exists():
        plot.unlink()  # this script's own output, remade
    result = rg.trunc_sweep([0.0, 0.25, 0.5, 0.7, 0.85, 1.0], run_dir, num_samples=args.sweep_samples, plot=plot,
                            log=False)
    for r in result["rows"]:
        print("  ".join(f"{k} {v:.4f}" for k, v in r.items()))
    print(f"wrote {plot} ({plot.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
