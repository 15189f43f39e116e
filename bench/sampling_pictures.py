"""The README's pictures of using a trained generator: a truncation grid (rows: latents, columns:
psi), an interpolation grid and the truncation sweep's fidelity-diversity curve, all from the
quickstart DCGAN on Fashion-MNIST (trained here unless --run-dir names a run), through raygan.api
exactly as `raygan sample` / `raygan eval --trunc-sweep` make them.

    python bench/sampling_pictures.py                        # trains the quickstart (2-4 quiet CPU minutes)
    python bench/sampling_pictures.py --run-dir runs/quickstart-... --out docs

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


def save(images, nrow: int, path: Path) -> None:
    import torch.nn.functional as F
    from torchvision.utils import save_image

    big = F.interpolate(images.float() / 255.0, scale_factor=2, mode="nearest")  # 32 px is small on a page
    save_image(big, str(path), nrow=nrow, padding=2, pad_value=1.0)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default=None, help="a trained generate run (default: train one into --work)")
    ap.add_argument("--work", default="runs/sampling-pictures", help="where the model is trained")
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
            rg.train(rg.config("quickstart", overrides=["tracking.enabled=false"]), run_dir=run_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # rows: 6 latents (one z, and for a conditional G one class, along a row); columns: psi 0 .. 1
    cols = [rg.sample(run_dir, num=6, seed=args.seed, trunc=psi)[0] for psi in PSIS]
    grid = torch.stack(cols, dim=1).reshape(-1, *cols[0].shape[1:])
    save(grid, len(PSIS), out / "truncation.png")
    # 6 rows of 8-step slerps between two latents, at psi 1
    images, _ = rg.sample(run_dir, num=6, seed=args.seed, interp=8)
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
