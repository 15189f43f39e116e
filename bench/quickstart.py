"""The main job as a user runs it: `raygan train --preset quickstart`, end to end.

Reports wall time, peak RSS of the training process, and the domain FID against kimg from
the run's metrics.jsonl (fmnist-cnn, eval.num_samples during training, 10k at the end).

    python bench/quickstart.py [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="raygan-quickstart-"))
    cmd = [sys.executable, "-m", "raygan", "train", "--preset", "quickstart", "--run-dir", str(work / "run"),
           "--no-progress"]
    for o in args.overrides:
        cmd += ["--set", o]
    env = {**os.environ, "RAYGAN_CACHE": str(work / "cache")}
    t0 = time.time()
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        print(p.stderr[-3000:])
        sys.exit(p.returncode)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((work / "run" / "summary.json").read_text())
    print(f"machine: {machine()}")
    print(f"command: raygan train --preset quickstart {' '.join('--set ' + o for o in args.overrides)}")
    print(table(["what", "value"], [["wall time (s), incl. startup, evals, MLflow", f"{wall:.0f}"],
                                    ["peak RSS (MiB)", f"{peak_mb:.0f}"],
                                    ["kimg", summary["kimg"]],
                                    ["final FID (10k vs test)", summary["final"].get("fid", float("nan"))]]))
    print()
    print(table(["kimg", "img/s", "loss_d", "loss_g", "FID", "samples"],
                [[r["kimg"], r["img_per_s"], r["loss_d"], r["loss_g"], r.get("fid", "-"),
                  r.get("protocol", {}).get("num_samples", "-")] for r in rows]))
    print("\n" + p.stdout)


if __name__ == "__main__":
    main()
