"""`raygan tune` (a hyperparameter sweep on Ray Tune) and `raygan runs` (the MLflow store).

Imported by raygan.cli, which it extends through `_EXTENSIONS` (no Ray import until used).
"""
from __future__ import annotations

import argparse
import sys

from raygan.errors import RayganError

TUNE_HELP = """\
examples:
  raygan tune --preset quickstart --samples 16 --budget-kimg 40
  raygan tune --preset digits --search-space my_space.yaml --scheduler fifo --samples 4 --set eval.num_samples=1000
  raygan tune --preset dcgan --workers-per-trial 2 --gpus-per-worker 1 --storage s3://bucket/sweeps --address auto
  raygan tune --resume tune-quickstart-20261121-101500      # after Ctrl-C or a crash

Trials are judged by a cheap proxy (the config's extractor, eval.num_samples generated images,
every tick); afterwards the top --top-k trials are re-evaluated from their checkpoints with
--reeval-samples images and --reeval-seeds evaluation seeds, and the winner's generator is
registered with the alias `champion`:  raygan sample --model-uri models:/raygan-generator@champion --out grid.png
The sweep's MLflow experiment is its --name: raygan runs best --experiment NAME
"""


def add_tune(sub) -> None:
    p = sub.add_parser("tune", help="search hyperparameters with Ray Tune + Optuna (TPE) + ASHA, minimising FID",
                       description="Search hyperparameters (Ray Tune, Optuna TPE, ASHA on FID); every trial "
                                   "is an MLflow child run of the sweep's parent run.",
                       epilog=TUNE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="the base config: a shipped preset (see `raygan presets`)")
    src.add_argument("--config", help="the base config: a YAML file of config deltas")
    src.add_argument("--resume", metavar="EXPERIMENT", help="continue an interrupted sweep (by its --name)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one base config value (repeatable)")
    p.add_argument("--search-space", metavar="FILE", help="a search-space YAML (default: the shipped 'default')")
    p.add_argument("--samples", type=int, default=8, metavar="N", help="trials to sample (default 8)")
    p.add_argument("--max-concurrent", type=int, default=None, metavar="M",
                   help="trials at once (default: as many as the cluster holds)")
    p.add_argument("--workers-per-trial", type=int, default=1, metavar="W",
                   help="1: each trial trains in its own process; W>1: a Ray Train DDP run per trial")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G")
    p.add_argument("--budget-kimg", type=float, default=None, metavar="K",
                   help="kimg per trial = ASHA's max_t (default: the config's train.total_kimg)")
    p.add_argument("--total-kimg", type=float, default=None, metavar="T",
                   help="stop the sweep once all trials together trained T kimg")
    p.add_argument("--scheduler", choices=["asha", "fifo"], default="asha")
    p.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument("--grace-kimg", type=float, default=None, metavar="K",
                   help="ASHA's first rung in kimg (default: budget / reduction-factor^2)")
    p.add_argument("--reduction-factor", type=float, default=3.0)
    p.add_argument("--tick-kimg", type=float, default=None,
                   help="evaluate the proxy every this many kimg (default: min(train.tick_kimg, grace))")
    p.add_argument("--top-k", type=int, default=3, help="trials re-evaluated at the end (default 3)")
    p.add_argument("--reeval-samples", type=int, default=None,
                   help="samples per re-evaluation (default: eval.final_num_samples)")
    p.add_argument("--reeval-seeds", type=int, default=3, help="evaluation seeds per re-evaluated trial")
    p.add_argument("--register-model", default=None, metavar="NAME",
                   help="registered model for the winner (default: tracking.register_model)")
    p.add_argument("--storage", metavar="PATH|URI",
                   help="where trials' checkpoints live: a local/NFS path or s3://... (default $RAYGAN_STORAGE or ./runs)")
    p.add_argument("--name", help="the sweep's name under --storage and its MLflow experiment "
                                  "(default tune-<preset>-<time>)")
    p.add_argument("--address", help="a running cluster: HOST:6379, ray://HOST:10001, auto, or local "
                                     "(default: $RAY_ADDRESS, else a local one)")
    p.add_argument("--max-failures", type=int, default=0, metavar="K",
                   help="retry a failed trial from its last checkpoint up to K times")
    p.add_argument("--dry-run", action="store_true", help="validate, print the plan and exit (no Ray)")
    p.add_argument("--no-progress", action="store_true", help="no line per finished trial")
    p.set_defaults(func=cmd_tune)


_NEW_SWEEP_ONLY = ("overrides", "search_space", "budget_kimg", "total_kimg", "grace_kimg", "tick_kimg",
                   "max_concurrent", "register_model", "name")


def cmd_tune(args) -> int:
    from raygan.distributed import tune

    if args.resume:
        given = [f for f in _NEW_SWEEP_ONLY if getattr(args, f) not in (None, [], False)]
        if given:
            raise RayganError(f"--resume continues the sweep as it was started; --{given[0].replace('_', '-')} "
                              f"cannot change it (only --storage and --address apply)")
        summary = tune.resume_sweep(args.resume, storage=args.storage, address=args.address,
                                    progress=not args.no_progress)
        return print_sweep(summary, args)
    if not args.preset and not args.config:
        raise RayganError("tune needs a base config: --preset NAME or --config FILE (or --resume NAME)")
    from raygan.config import load_config

    cfg = load_config(args.preset, args.config, args.overrides)
    opts = tune.SweepOptions(
        samples=args.samples, max_concurrent=args.max_concurrent, workers_per_trial=args.workers_per_trial,
        cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker, budget_kimg=args.budget_kimg,
        total_kimg=args.total_kimg, scheduler=args.scheduler, sampler=args.sampler, seed=args.seed,
        grace_kimg=args.grace_kimg, reduction_factor=args.reduction_factor, tick_kimg=args.tick_kimg,
        top_k=args.top_k, reeval_samples=args.reeval_samples, reeval_seeds=args.reeval_seeds,
        register_model=args.register_model, storage=args.storage, name=args.name, address=args.address,
        max_failures=args.max_failures, progress=not args.no_progress)
    if args.dry_run:
        return print_plan(cfg, opts, args.search_space)
    summary = tune.run_sweep(cfg, opts, args.search_space)
    return print_sweep(summary, args)


def print_plan(cfg, opts, search_space) -> int:
    from raygan.distributed import tune
    from raygan.distributed.search_space import load_space

    tune.validate_options(cfg, opts)
    base = tune.trial_base(cfg, opts)
    space = load_space(search_space, base)
    tune._check_batch_split(space, base, opts.workers_per_trial)
    print(f"search space: {space.source}")
    for k, v in space.describe().items():
        print(f"  {k:40s} {v}")
    print(f"sampler:      {tune.describe_sampler(opts)}")
    print(f"scheduler:    {tune.describe_scheduler(cfg, opts)}")
    print(f"trials:       {opts.samples} x up to {tune.budget_kimg(cfg, opts):g} kimg, "
          f"{opts.workers_per_trial} worker(s) each")
    print(f"proxy:        {cfg.eval.extractor} fid on {cfg.eval.num_samples} samples every "
          f"{base['train']['tick_kimg']:g} kimg")
    print(f"re-evaluate:  top {opts.top_k} with {opts.reeval_samples or cfg.eval.final_num_samples} samples x "
          f"{opts.reeval_seeds} seeds")
    return 0


def print_sweep(summary, args) -> int:
    from raygan.tracking.runs import format_table
    from raygan.tracking.store import ui_command

    trials = summary["trials"]
    storage_flag = f" --storage {summary['storage']}"
    if summary.get("interrupted"):
        done = sum(t.status in ("finished", "stopped", "errored") for t in trials)
        print(f"sweep {summary['name']} interrupted: {done} trial(s) done; resume with: "
              f"raygan tune --resume {summary['name']}{storage_flag}", file=sys.stderr)
        return 130
    counts = summary.get("counts") or {}
    print(f"sweep:       {summary['name']}  ({len(trials)} trials: {counts.get('finished', 0)} finished, "
          f"{counts.get('stopped', 0)} stopped early, {counts.get('errored', 0)} errored; "
          f"{summary.get('kimg_spent', 0):.1f} kimg trained)")
    errored = [t for t in trials if t.status == "errored"]
    for t in errored:
        print(f"errored:     {t.trial_id}  {t.error}")
    top = summary.get("top") or []
    if top:
        keys = list(dict.fromkeys(k for r in top for k in r["sampled"]))
        headers = ["trial", "proxy fid", "kimg", "fid mean", "± std"] + keys
        rows = [[r["trial_id"], r["proxy_fid"], r["kimg"], r["mean"], r["std"]]
                + [r["sampled"].get(k, "-") for k in keys] for r in top]
        w = summary["winner"]
        p = w["protocol"]
        print(f"re-evaluated the top {len(top)} ({p.get('extractor')} fid, {p.get('num_samples')} generated vs "
              f"{p.get('reference_count')} {p.get('reference')}, seeds {', '.join(map(str, p.get('seeds', [])))}):")
        print(format_table(headers, rows, [False, True, True, True, True]))
        print(f"winner:      {w['trial_id']}  FID {w['mean']:.2f} ± {w['std']:.2f}  (mlflow run {w['run_id']})")
        champ = summary.get("champion") or {}
        if champ.get("champion_uri"):
            print(f"champion:    {champ['champion_uri']}  (= {champ['registered']})")
            print(f"sample:      raygan sample --model-uri {champ['champion_uri']} --out grid.png")
        elif champ.get("model_uri"):
            print(f"model:       {champ['model_uri']}")
    else:
        print("no trial produced a FID", file=sys.stderr)
    if summary.get("tracking_uri"):
        print(f"mlflow:      experiment {summary['experiment']}, parent run {summary['parent_run_id']}")
        print(f"browse:      {ui_command(summary['tracking_uri'])}")
    return 0 if top else 1


# ---------------------------------------------------------------------------- runs
RUNS_HELP = """\
examples:
  raygan runs list --experiment tune-quickstart-20261121-101500 --sort fid
  raygan runs show 6f1c0d...
  raygan runs compare 6f1c0d... 9a2b3e...
  raygan runs best --experiment tune-quickstart-20261121-101500
"""


def add_runs(sub) -> None:
    p = sub.add_parser("runs", help="list, show, compare and pick the best MLflow runs",
                       epilog=RUNS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="runs_cmd", required=True)

    def common(q):
        q.add_argument("--tracking-uri", default=None,
                       help="the MLflow store (default $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)")

    q = s.add_parser("list", help="runs as a table")
    q.add_argument("--experiment", default=None, help="only this experiment (default: all)")
    q.add_argument("--sort", default="start", help="start (newest first), name, fid, or any metric (ascending)")
    q.add_argument("--limit", type=int, default=20)
    common(q)
    q.set_defaults(func=cmd_runs_list)
    q = s.add_parser("show", help="one run: params, final metrics with protocol, artifact paths")
    q.add_argument("run_id")
    common(q)
    q.set_defaults(func=cmd_runs_show)
    q = s.add_parser("compare", help="the params that differ and the metrics of several runs")
    q.add_argument("run_ids", nargs="+")
    common(q)
    q.set_defaults(func=cmd_runs_compare)
    q = s.add_parser("best", help="the run with the lowest FID in an experiment, and its model URI")
    q.add_argument("--experiment", required=True)
    common(q)
    q.set_defaults(func=cmd_runs_best)


def cmd_runs_list(args) -> int:
    from raygan.tracking import runs

    print(runs.list_runs(args.tracking_uri, args.experiment, args.sort, args.limit))
    return 0


def cmd_runs_show(args) -> int:
    from raygan.tracking import runs

    print(runs.show_run(args.tracking_uri, args.run_id))
    return 0


def cmd_runs_compare(args) -> int:
    from raygan.tracking import runs

    print(runs.compare_runs(args.tracking_uri, args.run_ids))
    return 0


def cmd_runs_best(args) -> int:
    from raygan.tracking import runs

    print(runs.best_run(args.tracking_uri, args.experiment))
    return 0


def _register() -> None:
    from raygan.cli import _EXTENSIONS

    for fn in (add_tune, add_runs):
        if fn not in _EXTENSIONS:
            _EXTENSIONS.append(fn)


_register()
