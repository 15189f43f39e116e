"""`raygan repair`: restore image files with a trained repair model (a run or a registered model)."""
from __future__ import annotations

import argparse

from raygan.cli.common import add_model_source, add_tiling, finish_files

EXAMPLES = """\
examples:
  raygan repair --run-dir runs/fmnist-denoise-... --in noisy.png --out restored.png
  raygan repair --run-dir runs/fmnist-inpaint-... --in damaged/ --mask masks/ --out restored/
  raygan repair --model-uri models:/raygan-fmnist-denoise/1 --in x.png --out y.png   # @champion after raygan tune
"""


def add(sub) -> None:
    p = sub.add_parser("repair", help="repair images (denoise, inpaint, super-resolve) with a trained model",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_source(p, "a repair run: its latest checkpoint",
                     "a registered repair model, e.g. models:/NAME@champion")
    p.add_argument("--in", dest="src", required=True, help="an image file or a folder of images")
    p.add_argument("--mask", default=None, help="inpainting: a mask image (white = missing) or a folder of them")
    p.add_argument("--out", required=True, help="the output file or folder (a folder's outputs mirror --in: same "
                                                 "relative names and formats)")
    p.add_argument("--force", action="store_true", help="replace existing outputs (never an input)")
    add_tiling(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from raygan.data.imagefiles import check_paths
    from raygan.tasks.repair.infer import fill_value, repair_path

    check_paths(args.src, args.out, args.force)  # the files, before loading anything
    from raygan import api

    module, cfg, _ = api.load(args.run_dir, args.model_uri, tracking_uri=args.tracking_uri, expect_task="repair")
    written = repair_path(module, args.src, args.out, mask=args.mask, fill=fill_value(cfg), overwrite=args.force,
                          tile=args.tile, tile_overlap=args.tile_overlap, max_pixels=args.max_pixels)
    return finish_files(written, "repaired", args.out)
