"""`raygan augment`: does GAN-made data help a classifier trained on K real images per class?"""
from __future__ import annotations

import argparse

from raygan.errors import ConfigError

EXAMPLES = """\
examples:
  raygan augment --dry-run                             # the plan and its expected time here, nothing trained
  raygan augment --real-per-class 10 --seeds 1 --gan-kimg 4 --clf-steps 200     # a quick look (minutes on a CPU)
  raygan augment --real-per-class 10,50,100 --synthetic-per-class 1000 --seeds 3  # the full protocol (hours on a CPU)
  raygan augment --run-dir runs/fmnist-cgan-100pc-... --real-per-class 100 --classic flip,translate,rotate,scale

Before training it checks every output path, measures a few steps and prints the plan with its
expected time; while training, a line per GAN and classifier (steps, accuracy, ETA); each
classifier's accuracy goes to the MLflow parent run as it ends.
"""

DESCRIPTION = """\
For each K real images per class and each seed: a conditional GAN trained on exactly those
images (or --run-dir's), then one classifier per condition, scored on the real test split:
  real              the K-per-class subset alone
  real+classic      the same with classic augmentation (--classic)
  real+gan          the subset + --synthetic-per-class GAN-made images per class
  real+gan+classic  both
The defaults are the full protocol: hours on a CPU. --dry-run prints the plan and its time here.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples kept as written; '(default: X)' after every option that has a value by default."""

    def _get_help_string(self, action):
        if action.default in (None, False, []) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _ints(text: str):
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"expected a comma list of integers, got {text!r}") from None


# The parser is built for every `raygan` command, so it names these defaults without importing the
# torch modules that define them (tests/cli/test_cli_manners.py checks they are the same values).
CONDITIONS = ("real", "real+classic", "real+gan", "real+gan+classic")  # raygan.experiments.augment.CONDITIONS
RECIPE_STEPS, RECIPE_BATCH_SIZE = 1000, 128  # raygan.metrics.classify.RECIPE.steps, .batch_size


def add(sub) -> None:
    p = sub.add_parser("augment", help="classifier accuracy: real only / +classic / +GAN / +GAN+classic per K",
                       description=DESCRIPTION, epilog=EXAMPLES, formatter_class=_Formatter)
    p.add_argument("--run-dir", default=None,
                   help="use this conditional GAN run for every cell (default: train one per K and seed on "
                        "exactly that K-per-class subset)")
    p.add_argument("--preset", default="fmnist-cgan-100pc", help="the GAN each cell trains (without --run-dir)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the cells' GAN config (repeatable)")
    p.add_argument("--init-from", default=None, metavar="SOURCE",
                   help="each cell's GAN starts from this run (e.g. an unconditional G pretrained on the unlabelled "
                        "training set; its class inputs start at zero) and uses its config (+ --set); a run dir, a "
                        "checkpoint dir or models:/NAME/VERSION")
    p.add_argument("--gan-kimg", type=float, default=None,
                   help="kimg each cell's GAN trains (default: the preset's, 40 for fmnist-cgan-100pc)")
    p.add_argument("--real-per-class", default="10,50,100", help="K values (comma list)")
    p.add_argument("--synthetic-per-class", type=int, default=1000, help="GAN images per class added")
    p.add_argument("--real-fraction", type=float, default=None,
                   help="share of real images in the +gan training sets, by repeating the real subset "
                        "(default: real and generated simply concatenated)")
    p.add_argument("--classic", default="flip,translate,rotate,scale",
                   help="classic augmentations (torchvision v2): flip, translate, rotate, scale")
    p.add_argument("--conditions", default=",".join(CONDITIONS), help="which columns to run (comma list)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (mean ± std; 1 seed: no spread)")
    p.add_argument("--clf-steps", type=int, default=RECIPE_STEPS,
                   help=f"optimisation steps of each classifier; the recipe's protocol is {RECIPE_STEPS}, "
                        "fewer give a quicker, rougher answer")
    p.add_argument("--clf-batch-size", type=int, default=RECIPE_BATCH_SIZE, help="each classifier's batch")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--work-dir", default=None, help="keep each cell's GAN run here (default: a temp dir); "
                                                      "a cell whose run is there resumes it")
    p.add_argument("--table", default=None, help="where the result table (text) goes (default "
                                                  "<work-dir>/augment.txt); written before the plot")
    p.add_argument("--plot", default=None, help="where the PNG goes (default <work-dir>/augment.png); written last")
    p.add_argument("--dry-run", action="store_true",
                   help="check the outputs, print the plan and its expected time (a few seconds of measuring), "
                        "train nothing")
    p.add_argument("--tracking-uri", default=None, help="the MLflow store (default $MLFLOW_TRACKING_URI or "
                                                          "sqlite:///./mlflow.db)")
    p.add_argument("--experiment", default="raygan-augment", help="MLflow experiment (one parent run per call)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=run)


def run(args) -> int:
    import dataclasses

    from raygan.experiments.augment_outputs import prepare_outputs
    from raygan.experiments.augment_run import run_augment
    from raygan.metrics.classify import RECIPE
    from raygan.tracking.store import check_experiment_name, resolve_tracking_uri

    uri = None
    if not args.no_tracking and not args.dry_run:  # checked before hours of work, not after
        uri = resolve_tracking_uri(args.tracking_uri)
        check_experiment_name(args.experiment)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    ks = _ints(args.real_per_class)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    recipe = dataclasses.replace(RECIPE, steps=args.clf_steps, batch_size=args.clf_batch_size)
    outputs = prepare_outputs(args.work_dir, args.plot, args.table)  # every output path, before any training
    tracker = None
    if uri is not None:
        from raygan.tracking.augment import AugmentTracker

        tracker = AugmentTracker(uri, args.experiment, params={
            "per_class": ",".join(map(str, ks)), "seeds": ",".join(map(str, range(args.seeds))),
            "synthetic_per_class": args.synthetic_per_class,
            "clf_steps": args.clf_steps, "clf_batch_size": args.clf_batch_size})
    try:
        outcome = run_augment(args.run_dir, ks, args.synthetic_per_class, args.classic, args.seeds,
                              base=args.preset, overrides=args.overrides, gan_kimg=args.gan_kimg,
                              conditions=conditions, recipe=recipe, outputs=outputs, make_plot=False,
                              real_fraction=args.real_fraction, dry_run=args.dry_run,
                              log=lambda line: print(line, flush=True),  # seen at once, also through a pipe
                              on_result=tracker.result if tracker is not None else None, init_from=args.init_from)
    except BaseException:
        if tracker is not None:
            tracker.fail()
        raise
    if outcome is None:  # --dry-run
        return 0
    print(outcome.table)
    print(f"table:       {outcome.table_path}")
    pid = tracker.finish(outcome) if tracker is not None else None
    if pid:
        print(f"mlflow run:  {pid}")
    from raygan.experiments.augment import plot

    try:  # last: if it fails, the table and the MLflow run are already complete
        png = plot(outcome.result, str(outputs.plot))
    except (OSError, ValueError) as e:
        kept = f"the table is in {outcome.table_path}" + (f" and MLflow run {pid}" if pid else "")
        raise ConfigError(f"--plot {outputs.plot}: could not write it ({e}); {kept}") from None
    print(f"plot:        {png}")
    if tracker is not None:
        tracker.plot(png)
    return 0
