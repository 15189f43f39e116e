"""Ctrl-C (SIGINT) and SIGTERM stop a local run the same way: a checkpoint where it stopped (at a
step boundary, so the resume is exact, mid-tick included), the resume hint only when a checkpoint
exists, the MLflow run KILLED, exit 128 + the signal. Real processes and a real sqlite store."""
from __future__ import annotations

import signal

import pytest
import torch

from raygan.engine.checkpoint import list_checkpoints
from raygan.engine.reporter import Reporter
from raygan.errors import Interrupted
from raygan.engine.loop import Trainer

from reliability_util import cli, client, finish, metrics_rows, run_id, spawn, tiny, wait_for
from helpers import assert_bitwise_equal, params
from helpers import engine_tiny


class StopAt(Reporter):
    """Asks the trainer to stop once it has seen `nimg` images, as the local host's signal handler does."""

    def __init__(self, nimg: int, signum: int):
        self.nimg, self.signum, self.trainer = nimg, signum, None

    def progress(self, nimg):
        if nimg >= self.nimg and self.trainer.stop_signal is None:
            self.trainer.request_stop(self.signum)


def test_a_stop_mid_tick_saves_a_checkpoint_that_resumes_exactly(tmp_path):
    T = 0.768  # 24 steps of 32 images in ticks of 8; stopped after 10 steps, in the second tick
    one = Trainer(engine_tiny(f"train.total_kimg={T}", "train.snapshot_ticks=100"), tmp_path / "one", evaluator=None)
    one.run()
    stop = StopAt(320, signal.SIGTERM)
    two = Trainer(engine_tiny(f"train.total_kimg={T}", "train.snapshot_ticks=100"), tmp_path / "two",
                  reporter=stop, evaluator=None)
    stop.trainer = two
    with pytest.raises(Interrupted) as e:
        two.run()
    assert e.value.signum == signal.SIGTERM and e.value.checkpoint.endswith("ckpt-0000000320")
    assert [p.name for p in list_checkpoints(tmp_path / "two" / "checkpoints")] == ["ckpt-0000000320"]
    resumed = Trainer(engine_tiny(f"train.total_kimg={T}", "train.snapshot_ticks=100"), tmp_path / "two",
                      evaluator=None)
    resumed.load(list_checkpoints(tmp_path / "two" / "checkpoints")[-1])
    assert (resumed.nimg, resumed.tick, resumed.tick_start_nimg) == (320, 1, 256)
    summary = resumed.run()
    assert summary["ticks"] == one.tick == 3  # the stopped tick was finished, not restarted
    for k in one.task.networks:
        assert_bitwise_equal(params(one.task.networks[k]), params(resumed.task.networks[k]))


def test_a_stop_before_the_first_step_saves_nothing_and_offers_no_resume(tmp_path, capsys):
    from raygan.hosts.local import _stopped
    from raygan.hosts.runstore import RunStore

    t = Trainer(engine_tiny("train.total_kimg=0.256"), tmp_path / "r", evaluator=None)
    t.request_stop(signal.SIGINT)
    with pytest.raises(Interrupted) as e:
        t.run()
    assert e.value.checkpoint is None and not (tmp_path / "r" / "checkpoints").exists() and t.nimg == 0
    _stopped(e.value, RunStore(tmp_path / "r"))
    err = capsys.readouterr().err
    assert "resume with" not in err and "before its first checkpoint: nothing was saved to resume from" in err


def test_sigterm_checkpoints_marks_the_mlflow_run_killed_and_the_run_resumes(in_tmp, capsys):
    """Before: SIGTERM killed the process (exit 143) silently, nothing saved, the MLflow run left RUNNING."""
    run = in_tmp / "run"
    p = spawn(["train", *tiny(in_tmp, "train.total_kimg=500", "train.tick_kimg=0.128", "train.snapshot_ticks=10000",
                              "train.eval_ticks=0", "train.sample_ticks=10000"), "--run-dir", run], in_tmp, tag="t")
    try:
        wait_for(lambda: len(metrics_rows(run)) >= 1, 180, "the first tick", proc=p)
    finally:
        p.send_signal(signal.SIGTERM)
    code, _, err = finish(p, in_tmp, "t", timeout=60)
    assert code == 143, err
    assert "Traceback" not in err
    ckpts = list_checkpoints(run / "checkpoints")
    assert len(ckpts) == 1  # no periodic checkpoint in this run: the one SIGTERM saved
    assert f"raygan: terminated (SIGTERM); resume with: raygan train --run-dir {run} --resume  (from {ckpts[0]})" in err
    assert err.rstrip().endswith("raygan: terminated")
    rid = run_id(run)
    assert client(in_tmp).get_run(rid).info.status == "KILLED"
    stopped = int(ckpts[0].name.split("-")[1])
    assert stopped >= 128 and stopped > 1000 * metrics_rows(run)[0]["kimg"] - 1

    total = (stopped + 64) / 1000  # one more step
    code, out, err = cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress",
                         "--set", f"train.total_kimg={total:g}")
    assert code == 0, err
    assert f"resuming generate in {run}" in err
    assert torch.load(list_checkpoints(run / "checkpoints")[-1] / "state.pt", weights_only=True)[
        "progress"]["nimg"] == stopped + 64
    assert client(in_tmp).get_run(rid).info.status == "FINISHED"


def test_first_signal_asks_the_trainer_to_stop_a_second_stops_at_once(tmp_path, capsys):
    """The local host's handlers, with real signals sent to this process."""
    import os

    from raygan.hosts.local import _stop_signals

    t = Trainer(engine_tiny("train.total_kimg=0.256"), None, evaluator=None)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as e:
        with _stop_signals() as holder:
            holder["trainer"] = t
            os.kill(os.getpid(), signal.SIGTERM)
            assert t.stop_signal == signal.SIGTERM  # asked, not raised: the loop stops at the next step
            os.kill(os.getpid(), signal.SIGINT)  # a second signal: at once
    assert e.value.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGTERM) == before  # the handlers are restored
    assert "SIGTERM: stopping at the next step with a checkpoint" in capsys.readouterr().err
