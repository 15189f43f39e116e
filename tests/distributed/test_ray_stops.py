"""A Ray Train run (--workers 1) stops as a local run does: Ctrl-C and --resume of a finished
Ray run behave as a local run does (exit 130 + resume hint + KILLED; "is complete", nothing
registered), and a Ray run locks its run dir as a local one does. About 50 s each on 2 cores (a local Ray cluster starts per command); set
RAYGAN_SKIP_SLOW_RAY=1 to skip them."""
from __future__ import annotations

import os
import signal

import pytest

from reliability_util import all_runs, client, finish, metrics_rows, one_line, run_id, spawn, tiny, versions, wait_for

pytestmark = pytest.mark.skipif(os.environ.get("RAYGAN_SKIP_SLOW_RAY") == "1",
                                reason="RAYGAN_SKIP_SLOW_RAY=1")


def test_a_ray_run_holds_its_run_dir_and_ctrl_c_exits_130_with_the_resume_hint_and_marks_it_killed(tmp_path):
    run = tmp_path / "runs" / "r"
    p = spawn(["train", *tiny(tmp_path, "train.total_kimg=500", "train.tick_kimg=0.256", "train.eval_ticks=0",
                              "train.snapshot_ticks=4"), "--workers", "1", "--run-dir", run], tmp_path, tag="ray")
    try:
        wait_for(lambda: len(metrics_rows(run)) >= 2, 240, "two ticks", proc=p)
        # while it trains: a second Ray start and a --resume into the same run dir are one line each,
        # refused before any cluster starts, and write nothing (one MLflow run, no second writer)
        for tag, args in (("second", ["train", *tiny(tmp_path), "--workers", "1", "--run-dir", run]),
                          ("resume", ["train", "--no-progress", "--run-dir", run, "--resume"])):
            code, _, err = finish(spawn(args, tmp_path, tag=tag), tmp_path, tag, timeout=120)
            one_line(code, err, rf"run dir {run} is in use by pid {p.pid}; wait for it to finish")
        assert p.poll() is None and len(all_runs(tmp_path)) == 1
    finally:
        p.send_signal(signal.SIGINT)
    code, out, err = finish(p, tmp_path, "ray", timeout=120)
    assert code == 130, err[-2000:]
    assert f"resume with: raygan train --run-dir {run} --resume" in err
    assert client(tmp_path).get_run(run_id(run)).info.status == "KILLED"
    ticks = [r["kimg"] for r in metrics_rows(run)]
    assert ticks == sorted(set(ticks))  # nothing written twice


def test_resume_of_a_finished_ray_run_registers_nothing_new(tmp_path):
    run = tmp_path / "runs" / "r"
    code, _, err = finish(spawn(["train", *tiny(tmp_path), "--workers", "1", "--run-dir", run], tmp_path, tag="a"),
                          tmp_path, "a")
    assert code == 0, err[-2000:]
    assert len(versions(tmp_path, "raygan-digits-mlp")) == 1
    code, _, err = finish(spawn(["train", "--no-progress", "--run-dir", run, "--resume"], tmp_path, tag="b"),
                          tmp_path, "b")
    assert code == 0, err[-2000:]
    assert "is complete" in err
    assert len(versions(tmp_path, "raygan-digits-mlp")) == 1 and len(all_runs(tmp_path)) == 1
