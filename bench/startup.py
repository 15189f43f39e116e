"""How long `raygan` commands take to start, and which heavy modules each one imports.

Each command runs N times in a fresh interpreter (as a user's shell runs it); the table gives the
median and the fastest wall time, and the heavy modules (torch, ray, mlflow, optuna) found in
sys.modules when the command ended. For scale, the last rows time `import torch`, `import ray.tune`
and `import mlflow` alone the same way. Absolute seconds on this machine: on a loaded machine
every number grows, the module columns do not. With `--compare DIR` every command also runs from
another checkout (e.g. the code before a change), its runs interleaved with these, so both columns
see the same load.

    python bench/startup.py            # 5 runs per command
    python bench/startup.py --runs 3 --compare /path/to/other/checkout
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "ray.tune", "mlflow", "sqlalchemy", "optuna")
PROBE = """
import atexit, json, runpy, sys
atexit.register(lambda: print("HEAVY " + json.dumps([m for m in {heavy!r} if m in sys.modules]), file=sys.stderr))
sys.argv = ["raygan", *{args!r}]
runpy.run_module("raygan", run_name="__main__")
"""


def commands(uri: str):
    return [["--help"], ["--version"], ["presets"], ["runs", "list", "--tracking-uri", uri],
            ["runs", "list", "--sort", "score", "--tracking-uri", uri],
            ["train", "--dry-run"], ["train", "--preset", "quickstart", "--set", "optim.d_lr=0.001", "--dry-run"],
            ["tune", "--preset", "quickstart", "--dry-run"]]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_one(argv, env, cwd) -> tuple:
    """(wall s, CPU s of the process: user + sys, which other load barely changes, heavy modules)"""
    t0, c0 = time.perf_counter(), _cpu()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    dt, cpu = time.perf_counter() - t0, _cpu() - c0
    heavy = next((json.loads(ln[6:]) for ln in p.stderr.splitlines() if ln.startswith("HEAVY ")), None)
    if p.returncode not in (0,):
        raise SystemExit(f"{argv[-8:]} failed ({p.returncode}): {p.stderr[-800:]}")
    return dt, cpu, heavy


def make_store(tmp: Path) -> str:
    """A real embedded store with three finished runs (setup, not timed)."""
    uri = f"sqlite:///{tmp}/mlflow.db"
    code = ("from mlflow.tracking import MlflowClient as C; c = C(%r); e = c.create_experiment('bench')\n"
            "for i in range(3):\n r = c.create_run(e, run_name=f'startup-bench-{i}'); c.log_param(r.info.run_id, "
            "'eval.metrics', '[\"fid\"]'); c.log_metric(r.info.run_id, 'fid', 12.5 + i); "
            "c.set_terminated(r.info.run_id)") % uri
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=tmp, timeout=600)
    return uri


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compare", metavar="DIR", help="also time each command from this checkout (runs interleaved)")
    args = ap.parse_args()
    trees = [("this", REPO)] + ([("compare", Path(args.compare).resolve())] if args.compare else [])
    envs = {t: {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
            for t, root in trees}
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        uri = make_store(tmp)
        jobs = [("raygan " + " ".join(a).replace(uri, "URI"),
                 [sys.executable, "-c", PROBE.format(heavy=HEAVY, args=a)], True) for a in commands(uri)]
        jobs += [(f"python -c 'import {m}'", [sys.executable, "-c", f"import {m}"], False)
                 for m in ("torch", "ray.tune", "mlflow")]
        for name, argv, both in jobs:
            times = {t: [] for t, _ in trees}
            cpus = {t: [] for t, _ in trees}
            heavy = {}
            for _ in range(args.runs):
                for t, _root in (trees if both else trees[:1]):
                    dt, cpu, heavy[t] = time_one(argv, envs[t], tmp)
                    times[t].append(dt)
                    cpus[t].append(cpu)
            cols = []
            for t, _root in (trees if both else trees[:1]):
                h = heavy[t]
                cols += [statistics.median(times[t]), min(times[t]), statistics.median(cpus[t]),
                         ", ".join(h) if h else ("-" if h is not None else "(the import itself)")]
            rows.append((name, cols))
            print(f"{name:70s} " + "  ".join(f"{c:6.2f}" for c in cols if isinstance(c, float)), file=sys.stderr,
                  flush=True)
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end; "
          f"median and best wall time and median CPU time (user + sys) of {args.runs} runs; "
          f"python {sys.version.split()[0]}"
          + (f"; compare = {args.compare}" if args.compare else "") + "\n")
    w = max(len(r[0]) for r in rows)
    head = "| median s | best s | CPU s | heavy modules imported |"
    sep = "|----------|--------|-------|------------------------|"
    if args.compare:
        head += " compare: median s | best s | CPU s | heavy modules |"
        sep += "-------------------|--------|-------|---------------|"
    print(f"| {'command':{w}s} {head}")
    print(f"|{'-' * (w + 2)}{sep}")
    for name, cols in rows:
        cells = [f"{c:.2f}" if isinstance(c, float) else c for c in cols]
        cells += [""] * (len(trees) * 4 - len(cells))
        print(f"| {name:{w}s} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
