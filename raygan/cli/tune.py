"""`raygan tune`: a hyperparameter sweep on Ray Tune (Optuna TPE + ASHA) toward the objective."""
from __future__ import annotations

import argparse
import sys

from raygan.cli.common import add_config_source, print_protocols
from raygan.distributed.sweep.options import SweepOptions
from raygan.errors import RayganError
from raygan.options import add_flags, from_args, given

EXAMPLES = """\
examples:
  raygan tune --preset quickstart --samples 16 --budget-kimg 40            # FID, minimised
  raygan tune --preset fmnist-denoise --objective psnr                     # PSNR, maximised
  raygan tune --preset digits --search-space my_space.yaml --scheduler fifo --samples 4
  raygan tune --preset dcgan --workers-per-trial 2 --gpus-per-worker 1 --storage s3://bucket/sweeps --address auto
  raygan tune --resume tune-quickstart-20261121-101500      # after Ctrl-C or a crash

Trials are judged by a cheap proxy (eval.num_samples images, every tick); the objective's
direction comes from the metrics registry. Afterwards the top --top-k trials are re-evaluated
from their checkpoints with --reeval-samples images on --reeval-seeds new evaluation seeds, and
the winner is registered with the alias `champion`. The sweep's MLflow experiment is its --name.
"""
TABLE_WIDTH = 120


def add(sub) -> None:
    p = sub.add_parser("tune", help="search hyperparameters with Ray Tune + Optuna (TPE) + ASHA",
                       description="Search hyperparameters (Ray Tune, Optuna TPE, ASHA on the objective); every "
                                   "trial is an MLflow child run of the sweep's parent run.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_source(p)
    p.add_argument("--resume", metavar="NAME", help="continue an interrupted sweep (by its --name)")
    p.add_argument("--search-space", metavar="FILE", help="a search-space YAML or a shipped name (default: the "
                   "task's: default, lowdata when data.per_class is set, repair, translate)")
    add_flags(p, SweepOptions, exclude=("progress", "finish"))
    p.add_argument("--dry-run", action="store_true", help="validate, print the plan and exit (no Ray)")
    p.add_argument("--no-progress", action="store_true", help="no live status lines")
    p.set_defaults(func=run)


_RESUME_OK = ("storage", "address")


def run(args) -> int:
    from raygan import api

    if args.resume:
        extra = [k for k in given(SweepOptions, args) if k not in _RESUME_OK]
        extra += [k for k in ("preset", "config", "search_space") if getattr(args, k)] + (["set"] if args.overrides else [])
        if extra:
            raise RayganError(f"--resume continues the sweep as it was started; --{extra[0].replace('_', '-')} "
                              f"cannot change it (only --storage and --address apply)")
        return print_sweep(api.resume_tune(args.resume, getattr(args, "storage", None),
                                           getattr(args, "address", None), not args.no_progress))
    if not args.preset and not args.config:
        raise RayganError("tune needs a base config: --preset NAME or --config FILE (or --resume NAME)")
    if args.dry_run:  # validated as the sweep would be, without torch where raygan.precheck can vouch
        from raygan.precheck import load_config

        cfg = load_config(args.preset, args.config, args.overrides)
        return print_plan(cfg, from_args(SweepOptions, args, progress=not args.no_progress), args.search_space)
    cfg = api.config(args.preset, args.config, args.overrides)
    opts = from_args(SweepOptions, args, progress=not args.no_progress)
    return print_sweep(api.tune(cfg, opts, args.search_space))


def print_plan(cfg, opts: SweepOptions, search_space) -> int:
    from raygan.distributed.sweep import plan as plans
    from raygan.distributed.sweep.driver import prepare
    from raygan.distributed.sweep.options import budget_kimg, objective
    from raygan.metric_names import direction, kind, metric_of
    from raygan.precheck import eval_uses_seed

    base, space = prepare(cfg, opts, search_space)
    key = objective(cfg, opts)
    print(f"search space: {space.source}")
    for k, v in space.describe().items():
        print(f"  {k:40s} {v}")
    notes = getattr(space, "budget_notes", [])
    if notes:
        print(f"budget:       not sampled beyond what can act within {budget_kimg(cfg, opts):g} kimg per trial:")
        for note in notes:
            print(f"  {note}")
    print(f"objective:    {key} ({direction(key)}imise)")
    print(f"sampler:      {plans.describe_sampler(opts)}")
    print(f"scheduler:    {plans.describe_scheduler(cfg, opts)}")
    print(f"trials:       {opts.samples} x up to {budget_kimg(cfg, opts):g} kimg, {opts.workers_per_trial} worker(s) each")
    uses_extractor = kind(metric_of(key) or "fid") in ("features", "translation")
    print(f"proxy:        {cfg.eval.extractor + ' ' if uses_extractor else ''}{key} on {cfg.eval.num_samples} "
          f"samples every {base['train']['tick_kimg']:g} kimg")
    seeds = (f"{opts.reeval_seeds} new evaluation seeds" if eval_uses_seed(cfg) else
             "one evaluation (it draws nothing at random)")
    print(f"re-evaluate:  top {opts.top_k} with {opts.reeval_samples or cfg.eval.final_num_samples} samples x {seeds}")
    return 0


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1][:14]


def sweep_table(summary) -> str:
    """The re-evaluated top trials; sampled values abbreviated so the table fits 120 columns."""
    from raygan.tracking.runs import format_table

    key, top = summary["objective"], summary["top"]
    keys = list(dict.fromkeys(k for r in top for k in r["sampled"]))
    headers = ["trial", f"proxy {key}", "kimg", f"{key} mean", "± std"]
    rows = [[r["trial_id"], r["proxy"], r["kimg"], r["mean"], r["std"]] for r in top]
    for k in keys:
        col = [str(r["sampled"].get(k, "-"))[:12] for r in top]
        trial = format_table(headers + [_short(k)], [row + [c] for row, c in zip(rows, col)])
        if max(len(line) for line in trial.splitlines()) > TABLE_WIDTH:
            break
        headers.append(_short(k))
        rows = [row + [c] for row, c in zip(rows, col)]
    return format_table(headers, rows, [False, True, True, True, True])


def print_sweep(summary) -> int:
    from raygan.tracking.store import ui_command

    trials = summary["trials"]
    key = summary.get("objective", "fid")
    if summary.get("interrupted"):
        done = sum(t.status in ("finished", "stopped", "errored") for t in trials)
        print(f"sweep {summary['name']} interrupted: {done} trial(s) done; resume with: "
              f"raygan tune --resume {summary['name']} --storage {summary['storage']}", file=sys.stderr)
        return 130
    counts = summary.get("counts") or {}
    print(f"sweep:       {summary['name']}  ({len(trials)} trials: {counts.get('finished', 0)} finished, "
          f"{counts.get('stopped', 0)} stopped early, {counts.get('errored', 0)} errored; "
          f"{summary.get('kimg_spent', 0):.1f} kimg trained)")
    for t in trials:
        if t.status == "errored":
            print(f"errored:     {t.trial_id}  {t.error}"[:TABLE_WIDTH])
    top = summary.get("top") or []
    if top:
        w = summary["winner"]
        print(f"re-evaluated the top {len(top)} on {key}, seeds {', '.join(map(str, w['protocol'].get('seeds', [])))}:")
        print_protocols([key], w["protocol"], label="  protocol:")
        print(sweep_table(summary))
        spread = f" ± {w['std']:.2g}" if w.get("std") is not None else ""
        print(f"winner:      {w['trial_id']}  {key} {w['mean']:.4g}{spread}  (mlflow run {w['run_id']})")
        champ = summary.get("champion") or {}
        if champ.get("champion_uri"):
            print(f"champion:    {champ['champion_uri']}  (= {champ['registered']})")
        elif champ.get("model_uri"):
            print(f"model:       {champ['model_uri']}")
    else:
        print(f"no trial produced a {key}", file=sys.stderr)
    if summary.get("tracking_uri"):
        print(f"mlflow:      experiment {summary['experiment']}, parent run {summary['parent_run_id']}")
        print(f"browse:      {ui_command(summary['tracking_uri'])}")
    return 0 if top else 1
