"""Unpaired translation (issue 11): CycleGAN on the built-in Fashion-MNIST pair, sneaker <-> ankle boot.

Trains the shipped preset `fmnist-sneaker2boot` on one thread (`train.threads=1`, tracking off), then
evaluates the final checkpoint through the API (`raygan.api.evaluate`, the same door as `raygan eval`)
with fid, domain-acc and cycle-psnr on the test split (1000 images per domain), and prints translated
vs the untranslated input ("doing nothing", scored the same way) for both directions, the cycle
reconstruction PSNR/SSIM, kimg and wall time. Goals: domain-acc >= 90% and FID at least 5x lower
than the baseline's, both directions.

Writes the final picture (rows: test A | G_AB(A) | G_BA(G_AB(A)), then test B | G_BA(B) | G_AB(G_BA(B)))
to `--out` (the run stays there too, under `run/`, for `raygan translate --run-dir`) and copies it to
docs/translate.png.

    python bench/translate.py [--kimg 16] [--set key=value ...] [--out bench/out/translate]

About 5-10 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from common import machine, table

ROOT = Path(__file__).resolve().parents[1]
PRESET = "fmnist-sneaker2boot"
METRICS = ["fid", "domain-acc", "cycle-psnr"]
GOAL_ACC, GOAL_FID_RATIO = 0.90, 5.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kimg", type=float, default=None, help="train.total_kimg (default: the preset's)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra config overrides")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "translate"))
    ap.add_argument("--no-docs", action="store_true", help="do not copy the picture to docs/translate.png")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import raygan.api as rg

    out = Path(args.out)
    run_dir = out / "run"
    if run_dir.exists():  # this bench's own previous run
        shutil.rmtree(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    over = ["train.threads=1", "tracking.enabled=false"]
    if args.kimg is not None:
        over.append(f"train.total_kimg={args.kimg}")
    cfg = rg.config(PRESET, overrides=over + list(args.overrides))

    t0 = time.time()
    summary = rg.train(cfg, run_dir=run_dir, progress=False)
    wall_train = time.time() - t0
    t1 = time.time()
    values, protocol = rg.evaluate(run_dir, metrics=METRICS)
    wall_eval = time.time() - t1

    v = values
    a, b = (protocol[k].split(":", 1)[-1] for k in ("domain_a", "domain_b"))  # "fashion-mnist:Sneaker"
    rows, met = [], []
    for d, what in (("a2b", f"{a} -> {b}"), ("b2a", f"{b} -> {a}")):
        fid, base = v[f"fid_{d}"], v[f"baseline_fid_{d}"]
        acc, base_acc = v[f"domain_acc_{d}"], v[f"baseline_domain_acc_{d}"]
        ratio = base / fid if fid > 0 else float("inf")
        met.append(acc >= GOAL_ACC and ratio >= GOAL_FID_RATIO)
        rows.append([f"{d} ({what})", f"{fid:.2f}", f"{base:.2f}", f"{ratio:.1f}x",
                     f"{100 * acc:.1f}%", f"{100 * base_acc:.1f}%"])
    cyc = [[f"A ({a}) -> B -> A", f"{v['cycle_psnr_a']:.2f}", f"{v['cycle_ssim_a']:.3f}"],
           [f"B ({b}) -> A -> B", f"{v['cycle_psnr_b']:.2f}", f"{v['cycle_ssim_b']:.3f}"]]

    # the final picture: the trainer's last grid (written at the final tick from the final weights)
    grids = sorted((run_dir / "samples").glob("grid-*.png"))
    picture = out / "translate.png"
    from PIL import Image

    with Image.open(grids[-1]) as im:  # grey images: one channel, shown 2x (nearest), optimised: ~tens of kB
        im = im.convert("L")
        im.resize((im.width * 2, im.height * 2), Image.NEAREST).save(picture, optimize=True)
    if not args.no_docs:
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(picture, ROOT / "docs" / "translate.png")

    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in history if "fid_a2b" in r]

    print(f"machine: {machine()}")
    print(f"command: python bench/translate.py{' --kimg %g' % args.kimg if args.kimg is not None else ''}"
          f"{''.join(' --set ' + o for o in args.overrides)}   (preset {PRESET}, train.threads=1, tracking off)")
    print(f"test images: {protocol['num_samples_a']} {a} (A), {protocol['num_samples_b']} {b} (B); "
          f"extractor {protocol.get('extractor')}; outputs {protocol['output']}")
    print()
    print(table(["direction", "FID translated", "FID untranslated", "ratio baseline/translated",
                 "domain-acc translated", "domain-acc untranslated"], rows))
    print()
    print(table(["cycle", "PSNR (dB)", "SSIM"], cyc))
    print()
    print(table(["what", "value"], [["kimg (A images shown)", f"{summary['kimg']:g}"],
                                    ["training wall time (s), incl. tick evals and pictures", f"{wall_train:.0f}"],
                                    ["final evaluation through the API (s)", f"{wall_eval:.0f}"]]))
    if evals:
        print()
        print(table(["kimg", "FID a2b", "FID b2a", "domain-acc a2b", "domain-acc b2a", "cycle PSNR", "img/s"],
                    [[f"{r['kimg']:g}", f"{r['fid_a2b']:.2f}", f"{r['fid_b2a']:.2f}",
                      f"{100 * r['domain_acc_a2b']:.1f}%", f"{100 * r['domain_acc_b2a']:.1f}%",
                      f"{r['cycle_psnr']:.2f}", f"{r['img_per_s']:.0f}"] for r in evals]))
    print()
    goals = ", ".join(f"{d}: {'met' if m else 'NOT met'}" for d, m in zip(("a2b", "b2a"), met))
    print(f"goals (domain-acc >= {GOAL_ACC:.0%}, FID >= {GOAL_FID_RATIO:g}x lower than untranslated): {goals}")
    print(f"picture: {picture}{'' if args.no_docs else ' (copied to docs/translate.png)'}; run: {run_dir}")


if __name__ == "__main__":
    main()
