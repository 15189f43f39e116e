"""A sweep's re-evaluation of its top trials draws new evaluation randomness per seed: for a repair
run, new test degradations (not the proxy's `repair.eval_seed` again and again); a deterministic
evaluation is run once and says so instead of reporting a std of 0."""
import math

import pytest

from raygan.config import load_config
from raygan.distributed.sweep.champion import reevaluate
from raygan.distributed.sweep.plan import fresh_seeds
from raygan.engine.checkpoint import list_checkpoints
from raygan.tasks import task_class
from raygan.engine.loop import Trainer


def repair_cfg(degradations="noise:sigma=0.1..0.4"):
    return load_config(None, None, [
        "task=repair", "data.name=digits", "data.resolution=28", "model.arch=unet", "model.g={ngf: 8}",
        "model.d={ndf: 8}", "loss.name=lsgan", "optim.batch_size=16", f"repair.degradations={degradations}",
        "train.tick_kimg=0.016", "train.total_kimg=0.016", "train.snapshot_ticks=1", "train.sample_ticks=100",
        "eval.metrics=[psnr,ssim,fid]", "eval.num_samples=16", "eval.final_num_samples=16", "eval.batch_size=16",
        "tracking.enabled=false"])


@pytest.fixture(scope="module")
def repair_run(tmp_path_factory):
    cfg = repair_cfg()
    run = tmp_path_factory.mktemp("reeval") / "r"
    Trainer(cfg, run, evaluator=None).run()
    return cfg, list_checkpoints(run / "checkpoints")[-1]


def test_repair_reevaluation_draws_new_degradations_per_seed(repair_run):
    cfg, ckpt = repair_run
    e = reevaluate(cfg.to_dict(), str(ckpt), "psnr", [11, 12, 13], 16)
    assert len(set(e["values"])) == 3, e["values"]  # three different degraded test sets
    assert e["std"] > 0 and math.isclose(e["mean"], sum(e["values"]) / 3)
    assert e["protocol"]["seeds"] == [11, 12, 13] and e["protocol"]["degradations"]["seed"] == [11, 12, 13]
    again = reevaluate(cfg.to_dict(), str(ckpt), "psnr", [11], 16)
    assert again["values"] == e["values"][:1]  # a seed fixes its degradations


def test_a_deterministic_evaluation_runs_once_without_a_std(repair_run):
    cfg, ckpt = repair_run
    fixed = repair_cfg("blur:sigma=1.0")  # nothing drawn: every seed degrades alike
    assert not task_class("repair").eval_uses_seed(fixed) and task_class("repair").eval_uses_seed(cfg)
    assert not task_class("translate").eval_uses_seed(cfg) and task_class("generate").eval_uses_seed(cfg)
    e = reevaluate(fixed.to_dict(), str(ckpt), "psnr", [11, 12, 13], 16)
    assert len(e["values"]) == 1 and e["std"] is None and e["protocol"]["seeds"] == [11]
    assert "draws nothing at random" in e["protocol"]["statistic"]


def test_reevaluation_seeds_avoid_the_proxys_seeds():
    cfg = repair_cfg().model_copy(update={"eval": repair_cfg().eval.model_copy(update={"seed": 2022})})
    assert cfg.repair.eval_seed == 2024
    assert fresh_seeds(cfg, 3) == [2023, 2025, 2026]


def test_each_metric_is_shown_with_its_own_protocol_in_the_sweep_summary(repair_run, capsys):
    from raygan.cli.tune import print_sweep
    from raygan.metric_names import protocol_text

    cfg, ckpt = repair_run
    e = reevaluate(cfg.to_dict(), str(ckpt), "psnr", [11, 12], 16)
    psnr, fid = protocol_text("psnr", e["protocol"]), protocol_text("fid", e["protocol"])
    assert "degraded by noise(sigma=0.1..0.4" in psnr and "seeds 11, 12" in psnr and "extractor" not in psnr
    assert "extractor fmnist-cnn@" in fid and "16 repaired vs 16 digits:test[:16]@28px" in fid
    row = {"trial_id": "t1", "run_id": None, "proxy": 20.0, "kimg": 0.016, "status": "finished", "sampled": {}, **e}
    print_sweep({"name": "s", "trials": [], "counts": {}, "objective": "psnr", "top": [row], "winner": row})
    out = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert f"protocol: psnr: {psnr}" in out  # whole, and PSNR's own (not the FID extractor's)
