"""`raygan augment`: does GAN-made data help a classifier trained on K real images per class?"""
from __future__ import annotations

from raygan.cli.common import HelpFormatter
from raygan.errors import ConfigError

EXAMPLES = """\
examples:
  raygan augment --real-per-class 10,50,100 --synthetic-per-class 1000 --seeds 3
  raygan augment --run-dir runs/fmnist-cgan-100pc-... --real-per-class 100 --classic flip,translate,rotate,scale
"""


def _ints(text: str):
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"expected a comma list of integers, got {text!r}") from None


def add(sub) -> None:
    p = sub.add_parser("augment", help="classifier accuracy: real only / +classic / +GAN / +GAN+classic per K",
                       epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("--run-dir", default=None,
                   help="use this conditional GAN run for every cell (default: train one per K and seed on "
                        "exactly that K-per-class subset)")
    p.add_argument("--preset", default="fmnist-cgan-100pc", help="the GAN each cell trains (without --run-dir)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the cells' GAN config (repeatable)")
    p.add_argument("--gan-kimg", type=float, default=None, help="kimg each cell's GAN trains (default: the preset's)")
    p.add_argument("--real-per-class", default="10,50,100", help="K values (comma list)")
    p.add_argument("--synthetic-per-class", type=int, default=1000, help="GAN images per class added")
    p.add_argument("--real-fraction", type=float, default=None,
                   help="share of real images in the +gan training sets, by repeating the real subset "
                        "(default: real and generated simply concatenated)")
    p.add_argument("--classic", default="flip,translate,rotate,scale",
                   help="classic augmentations (torchvision v2): flip, translate, rotate, scale")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (mean ± std)")
    p.add_argument("--work-dir", default=None, help="keep each cell's GAN run here (default: a temp dir); "
                                                      "a cell whose run is there resumes it")
    p.add_argument("--plot", default=None, help="where the PNG goes (default <work-dir>/augment.png)")
    p.add_argument("--tracking-uri", default=None, help="the MLflow store (default $MLFLOW_TRACKING_URI or "
                                                          "sqlite:///./mlflow.db)")
    p.add_argument("--experiment", default="raygan-augment", help="MLflow experiment (one parent run per call)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=run)


def run(args) -> int:
    from raygan.experiments.augment_run import run_augment

    from raygan.tracking.store import check_experiment_name, resolve_tracking_uri

    uri = None
    if not args.no_tracking:  # checked before hours of work, not after
        uri = resolve_tracking_uri(args.tracking_uri)
        check_experiment_name(args.experiment)
    outcome = run_augment(args.run_dir, _ints(args.real_per_class), args.synthetic_per_class, args.classic, args.seeds,
                          base=args.preset, overrides=args.overrides, gan_kimg=args.gan_kimg, work_dir=args.work_dir,
                          plot_path=args.plot, real_fraction=args.real_fraction)
    print(outcome.table)
    if outcome.plot_path:
        print(f"plot:        {outcome.plot_path}")
    if uri is not None:
        from raygan.tracking.augment import log_augment

        print(f"mlflow run:  {log_augment(outcome, uri, args.experiment)}")
    return 0
