"""Sweeps on a local Ray (2 CPUs): sampled values reach the trainer, ASHA + TPE + MLflow
nesting + honest re-evaluation + champion alias, a diverging trial errors without stopping
the sweep, impossible resources fail in one line, and an interrupted sweep resumes without
rerunning finished trials. Tiny digits MLPs, a few hundred images per tick."""
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raygan.engine.phases import lazy_ratio
from raygan.regularizers import REGULARIZERS

ray = pytest.importorskip("ray")

from raygan.cli import main  # noqa: E402
from raygan.config import build_config, load_config  # noqa: E402
from raygan.distributed.sweep import driver, plan as plans  # noqa: E402
from raygan.distributed.sweep.options import SweepOptions  # noqa: E402
from raygan.tracking.store import pin  # noqa: E402
from raygan.distributed.sweep.space import apply_values  # noqa: E402
from helpers import sets  # noqa: E402

SPACE = """\
parameters:
  loss.name: {choice: [ns, hinge, wgan]}
  optim.g_lr: {loguniform: [1.0e-4, 3.0e-3]}
  optim.d_lr: {loguniform: [1.0e-4, 3.0e-3]}
  betas: {choice: [[0.0, 0.9], [0.5, 0.99]], paths: [optim.g_betas, optim.d_betas]}
  optim.n_critic: {int: [2, 3]}
  regularizer.name:
    choice: [none, r1, wgan-gp]
    given:
      r1: {regularizer.kwargs.weight: {loguniform: [0.01, 1.0]}}
      wgan-gp: {regularizer.kwargs.weight: {loguniform: [1.0, 10.0]}}
  model.spectral_norm: {choice: [false, true]}
  ema.half_life_kimg: {choice: [0.0, 0.5]}
  augment.diffaugment: {choice: ["", "translation"]}
  optim.batch_size: {choice: [16, 32]}
"""
BUDGET = 0.768


def tiny(tmp, *extra):
    return ["model.g={hidden: [32]}", "model.d={hidden: [32]}", "optim.batch_size=32", "eval.num_samples=200",
            "eval.final_num_samples=300", "eval.batch_size=200", "train.threads=1", "train.sample_ticks=3",
            f"tracking.uri=sqlite:///{tmp}/mlflow.db", "tracking.register_model=tiny-gen", *extra]


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    if ray.is_initialized():
        ray.shutdown()
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAYGAN_CACHE", str(cache))  # forwarded to the trials
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("RAY_DEDUP_LOGS", "0")
        ray.init(address="local", num_cpus=2, log_to_driver=False, logging_level=logging.WARNING,
                 include_dashboard=False)
        yield cache
        ray.shutdown()


def client_for(tmp):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")


@pytest.fixture(scope="module")
def sweep(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    (tmp / "space.yaml").write_text(SPACE)
    cfg = load_config("digits", None, tiny(tmp))
    opts = SweepOptions(samples=4, max_concurrent=2, budget_kimg=BUDGET, grace_kimg=0.256, reduction_factor=2,
                             top_k=2, reeval_seeds=2, storage=str(tmp / "runs"), name="sw", progress=False)
    t0 = time.time()
    summary = driver.run_sweep(pin(cfg), opts, str(tmp / "space.yaml"))
    summary["seconds"] = time.time() - t0
    return tmp, cfg, summary


def test_sampled_values_reach_optimisers_losses_and_regularisers(sweep):
    """Ray's own GAN example starts every trial at lr 0.01: here each trial's optimisers, loss,
    n_critic, regulariser weight, batch, SN, EMA and DiffAugment are read back from the built
    trainer and compared with the values that trial sampled."""
    tmp, cfg, summary = sweep
    trials = [t for t in summary["trials"] if t.status in ("finished", "stopped")]
    assert len(trials) == 4, [(t.trial_id, t.status, t.error) for t in summary["trials"]]
    base = plans.trial_base(cfg, SweepOptions(budget_kimg=BUDGET, grace_kimg=0.256, reduction_factor=2))
    client = client_for(tmp)
    for t in trials:
        expect = build_config(apply_values(base, t.sampled))  # {config path: sampled value}
        # a lazy regulariser (r1 every k) scales D's lr and betas by k/(k+1), as StyleGAN2-ADA does
        r = lazy_ratio(REGULARIZERS.build(expect.regularizer.name, **expect.regularizer.kwargs).every)
        want = {
            "applied_g_lr": expect.optim.g_lr, "applied_d_lr": expect.optim.d_lr * r,
            "applied_g_beta1": expect.optim.g_betas[0], "applied_g_beta2": expect.optim.g_betas[1],
            "applied_d_beta1": expect.optim.d_betas[0] ** r, "applied_d_beta2": expect.optim.d_betas[1] ** r,
            "applied_loss": expect.loss.name, "applied_n_critic": expect.optim.n_critic,
            "applied_regularizer": expect.regularizer.name,
            "applied_reg_weight": float(expect.regularizer.kwargs.get("weight", 0.0)),
            "applied_batch_size": expect.optim.batch_size, "applied_spectral_norm": int(expect.model.spectral_norm),
            "applied_ema_half_life_kimg": expect.ema.half_life_kimg, "applied_diffaugment": expect.augment.diffaugment,
            "applied_arch": expect.model.arch,
        }
        # the sampled values themselves (not the base config's) are what the trial trained with
        assert want["applied_g_lr"] == t.sampled["optim.g_lr"] and want["applied_loss"] == t.sampled["loss.name"]
        assert {k: t.applied.get(k) for k in want} == want, t.trial_id
        if expect.loss.name == "wgan":
            assert t.applied["applied_n_critic"] == t.sampled["optim.n_critic"] in (2, 3)
        else:
            assert "optim.n_critic" not in t.sampled and t.applied["applied_n_critic"] == 1
        # the same values are the child run's applied.* params
        params = client.get_run(t.run_id).data.params
        assert float(params["applied.g_lr"]) == want["applied_g_lr"]
        assert float(params["applied.d_lr"]) == want["applied_d_lr"]
        assert params["applied.loss"] == want["applied_loss"]
        assert int(params["applied.n_critic"]) == want["applied_n_critic"]
        assert float(params["applied.reg_weight"]) == want["applied_reg_weight"]
        assert params["optim.g_lr"] == str(expect.optim.g_lr)
    assert len({t.applied["applied_g_lr"] for t in trials}) == len(trials)  # no shared start value


def test_asha_rungs_in_kimg_and_no_trial_beyond_the_budget(sweep):
    tmp, cfg, summary = sweep
    opts = SweepOptions(budget_kimg=BUDGET, grace_kimg=0.256, reduction_factor=2)
    sched = driver._scheduler(cfg, plans.make_plan(cfg, opts, driver.load_space(None, plans.trial_base(cfg, opts)),
                                                   plans.trial_base(cfg, opts), "/tmp", "x", 1, {}))
    assert [m for m, _ in sched._brackets[0]._rungs] == [0.512, 0.256]
    assert sched._time_attr == "kimg" and sched._stop_last_trials is False
    for t in summary["trials"]:
        assert t.kimg <= BUDGET + 0.1
        assert (t.status == "stopped") == (t.kimg < BUDGET - 1e-6)
    assert summary["kimg_spent"] == pytest.approx(sum(t.kimg for t in summary["trials"]))


def test_mlflow_parent_children_reevaluation_and_champion(sweep, capsys):
    tmp, cfg, summary = sweep
    client = client_for(tmp)
    exp = client.get_experiment_by_name("sw")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("raygan.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == len(summary["trials"]) == 4
    parent = parents[0]
    assert parent.info.run_id == summary["parent_run_id"] and parent.info.status == "FINISHED"
    p = parent.data.params
    assert p["sweep.sampler"] == "optuna TPESampler(seed=0, n_startup_trials=3, constant_liar=True)"
    assert p["sweep.scheduler"].startswith("asha(time_attr=kimg, grace_period=0.256, reduction_factor=2, max_t=0.768")
    assert p["space.optim.n_critic"] == "int[2, 3] if critic loss"
    assert p["sweep.budget_kimg"] == str(BUDGET)
    arts = [a.path for a in client.list_artifacts(parent.info.run_id)]
    assert "search_space.yaml" in arts and "reevaluation.json" in arts
    by_trial = {r.data.tags["raygan.trial_id"]: r for r in children}
    for t in summary["trials"]:
        r = by_trial[t.trial_id]
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert r.info.status == {"finished": "FINISHED", "stopped": "KILLED"}[t.status]
        assert json.loads(r.data.tags["raygan.sampled"]) == json.loads(json.dumps(t.sampled))

    # honest objective: the top 2 re-evaluated with more samples and other seeds than the proxy
    top, winner = summary["top"], summary["winner"]
    assert len(top) == 2 and winner["mean"] == min(r["mean"] for r in top)
    assert winner["protocol"]["num_samples"] == 300 and winner["protocol"]["seeds"] == [124, 125]
    assert cfg.eval.seed not in winner["protocol"]["seeds"]
    assert winner["std"] == pytest.approx(abs(winner["values"][0] - winner["values"][1]) / 2 ** 0.5)
    for row in top:
        m = by_trial[row["trial_id"]].data.metrics
        assert m["reeval_fid_mean"] == pytest.approx(row["mean"]) and "reeval_fid_std" in m
    assert parent.data.metrics["best_fid_mean"] == pytest.approx(winner["mean"])
    assert parent.data.tags["raygan.winner_run_id"] == winner["run_id"]
    assert parent.data.tags["best.protocol.num_samples"] == "300"

    # the winner's generator is registered, aliased champion, and loads by alias
    mv = client.get_model_version_by_alias("tiny-gen", "champion")
    assert mv.run_id == winner["run_id"] and float(mv.tags["fid"]) == pytest.approx(winner["mean"], abs=1e-3)
    uri = f"sqlite:///{tmp}/mlflow.db"
    code = main(["sample", "--model-uri", "models:/tiny-gen@champion", "--tracking-uri", uri,
                 "--num", "16", "--out", str(tmp / "grid.png")])
    assert code == 0 and (tmp / "grid.png").is_file()
    capsys.readouterr()
    assert main(["runs", "best", "--experiment", "sw", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert winner["run_id"] in out.splitlines()[0] and "models:/tiny-gen@champion" in out
    assert "[reeval_fid_mean, min]" in out and "seeds 124, 125" in out


def test_sweep_cli_output(sweep, capsys):
    """The printed summary (from the same sweep's result): table of the re-evaluated trials,
    winner with mean ± std, champion URI, and the `mlflow ui` line."""
    from raygan.cli.tune import TABLE_WIDTH, print_sweep

    tmp, cfg, summary = sweep
    assert print_sweep(summary) == 0
    out = capsys.readouterr().out
    assert "sweep:       sw  (4 trials:" in out and "re-evaluated the top 2" in out
    assert f"winner:      {summary['winner']['trial_id']}  fid " in out
    assert max(len(line) for line in out.splitlines() if not line.startswith("browse")) <= TABLE_WIDTH
    assert "champion:    models:/tiny-gen@champion" in out
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp}/mlflow.db" in out


def test_diverging_trial_errors_with_its_reason_and_the_sweep_goes_on(ray_local, tmp_path):
    (tmp_path / "space.yaml").write_text(
        "parameters:\n  lr: {choice: [0.0005, 1.0e10], paths: [optim.g_lr, optim.d_lr]}\n")
    cfg = load_config("digits", None, tiny(tmp_path, "loss.name=wgan", "optim.g_betas=[0.0, 0.0]",
                                           "optim.d_betas=[0.0, 0.0]", "train.tick_kimg=0.128"))
    opts = SweepOptions(samples=3, budget_kimg=0.384, scheduler="fifo", seed=0, top_k=1, reeval_seeds=1,
                             storage=str(tmp_path / "runs"), name="div", progress=False)
    summary = driver.run_sweep(pin(cfg), opts, str(tmp_path / "space.yaml"))
    by_lr = {}
    for t in summary["trials"]:
        by_lr.setdefault(t.sampled["optim.g_lr"], []).append(t)
    assert set(by_lr) == {0.0005, 1e10}  # TPE's seeded start: both values drawn
    client = client_for(tmp_path)
    for t in by_lr[1e10]:
        assert t.status == "errored"
        assert t.error.startswith("training diverged: non-finite losses"), t.error
        run = client.get_run(t.run_id)
        assert run.info.status == "FAILED" and "training diverged" in run.data.tags["raygan.error"]
    for t in by_lr[0.0005]:
        assert t.status == "finished" and t.value is not None
    assert summary["counts"]["errored"] == len(by_lr[1e10])
    assert summary["winner"]["trial_id"] in {t.trial_id for t in by_lr[0.0005]}


def test_impossible_resources_are_one_line(ray_local, tmp_path, capsys):
    common = ["tune", "--preset", "digits", "--storage", str(tmp_path / "runs"), *sets(tiny(tmp_path))]
    for extra, pattern in ((["--workers-per-trial", "2", "--cpus-per-worker", "2"],
                            r"cannot place one trial \(2 workers x \{'CPU': 2.0\}\): it has 1 node with 2 CPUs"),
                           (["--gpus-per-worker", "1"], r"cannot place one trial .*'GPU': 1.0.* 0 GPUs")):
        code = main(common + extra)
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("raygan: error: "), err
        assert re.search(pattern, lines[0]), lines[0]
    code = main(["tune", "--resume", "nothing-here", "--storage", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "no sweep named 'nothing-here'" in err and len(err.strip().splitlines()) == 1


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(ray_local, tmp_path, capsys):
    """`raygan tune` in a subprocess gets Ctrl-C (SIGINT) after the first of its two trials finished;
    `raygan tune --resume` completes the sweep: the finished trial logs nothing after the
    interrupt, no trial gets a second MLflow run, all trials end and a champion is chosen."""
    (tmp_path / "space.yaml").write_text(
        "parameters:\n  optim.g_lr: {loguniform: [1.0e-4, 3.0e-3]}\n  optim.d_lr: {loguniform: [1.0e-4, 3.0e-3]}\n")
    storage = str(tmp_path / "runs")
    args = [str(Path(sys.executable).parent / "raygan"), "tune", "--preset", "digits", "--address", "local",
            "--search-space", str(tmp_path / "space.yaml"), "--samples", "2", "--max-concurrent", "1",
            "--budget-kimg", "0.768", "--scheduler", "fifo", "--tick-kimg", "0.128", "--top-k", "1",
            "--reeval-seeds", "1", "--storage", storage, "--name", "res", *sets(tiny(tmp_path))]
    env = {**os.environ, "RAYGAN_CACHE": str(ray_local), "RAY_DEDUP_LOGS": "0"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(tmp_path))
    finished_line = None
    try:
        for line in proc.stderr:
            if line.startswith("[tune]") and " finished " in line:
                finished_line = line
                break
        assert finished_line, "no trial finished"
        interrupted_at = time.time()
        proc.send_signal(signal.SIGINT)  # at once: the second trial (6 evaluated ticks) has yet to start or end
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert f"resume with: raygan tune --resume res --storage {storage}" in err
    first_trial = finished_line.split()[1]

    client = client_for(tmp_path)
    exp = client.get_experiment_by_name("res")

    def children():
        return [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("raygan.trial_id")]

    before = {r.data.tags["raygan.trial_id"]: r for r in children()}
    assert first_trial in before and before[first_trial].info.status == "FINISHED"

    code = main(["tune", "--resume", "res", "--storage", storage, "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "sweep:       res  (2 trials: 2 finished" in out, out
    after = children()
    ids = [r.data.tags["raygan.trial_id"] for r in after]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 2  # one run per trial, reused on resume
    first = next(r for r in after if r.data.tags["raygan.trial_id"] == first_trial)
    history = client.get_metric_history(first.info.run_id, "kimg")
    assert [m.value for m in history] == pytest.approx([0.128 * i for i in range(1, 7)])  # trained once
    assert max(m.timestamp for m in history) / 1000 < interrupted_at
    assert "raygan.retried" not in first.data.tags
    for r in after:
        assert r.info.status == "FINISHED"
        assert client.get_metric_history(r.info.run_id, "kimg")[-1].value == pytest.approx(0.768)
    parent = client.get_run(next(r for r in client.search_runs([exp.experiment_id])
                                 if r.data.tags.get("raygan.role") == "sweep").info.run_id)
    assert parent.info.status == "FINISHED" and "raygan.resumed" in parent.data.tags
    assert client.get_model_version_by_alias("tiny-gen", "champion").run_id == parent.data.tags["raygan.winner_run_id"]


def test_trial_with_two_ray_train_workers(ray_local, tmp_path):
    """W=2: the trial builds a TorchTrainer (gloo) whose rank 0 reports through
    TuneReportCallback; its checkpoint path is re-evaluated; the values reach both ranks."""
    (tmp_path / "space.yaml").write_text("parameters:\n  optim.g_lr: {loguniform: [1.0e-4, 3.0e-3]}\n")
    cfg = load_config("digits", None, tiny(tmp_path))
    opts = SweepOptions(samples=1, workers_per_trial=2, cpus_per_worker=0.5, budget_kimg=0.256,
                             scheduler="fifo", tick_kimg=0.128, top_k=1, reeval_seeds=1,
                             storage=str(tmp_path / "runs"), name="w2", progress=False)
    summary = driver.run_sweep(pin(cfg), opts, str(tmp_path / "space.yaml"))
    (t,) = summary["trials"]
    assert t.status == "finished", t.error
    assert t.applied["applied_g_lr"] == t.sampled["optim.g_lr"] and t.applied["applied_batch_size"] == 32
    assert isinstance(t.checkpoint, str) and f"/w2/{plans.TRAINERS_DIR}/train-{t.trial_id}/" in t.checkpoint
    assert summary["winner"]["kimg"] == pytest.approx(0.256)
    run = client_for(tmp_path).get_run(t.run_id)
    assert run.data.tags["raygan.workers"] == "2" and run.data.params["applied.g_lr"] == str(t.sampled["optim.g_lr"])


def test_sweep_options_are_bounded_and_dry_run_checks_them(tmp_path, capsys):
    """`--seed -1` passed --dry-run, then killed the real sweep with a traceback (numpy's seed
    range) after its parent MLflow run was created. Every numeric option is checked up front."""
    common = ["tune", "--preset", "digits", "--storage", str(tmp_path / "runs"), "--name", "b", *sets(tiny(tmp_path))]
    for extra, pattern in ((["--seed", "-1"], r"--seed must not be negative, got -1"),
                           (["--seed", str(2**32)], r"--seed must be at most 4294967295, got 4294967296"),
                           (["--budget-kimg", "inf"], r"--budget-kimg must be a finite number"),
                           (["--cpus-per-worker", "nan"], r"--cpus-per-worker must be a finite number"),
                           (["--reduction-factor", "inf"], r"--reduction-factor must be a finite number"),
                           (["--reeval-seeds", "100000"], r"--reeval-seeds must be at most 1000")):
        for dry in (["--dry-run"], []):
            code = main(common + extra + dry)
            lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
            assert code == 2 and len(lines) == 1 and lines[0].startswith("raygan: error: "), lines
            assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()
    code = main(common + ["--seed", str(2**32 - 1), "--dry-run"])
    assert code == 0 and "TPESampler(seed=4294967295" in capsys.readouterr().out


def test_a_sweep_failing_after_its_parent_run_marks_it_failed_and_frees_its_name(ray_local, tmp_path):
    """A failure after the parent run exists (here: the options as the old --dry-run let them
    through, seed -1, which Optuna refuses) leaves the parent FAILED with the reason, not RUNNING;
    no Tune state was saved, so the plan is taken back and the same --name runs afterwards."""
    (tmp_path / "space.yaml").write_text("parameters:\n  optim.g_lr: {loguniform: [1.0e-4, 3.0e-3]}\n")
    cfg = pin(load_config("digits", None, tiny(tmp_path)))
    opts = SweepOptions(samples=1, budget_kimg=0.128, scheduler="fifo", tick_kimg=0.128, storage=str(tmp_path / "runs"),
                        name="again", progress=False, finish=False)
    with pytest.raises(ValueError, match="Seed must be between 0 and 2\\*\\*32 - 1"):
        driver.run_sweep(cfg, opts.model_copy(update={"seed": -1}), str(tmp_path / "space.yaml"))
    client = client_for(tmp_path)
    exp = client.get_experiment_by_name("again")
    (parent,) = client.search_runs([exp.experiment_id])
    assert parent.info.status == "FAILED"
    assert "Seed must be between" in parent.data.tags["raygan.error"]
    assert parent.data.tags["raygan.sweep_status"] == "failed: no trial started; run it again (the name again is free)"
    assert not (tmp_path / "runs" / "again").exists()

    summary = driver.run_sweep(cfg, opts, str(tmp_path / "space.yaml"))
    assert [t.status for t in summary["trials"]] == ["finished"]
    assert client.get_run(summary["parent_run_id"]).info.status == "FINISHED"
    assert client.get_run(parent.info.run_id).info.status == "FAILED"
