"""What needs several real processes, kills and signals: one run per run dir, no stuck run dirs,
concurrent store creation, and kill/resume records each tick once, a complete run stays complete, stale temp dirs, Ctrl-C).
Real `python -m raygan` processes and a real sqlite MLflow store; nothing is mocked."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reliability_util import (ROOT, all_runs, cli, client, finish, metrics_rows,
                              one_line, run_id, spawn, tiny, versions, wait_for)

MODEL = "raygan-digits-mlp"


@pytest.fixture
def here(in_tmp):
    """conftest's fresh working directory (own MLflow store and caches), by this module's name."""
    return in_tmp


def long_run(tmp: Path, *extra: str) -> list:
    """A run that goes on until it is stopped (no checkpoint, no evaluation on the way)."""
    return ["train", *tiny(tmp, "train.total_kimg=500", "train.tick_kimg=0.256", "train.snapshot_ticks=10000",
                           "train.eval_ticks=0", "train.sample_ticks=10000", *extra)]


# ============================================================================ 5 + 9 (Ctrl-C) + 7 (no checkpoint yet)
def test_two_trainings_into_one_run_dir_then_ctrl_c_and_a_restart(here, capsys):
    run = here / "run"
    a = spawn([*long_run(here), "--run-dir", run], here, tag="a")
    b = spawn([*long_run(here), "--run-dir", run], here, tag="b")
    wait_for(lambda: a.poll() is not None or b.poll() is not None, 180, "one of two starts to be refused")
    (loser, ltag), (winner, wtag) = ((a, "a"), (b, "b")) if a.poll() is not None else ((b, "b"), (a, "a"))
    try:
        code, _, err = finish(loser, here, ltag)
        one_line(code, err, rf"run dir {run} (is in use by (pid {winner.pid}|another process)|already holds a run)")
        wait_for(lambda: len(metrics_rows(run)) >= 1, 180, "the first tick", proc=winner)

        # a resume while it runs: the lock refuses it, naming the holder
        c = spawn(["train", "--run-dir", run, "--resume", "--no-progress"], here, tag="c")
        code, _, err = finish(c, here, "c")
        one_line(code, err, rf"run dir {run} is in use by pid {winner.pid}; wait for it to finish")
        assert winner.poll() is None
    finally:
        winner.send_signal(signal.SIGINT)
    code, out, err = finish(winner, here, wtag, timeout=60)
    assert code == 130, err
    assert "Traceback" not in err
    assert f"raygan: interrupted; resume with: raygan train --run-dir {run} --resume" in err
    runs = all_runs(here)
    assert len(runs) == 1 and runs[0].info.run_id == run_id(run)  # one writer, one MLflow run
    assert runs[0].info.status == "KILLED"
    ticks = [r["kimg"] for r in metrics_rows(run)]
    assert ticks == sorted(set(ticks))  # nothing written twice
    # Ctrl-C saved where it stopped (no periodic checkpoint in this run), so "resume with" is true
    assert len(list((run / "checkpoints").glob("ckpt-*"))) == 1 and (run / "config.yaml").is_file()

    # 7: stopped before its first checkpoint (as a SIGKILL leaves it) -> --resume starts it again (a fresh
    # start would be refused)
    shutil.rmtree(run / "checkpoints")
    code, out, err = cli(capsys, "train", *tiny(here), "--run-dir", run)  # no --resume
    one_line(code, err, r"already holds a run; pass --resume")
    code, out, err = cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress",
                         "--set", "train.total_kimg=0.512", "--set", "train.snapshot_ticks=1")
    assert code == 0, err
    assert "has no checkpoint yet: starting it again from the beginning" in err
    assert [r["kimg"] for r in metrics_rows(run)] == [0.256, 0.512]
    r = client(here).get_run(run_id(run))
    assert r.info.status == "FINISHED" and len(all_runs(here)) == 1
    assert len(versions(here, MODEL)) == 1


# ============================================================================ 9: SIGKILL between checkpoints
def test_kill_between_checkpoints_resume_records_each_tick_once(here, capsys):
    run = here / "run"
    every = 4  # a checkpoint every 4 ticks; killed 1-2 ticks after one
    p = spawn(["train", *tiny(here, "train.total_kimg=500", "train.tick_kimg=0.512", f"train.snapshot_ticks={every}",
                              "train.eval_ticks=0", "train.sample_ticks=1"), "--run-dir", run], here, tag="k")
    try:
        wait_for(lambda: len(metrics_rows(run)) % every in (1, 2) and len(metrics_rows(run)) > every, 240,
                 "a tick after the first checkpoint", proc=p)
    finally:
        p.kill()
    p.wait(timeout=30)
    rows = metrics_rows(run)
    ckpts = sorted((run / "checkpoints").glob("ckpt-*"))
    last_ckpt_kimg = int(ckpts[-1].name.split("-")[1]) / 1000
    assert rows[-1]["kimg"] > last_ckpt_kimg  # killed between checkpoints: these ticks will be redone
    rid = run_id(run)
    assert client(here).get_run(rid).info.status == "RUNNING"  # nobody could mark it
    (run / "checkpoints" / ".tmp-ckpt-x").mkdir()  # what a kill during a checkpoint write leaves
    (run / "checkpoints" / ".tmp-ckpt-x" / "state.pt").write_bytes(b"half")

    total = round(last_ckpt_kimg + 3 * 0.512, 3)  # redo the killed ticks, then one or two more
    code, out, err = cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress",
                         "--set", f"train.total_kimg={total}")
    assert code == 0, err
    assert not (run / "checkpoints" / ".tmp-ckpt-x").exists()  # cleaned at the start
    expected = [round(0.512 * i, 3) for i in range(1, round(total / 0.512) + 1)]
    assert [r["kimg"] for r in metrics_rows(run)] == expected  # each tick once
    c = client(here)
    assert c.get_run(rid).info.status == "FINISHED" and len(all_runs(here)) == 1
    steps = [m.step for m in c.get_metric_history(rid, "loss_d")]
    assert steps == [round(k * 1000) for k in expected]  # and once in MLflow's history
    assert len(versions(here, MODEL)) == 1

    # resuming the finished run: it says so, exits 0, registers nothing new, changes nothing
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != ".raygan.lock"}
    code, out, err = cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress")
    assert code == 0, err
    assert f"run {run} is complete ({total:g} kimg = train.total_kimg); nothing to do" in err
    assert len(versions(here, MODEL)) == 1 and len(all_runs(here)) == 1
    assert c.get_run(rid).info.status == "FINISHED"
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != ".raygan.lock"} == before


# ============================================================================ 7: a failed start leaves nothing
def test_failed_starts_leave_no_directory_and_a_bare_config_resumes(here, capsys):
    # fails after the run dir was locked (data + networks are built under the lock)
    code, _, err = cli(capsys, "train", *tiny(here, "optim.batch_size=4096"), "--run-dir", "new/a/b")
    one_line(code, err, r"optim\.batch_size 4096 is larger than the dataset")
    assert not (here / "new").exists()
    (here / "empty").mkdir()
    code, _, err = cli(capsys, "train", *tiny(here, "optim.batch_size=4096"), "--run-dir", "empty")
    one_line(code, err, r"larger than the dataset")
    assert (here / "empty").is_dir() and list((here / "empty").iterdir()) == []  # existed before: kept, empty

    # fails at MLflow setup: a deleted experiment
    c = client(here)
    c.delete_experiment(c.create_experiment("gone"))
    code, _, err = cli(capsys, "train", *tiny(here, "tracking.experiment=gone"), "--run-dir", "r")
    one_line(code, err, r"MLflow experiment 'gone' is deleted")
    assert not (here / "r").exists() and all_runs(here) == []

    # a run dir holding only config.yaml (the stuck state of the issue): --resume starts it
    (here / "bare").mkdir()
    code, out, _ = cli(capsys, "train", *tiny(here), "--dry-run")
    (here / "bare" / "config.yaml").write_text(out)
    code, out, err = cli(capsys, "train", "--run-dir", "bare", "--resume", "--no-progress")
    assert code == 0, err
    assert [r["kimg"] for r in metrics_rows(here / "bare")] == [0.128, 0.256]
    assert client(here).get_run(run_id(here / "bare")).info.status == "FINISHED"


# ============================================================================ 8: three processes, one new store
def test_three_processes_create_one_new_mlflow_store(tmp_path):
    db = tmp_path / "sub" / "mlflow.db"
    go = tmp_path / "go"
    code = textwrap.dedent(f"""
        import os, sys, time
        import mlflow.tracking  # imported before the start: the three then reach the store together
        import mlflow.store.tracking.sqlalchemy_store, mlflow.store.model_registry.sqlalchemy_store  # noqa
        from raygan.tracking.store import get_or_create_experiment, open_client
        print("ready", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.005)
        time.sleep(1.0 * int(sys.argv[1]))  # the later ones find the file while the first is still migrating it
        uri = "sqlite:///{db}"
        c = open_client(uri)
        exp = get_or_create_experiment(c, "raygan", uri)
        run = c.create_run(exp)
        c.log_metric(run.info.run_id, "x", 1.0, step=int(sys.argv[1]))
        c.set_terminated(run.info.run_id)
        print("ok", flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for i in range(3)]
    for p in procs:  # all three imported and waiting: then they start at once
        assert p.stdout.readline().strip() == "ready"
    go.write_text("")
    results = [(p.wait(timeout=180), p.stdout.read(), p.stderr.read()) for p in procs]
    for rc, out, err in results:
        assert rc == 0 and out.strip() == "ok", err[-3000:]
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{db}")
    exps = [e for e in c.search_experiments() if e.name == "raygan"]
    assert len(exps) == 1
    runs = c.search_runs([exps[0].experiment_id])
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
