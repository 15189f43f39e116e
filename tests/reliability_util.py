"""Helpers of the reliability tests (issue 8): tiny runs, real subprocesses, one-line errors,
the MLflow store read back, and directories that really are read-only or really fill up."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import cli, one_line  # noqa: F401 (re-exported for the reliability tests)

TINY = ["--preset", "digits", "--no-progress", "--set", "train.total_kimg=0.256", "--set", "train.tick_kimg=0.128",
        "--set", "eval.num_samples=64", "--set", "eval.final_num_samples=64", "--set", "train.threads=1"]
ROOT = Path(__file__).resolve().parents[1]


def db_uri(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'mlflow.db'}"


def tiny(tmp: Path, *extra: str) -> list:
    """The tiny digits run, recorded in tmp/mlflow.db, with `extra` --set values."""
    args = [*TINY, "--set", f"tracking.uri={db_uri(tmp)}"]
    for e in extra:
        args += ["--set", e]
    return args


def error_after_start(code: int, err: str, pattern: str) -> str:
    """A failure after training started: progress lines may precede it, but the error itself is
    one `raygan: error:` line, the last one, exit 2, no traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("raygan: error:")]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert re.search(pattern, errors[0]), errors[0]
    return errors[0]


def spawn(args, cwd: Path, **kw) -> subprocess.Popen:
    """`python -m raygan ARGS` as a real process (stdout/stderr to files in cwd)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAYGAN_CACHE": str(cwd / "cache"), **kw.pop("env", {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    tag = kw.pop("tag", "p")
    out, err = open(cwd / f"{tag}.out", "w"), open(cwd / f"{tag}.err", "w")
    return subprocess.Popen([sys.executable, "-m", "raygan", *[str(a) for a in args]], cwd=cwd, env=env,
                            stdout=out, stderr=err, **kw)


def finish(p: subprocess.Popen, cwd: Path, tag: str = "p", timeout: float = 240):
    """(exit code, stdout, stderr) of a spawned process."""
    code = p.wait(timeout=timeout)
    return code, (cwd / f"{tag}.out").read_text(), (cwd / f"{tag}.err").read_text()


def wait_for(pred, timeout: float = 180, what: str = "condition", proc: subprocess.Popen = None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def metrics_rows(run_dir: Path) -> list:
    f = run_dir / "metrics.jsonl"
    if not f.is_file():
        return []
    rows = []
    for line in f.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            pass
    return rows


def client(tmp: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(db_uri(tmp))


def all_runs(tmp: Path) -> list:
    c = client(tmp)
    ids = [e.experiment_id for e in c.search_experiments()]
    return list(c.search_runs(ids)) if ids else []


def versions(tmp: Path, name: str) -> list:
    return list(client(tmp).search_model_versions(f"name='{name}'"))


def run_id(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["run_id"]


# ---------------------------------------------------------------------------- real filesystems
def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False, subdirs=()):
    """A real small (or read-only) filesystem at `path` (root only: a tmpfs mount); skipped where
    mounting is not allowed. Without root, a read-only directory is made with chmod instead."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        if not read_only:
            pytest.skip("a small filesystem needs root (tmpfs mount)")
        for d in subdirs:
            (path / d).mkdir()
        os.chmod(path, 0o555)
        for d in subdirs:
            os.chmod(path / d, 0o555)
        try:
            yield path
        finally:
            for d in subdirs:
                os.chmod(path / d, 0o755)
            os.chmod(path, 0o755)
        return
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)):
        pytest.skip("cannot mount a tmpfs here")
    try:
        for d in subdirs:
            (path / d).mkdir()
        if read_only:
            assert _mount("-o", "remount,ro", str(path))
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
