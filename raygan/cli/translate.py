"""`raygan translate`: map image files from one domain to the other with a trained translation model."""
from __future__ import annotations

import argparse

from raygan.cli.common import add_model_source, add_tiling, finish_files

EXAMPLES = """\
examples:
  raygan translate --run-dir runs/fmnist-sneaker2boot-... --direction a2b --in sneaker.png --out boot.png
  raygan translate --model-uri models:/raygan-fmnist-sneaker2boot/1 --direction b2a --in photos/ --out styled/
"""


def add(sub) -> None:
    p = sub.add_parser("translate", help="translate images A->B or B->A with a trained CycleGAN-style model",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_source(p, "a translate run: its latest checkpoint",
                     "a registered translation model, e.g. models:/NAME@champion")
    p.add_argument("--direction", required=True, metavar="{a2b,b2a}",
                   help="a2b (domain A to B) or b2a (B to A); any case, e.g. A2B")
    p.add_argument("--in", dest="src", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="the output file or folder (a folder's outputs mirror --in: same "
                                                 "relative names and formats)")
    p.add_argument("--force", action="store_true", help="replace existing outputs (never an input)")
    add_tiling(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from raygan.data.imagefiles import check_paths
    from raygan.tasks.translate.infer import check_direction, translate_path

    direction = check_direction(args.direction)  # before loading anything
    check_paths(args.src, args.out, args.force)  # the files, before loading anything
    from raygan import api

    module, _, _ = api.load(args.run_dir, args.model_uri, tracking_uri=args.tracking_uri, expect_task="translate")
    written = translate_path(module, args.src, args.out, direction, overwrite=args.force, tile=args.tile,
                             tile_overlap=args.tile_overlap, max_pixels=args.max_pixels)
    return finish_files(written, f"translated ({direction})", args.out)
