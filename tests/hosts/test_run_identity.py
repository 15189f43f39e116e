"""One writer per run dir or sweep whatever the host (the lock is taken before a Ray cluster
starts), and a run dir's MLflow identity: a copied run dir resumes into its own MLflow run, a
moved one continues its run. In-process CLI, a real sqlite MLflow store, no Ray started."""
from __future__ import annotations

import json
import shutil

import pytest

from raygan.hosts.runstore import LOCK_FILE, RunStore
from reliability_util import all_runs, cli, client, error_after_start, one_line, run_id, tiny, versions

MODEL = "raygan-digits-mlp"


def _ray_started() -> bool:
    import sys

    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def test_ray_runs_and_sweeps_are_refused_while_another_process_holds_the_lock(in_tmp, capsys):
    """A Ray run (fresh or --resume) and a sweep (new or --resume) in a folder another process
    has locked: one line, exit 2, before any cluster starts, and nothing written."""
    run, sweep = in_tmp / "runs" / "r", in_tmp / "sweeps" / "sw"
    with RunStore(run).lock():
        code, _, err = cli(capsys, "train", *tiny(in_tmp), "--workers", "1", "--run-dir", run)
        one_line(code, err, rf"run dir {run} is in use by pid \d+; wait for it to finish")
        (run / "config.yaml").write_text(cli(capsys, "train", *tiny(in_tmp), "--dry-run")[1])
        (run / "run.json").write_text(json.dumps({"host": "ray-train", "workers": 1}))
        code, _, err = cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress")
        one_line(code, err, rf"run dir {run} is in use by pid \d+")
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "config.yaml", "run.json"]

    with RunStore(sweep).lock():
        code, _, err = cli(capsys, "tune", *tiny(in_tmp), "--storage", sweep.parent, "--name", "sw",
                           "--samples", "1", "--no-progress")
        one_line(code, err, rf"sweep {sweep} is in use by pid \d+; wait for it to finish or choose another --name")
        (sweep / "raygan-sweep.json").write_text("{}")
        code, _, err = cli(capsys, "tune", "--resume", "sw", "--storage", sweep.parent)
        one_line(code, err, r"is not a plan this raygan reads|is in use by")
    assert sorted(p.name for p in sweep.iterdir()) == [LOCK_FILE, "raygan-sweep.json"]
    assert not _ray_started() and all_runs(in_tmp) == []

    # a refused Ray start whose run dir did not exist leaves no directory behind (no Ray here: bad address)
    code, _, err = cli(capsys, "train", *tiny(in_tmp), "--workers", "1", "--run-dir", in_tmp / "new" / "r2",
                       "--address", "127.0.0.1:1")
    error_after_start(code, err, r"no Ray cluster at 127\.0\.0\.1:1")  # (MLflow's store-creation lines before it)
    assert not (in_tmp / "new").exists()


def test_a_copied_run_dir_resumes_into_a_new_mlflow_run_and_a_moved_one_continues(in_tmp, capsys):
    run, copy, moved = in_tmp / "r", in_tmp / "r2", in_tmp / "r3"
    code, _, err = cli(capsys, "train", *tiny(in_tmp), "--run-dir", run)
    assert code == 0, err
    original = run_id(run)
    shutil.copytree(run, copy)

    code, _, err = cli(capsys, "train", "--run-dir", copy, "--resume", "--no-progress",
                       "--set", "train.total_kimg=0.384")
    assert code == 0, err
    assert f"raygan: {copy} is a copy of {run} (MLflow run {original}): it continues in a new MLflow run" in err
    c = client(in_tmp)
    new = run_id(copy)
    assert new != original and len(all_runs(in_tmp)) == 2
    assert c.get_run(new).data.tags["raygan.copied_from"] == original
    assert c.get_run(new).data.tags["raygan.run_dir"] == str(copy)
    # the original's run is as it was: one final_fid, FINISHED, its one model version
    assert len(c.get_metric_history(original, "final_fid")) == 1
    assert c.get_run(original).info.status == "FINISHED"
    assert [v.run_id for v in versions(in_tmp, MODEL)].count(original) == 1
    assert [m.step for m in c.get_metric_history(new, "kimg")] == [384]  # the copy's own ticks after its checkpoint

    # moved (the old place no longer holds it): the same MLflow run goes on, no new one
    shutil.move(copy, moved)
    code, _, err = cli(capsys, "train", "--run-dir", moved, "--resume", "--no-progress",
                       "--set", "train.total_kimg=0.512")
    assert code == 0, err
    assert "is a copy of" not in err and run_id(moved) == new and len(all_runs(in_tmp)) == 2
    assert [m.step for m in c.get_metric_history(new, "kimg")] == [384, 512]
    assert c.get_run(new).data.tags["raygan.run_dir"] == str(moved)
