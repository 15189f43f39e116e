"""`raygan translate`: map image files from one domain to the other with a trained translation model."""
from __future__ import annotations

import argparse

from raygan.cli.common import add_model_source

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
    p.add_argument("--direction", required=True, help="a2b or b2a")
    p.add_argument("--in", dest="src", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="the output file or folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from raygan import api
    from raygan.tasks.translate_infer import check_direction, translate_path

    check_direction(args.direction)  # before loading anything
    module, _, _ = api.load(args.run_dir, args.model_uri, tracking_uri=args.tracking_uri, expect_task="translate")
    written = translate_path(module, args.src, args.out, args.direction)
    print(f"translated {len(written)} image(s) {args.direction} into {args.out}")
    return 0
