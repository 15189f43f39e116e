"""`raygan train`: a run in this process, or on Ray Train with --workers N (same config, same loop)."""
from __future__ import annotations

from raygan.cli.common import add_config_source, print_summary
from raygan.distributed.options import RayOptions
from raygan.errors import RayganError
from raygan.options import add_flags, from_args, given

EXAMPLES = """\
examples:
  raygan train --preset quickstart
  raygan train --preset resnet --set optim.d_lr=1e-4 --run-dir runs/sngan
  raygan train --run-dir runs/sngan --resume --set train.total_kimg=4000
  raygan train --preset dcgan --workers 2                  # Ray Train, 2 DDP workers
  raygan train --preset dcgan --init-from runs/pretrained --set model.freeze_d=2   # fine-tune (FreezeD)
  raygan train --preset dcgan --workers 8 --gpus-per-worker 1 --storage s3://bucket/raygan --max-failures 3
"""


def add(sub) -> None:
    import argparse

    p = sub.add_parser("train", help="train a model (locally, or on Ray Train with --workers)",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_source(p)
    p.add_argument("--run-dir", help="where the run lives (default runs/<preset>-<time>; with --workers: "
                                     "<storage>/<name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir (a Ray run resumes on Ray with its own workers)")
    p.add_argument("--init-from", metavar="SOURCE",
                   help="start the networks (G, G_ema, D) from another run: a run dir, a checkpoint dir or "
                        "models:/NAME/VERSION; fresh optimisers and counters (train.init_from)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    add_flags(p.add_argument_group("Ray Train (with --workers)"), RayOptions)
    p.set_defaults(func=run)


def run(args) -> int:
    from raygan import api

    ray_given = given(RayOptions, args)
    if ray_given and "workers" not in ray_given:
        raise RayganError(f"--{next(iter(ray_given)).replace('_', '-')} is for training on Ray: add --workers N")
    ray = from_args(RayOptions, args) if ray_given else None
    if args.resume:
        if not args.run_dir and not (ray and ray.name):
            raise RayganError("--resume needs --run-dir DIR (the run to continue)")
        if args.preset or args.config:
            raise RayganError("--resume continues with the run's own config.yaml; change values with --set")
        if args.init_from:
            raise RayganError("--init-from starts a new run; --resume continues one from its own checkpoint")
        if args.dry_run:
            from raygan.hosts.runstore import RunStore

            print(RunStore(args.run_dir).read_config(args.overrides).to_yaml(), end="")
            return 0
        run_dir = args.run_dir
        if run_dir is None:  # --storage/--name of a Ray run
            from raygan.hosts import storage

            run_dir, ray = storage.join(storage.resolve(ray.storage), ray.name), ray.model_copy(
                update={"storage": None, "name": None})
        summary = api.train(None, run_dir=run_dir, resume=True, overrides=args.overrides, ray=ray,
                            progress=not args.no_progress)
    else:
        if args.dry_run:  # checked as a run would be, without torch where raygan.precheck can vouch
            from raygan.precheck import load_config

            cfg = load_config(args.preset, args.config, args.overrides)
            if args.init_from:
                cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": args.init_from})})
            print(cfg.to_yaml(), end="")
            return 0
        cfg = api.config(args.preset, args.config, args.overrides)
        summary = api.train(cfg, run_dir=args.run_dir, ray=ray, progress=not args.no_progress,
                            init_from=args.init_from)
    if summary.get("complete"):
        return 0
    print_summary(summary)
    if summary.get("workers"):
        print(f"resume with: raygan train --run-dir {summary['run_dir']} --resume")
    return 0
