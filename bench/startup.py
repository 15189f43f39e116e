"""How long `raygan` commands take to start, and which heavy modules each one imports.

Each command runs N times in a fresh interpreter (as a user's shell runs it); the table gives the
median and the fastest wall time, and the heavy modules (torch, ray, mlflow, optuna) found in
sys.modules when the command ended. For scale, the last rows time `import torch`, `import ray.tune`
and `import mlflow` alone the same way. Absolute seconds on this machine: on a loaded machine
every number grows, the module columns do not.

    python bench/startup.py            # 5 runs per command
    python bench/startup.py --runs 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "ray.tune", "mlflow", "optuna")
PROBE = """
import atexit, json, runpy, sys
atexit.register(lambda: print("HEAVY " + json.dumps([m for m in {heavy!r} if m in sys.modules]), file=sys.stderr))
sys.argv = ["raygan", *{args!r}]
runpy.run_module("raygan", run_name="__main__")
"""


def commands(uri: str):
    return [["--help"], ["--version"], ["presets"], ["runs", "list", "--tracking-uri", uri],
            ["runs", "list", "--sort", "score", "--tracking-uri", uri],
            ["train", "--preset", "quickstart", "--dry-run"], ["tune", "--preset", "quickstart", "--dry-run"]]


def time_one(argv, env, cwd) -> tuple:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    dt = time.perf_counter() - t0
    heavy = next((json.loads(ln[6:]) for ln in p.stderr.splitlines() if ln.startswith("HEAVY ")), None)
    if p.returncode not in (0,):
        raise SystemExit(f"{argv[-8:]} failed ({p.returncode}): {p.stderr[-800:]}")
    return dt, heavy


def make_store(tmp: Path) -> str:
    """A real embedded store with one finished run (setup, not timed)."""
    uri = f"sqlite:///{tmp}/mlflow.db"
    code = ("from mlflow.tracking import MlflowClient as C; c = C(%r); e = c.create_experiment('bench');"
            "r = c.create_run(e, run_name='startup-bench'); c.log_metric(r.info.run_id, 'fid', 12.5);"
            "c.set_terminated(r.info.run_id)") % uri
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=tmp, timeout=600)
    return uri


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        uri = make_store(tmp)
        jobs = [("raygan " + " ".join(a).replace(uri, "URI"),
                 [sys.executable, "-c", PROBE.format(heavy=HEAVY, args=a)]) for a in commands(uri)]
        jobs += [(f"python -c 'import {m}'", [sys.executable, "-c", f"import {m}"]) for m in ("torch", "ray.tune", "mlflow")]
        for name, argv in jobs:
            times, heavy = [], None
            for _ in range(args.runs):
                dt, heavy = time_one(argv, env, tmp)
                times.append(dt)
            rows.append((name, statistics.median(times), min(times), ", ".join(heavy) if heavy else
                         ("-" if heavy is not None else "(the import itself)")))
            print(f"{name:70s} {rows[-1][1]:6.2f} s", file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
          f"median and best of {args.runs} runs; python {sys.version.split()[0]}\n")
    w = max(len(r[0]) for r in rows)
    print(f"| {'command':{w}s} | median s | best s | heavy modules imported |")
    print(f"|{'-' * (w + 2)}|----------|--------|------------------------|")
    for name, med, best, heavy in rows:
        print(f"| {name:{w}s} | {med:8.2f} | {best:6.2f} | {heavy} |")


if __name__ == "__main__":
    main()
