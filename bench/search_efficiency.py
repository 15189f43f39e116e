"""Search efficiency on Fashion-MNIST: TPE + ASHA vs random search without early stopping.

Both searches get the same total budget in kimg (all trials together), the same search space
(the shipped default), the same base config (quickstart), the same sampler seed and trial
seed, in one run on one local Ray. Random search: Optuna's RandomSampler + FIFO, each trial
trains the full per-trial budget (total / per-trial trials). TPE + ASHA: Optuna TPE + ASHA
(rungs in kimg, reduction factor 2), as many trials as fit in the total budget (the sweep
stops once the trials together trained it).

Trials are judged by the sweep's proxy (fmnist-cnn FID on --proxy-samples images); what is
*reported* is honest: at each point of budget spent (trials counted when they end, in the
order they ended), the incumbent -- the trial with the best proxy so far -- is re-evaluated
from its last checkpoint with --reeval-samples images for each of --seeds evaluation seeds
(other seeds than the proxy's), mean ± std. The best configuration found is also compared with
the quickstart defaults trained for the same per-trial budget and re-evaluated the same way.
Goal: TPE + ASHA reaches random search's final best with <= 50% of the budget.

    python bench/search_efficiency.py [--total-kimg 128] [--trial-kimg 16] [--seed 0] [--json out.json]

About 7 minutes on 2 CPU cores with the defaults.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from common import machine, table


def incumbents(trials, total_kimg, points):
    """[(budget spent, incumbent trial or None)] at `points` fractions of the total budget."""
    done = sorted((t for t in trials if t.status in ("finished", "stopped") and t.fid is not None),
                  key=lambda t: (t.end_time or 0.0))
    out = []
    for frac in points:
        limit = frac * total_kimg + 1e-6
        spent, best = 0.0, None
        for t in done:
            if spent + t.kimg > limit:
                break
            spent += t.kimg
            if math.isfinite(t.fid) and (best is None or t.fid < best.fid):
                best = t
        out.append((frac * total_kimg, best))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--total-kimg", type=float, default=128.0, help="budget of each search, all trials together")
    ap.add_argument("--trial-kimg", type=float, default=16.0, help="budget of one trial (ASHA's max_t)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--proxy-samples", type=int, default=1000)
    ap.add_argument("--reeval-samples", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=3, help="evaluation seeds per re-evaluation")
    ap.add_argument("--points", type=int, default=8, help="budget points reported")
    ap.add_argument("--search-space", default=None, help="default: the shipped one")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import ray

    from raygan.tasks import load_config
    from raygan.distributed import tune
    from raygan.engine.checkpoint import latest_checkpoint
    from raygan.engine.loop import Trainer

    work = Path(tempfile.mkdtemp(prefix="raygan-bench-search-"))
    os.environ.setdefault("RAYGAN_CACHE", str(work / "cache"))
    ncpu = os.cpu_count() or 2
    ray.init(address="local", num_cpus=ncpu, log_to_driver=False, logging_level=logging.WARNING,
             include_dashboard=False)
    B, T = args.trial_kimg, args.total_kimg
    n_random = max(1, int(round(T / B)))
    overrides = [f"eval.num_samples={args.proxy_samples}", f"eval.final_num_samples={args.reeval_samples}",
                 "train.threads=1", f"tracking.uri=sqlite:///{work}/mlflow.db", "tracking.register_model=null",
                 f"seed={args.seed}"]
    cfg = load_config("quickstart", None, overrides)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    common = dict(budget_kimg=B, grace_kimg=B / 4, reduction_factor=2, tick_kimg=B / 4, seed=args.seed,
                  storage=str(work / "runs"), progress=True, finish=False, total_kimg=T)
    runs = {}
    for label, opts in (
        ("TPE + ASHA", tune.SweepOptions(samples=4 * n_random, scheduler="asha", sampler="tpe", name="tpe-asha",
                                         **common)),
        ("random, no early stopping", tune.SweepOptions(samples=n_random, scheduler="fifo", sampler="random",
                                                        name="random", **common)),
    ):
        log(f"== {label}")
        t0 = time.time()
        summary = tune.run_sweep(cfg, opts, args.search_space)
        runs[label] = {"trials": summary["trials"], "seconds": time.time() - t0, "spec": None}
        log(f"   {len(summary['trials'])} trials, {sum(t.kimg for t in summary['trials']):.1f} kimg, "
            f"{time.time() - t0:.0f} s")

    seeds = [cfg.eval.seed + 1 + i for i in range(args.seeds)]
    cache = {}

    def reeval(trial):
        if trial.trial_id not in cache:
            r = tune.reevaluate(trial.config, trial.checkpoint, seeds, args.reeval_samples)
            cache[trial.trial_id] = r
            log(f"   re-evaluated {trial.trial_id}: {r['mean']:.2f} ± {r['std']:.2f} (proxy {trial.fid:.2f})")
        return cache[trial.trial_id]

    points = [(i + 1) / args.points for i in range(args.points)]
    curves = {}
    for label, r in runs.items():
        curves[label] = []
        for spent, inc in incumbents(r["trials"], T, points):
            curves[label].append((spent, inc, reeval(inc) if inc is not None else None))

    # the quickstart defaults, same per-trial budget and protocol
    log("== quickstart defaults")
    base = tune.trial_base(cfg, tune.SweepOptions(**{k: v for k, v in common.items()}))
    from raygan.tasks import build_config

    qcfg = build_config(base)
    run_dir = work / "quickstart"
    tr = Trainer(qcfg, run_dir)
    tr.run()
    q = tune.reevaluate(qcfg.to_dict(), str(latest_checkpoint(run_dir / "checkpoints")), seeds, args.reeval_samples)

    fmt = lambda e: f"{e['mean']:.2f} ± {e['std']:.2f}" if e else "-"  # noqa: E731
    labels = list(runs)
    rows = []
    for i, frac in enumerate(points):
        row = [f"{curves[labels[0]][i][0]:.0f} ({frac:.0%})"]
        for lab in labels:
            _, inc, e = curves[lab][i]
            row.append(f"{fmt(e)} [{inc.trial_id}]" if inc else "-")
        rows.append(row)
    print(f"\nmachine: {machine()}")
    print(f"Fashion-MNIST, base preset quickstart, default search space, sampler seed {args.seed}; per trial "
          f"<= {B:g} kimg, {T:g} kimg per search in all; proxy: fmnist-cnn FID on {args.proxy_samples} samples every "
          f"{B / 4:g} kimg; reported: the incumbent's FID re-evaluated on {args.reeval_samples} samples x seeds "
          f"{seeds} (mean ± std) vs the 10000 test images")
    for lab in labels:
        ts = runs[lab]["trials"]
        print(f"{lab}: {len(ts)} trials ({sum(t.status == 'stopped' for t in ts)} stopped early, "
              f"{sum(t.status == 'errored' for t in ts)} errored), {sum(t.kimg for t in ts):.1f} kimg, "
              f"{runs[lab]['seconds']:.0f} s")
    print()
    print(table(["kimg spent"] + [f"{lab}: best FID" for lab in labels], rows))
    final_random = curves[labels[1]][-1][2]
    reach = None
    if final_random:
        for spent, inc, e in curves[labels[0]]:
            if e is not None and e["mean"] <= final_random["mean"]:
                reach = spent
                break
    print()
    if reach is None:
        print(f"TPE + ASHA did not reach random search's final best ({fmt(final_random)}) within {T:g} kimg")
    else:
        print(f"TPE + ASHA reached random search's final best ({fmt(final_random)}) after {reach:g} kimg "
              f"= {reach / T:.0%} of the budget (goal <= 50%)")
    finals = [(curves[lab][-1][2], curves[lab][-1][1], lab) for lab in labels if curves[lab][-1][2]]
    best_e, best_t, best_lab = min(finals, key=lambda x: x[0]["mean"])
    print(f"best configuration ({best_lab}, trial {best_t.trial_id}): FID {fmt(best_e)} vs quickstart defaults "
          f"{fmt(q)} at the same {B:g} kimg: ratio {best_e['mean'] / q['mean']:.2f}")
    print(f"  {json.dumps(best_t.sampled)}")
    if args.json:
        out = {"machine": machine(), "args": vars(args), "quickstart": q,
               "curves": {lab: [(s, inc.trial_id if inc else None, e) for s, inc, e in c] for lab, c in curves.items()},
               "trials": {lab: [{"trial_id": t.trial_id, "status": t.status, "kimg": t.kimg, "fid": t.fid,
                                 "sampled": t.sampled} for t in r["trials"]] for lab, r in runs.items()}}
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    ray.shutdown()


if __name__ == "__main__":
    main()
