"""The training engine: exact resume, hyperparameters reaching the optimisers, divergence,
checkpoint integrity, EMA half-life."""
import shutil

import pytest
import torch

from raygan.config import load_config
from raygan.engine.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from raygan.engine.ema import ema_beta
from raygan.engine.loop import Trainer
from raygan.errors import CheckpointError, DivergenceError
from raygan.losses import LOSSES

from conftest import needs_fmnist
from helpers import assert_bitwise_equal, params
from helpers import engine_tiny as tiny


class RecordingEvaluator:
    """A real metric pass would be slow here; this one still draws from the G it is given
    (with its own generator, as the real evaluator does) to prove it cannot disturb training."""

    def __init__(self):
        self.calls = 0

    def __call__(self, G, n):
        self.calls += 1
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            G.eval()
            x = G(torch.randn(8, G.z_dim, generator=g), None)
        return {"fid": float(x.abs().mean())}, {"extractor": "test", "num_samples": n}


def test_exact_resume_is_bitwise(tmp_path):
    T = 0.768  # kimg: 24 steps of 32 images, 3 ticks
    one = Trainer(tiny(f"train.total_kimg={2 * T}"), tmp_path / "one", evaluator=RecordingEvaluator())
    one.run()
    first = Trainer(tiny(f"train.total_kimg={T}"), tmp_path / "two", evaluator=RecordingEvaluator())
    first.run()
    ckpt = list_checkpoints(tmp_path / "two" / "checkpoints")[-1]
    second = Trainer(tiny(f"train.total_kimg={2 * T}"), tmp_path / "two", evaluator=RecordingEvaluator())
    second.load(ckpt)
    assert second.nimg == first.nimg
    second.run()
    assert one.nimg == second.nimg
    assert_bitwise_equal(params(one.task.G_plain), params(second.task.G_plain))
    assert_bitwise_equal(params(one.task.G_ema), params(second.task.G_ema))
    assert_bitwise_equal(params(one.task.D_plain), params(second.task.D_plain))
    # and it really trained: G moved away from its initialisation
    fresh = Trainer(tiny("train.total_kimg=1"), None, evaluator=None)
    assert any(not torch.equal(a, b) for a, b in zip(params(fresh.task.G_plain).values(), params(one.task.G_plain).values()))


def test_resume_without_checkpointed_rng_would_differ(tmp_path):
    """Control for the test above: the match is not an accident of seeding."""
    T = 0.512
    one = Trainer(tiny(f"train.total_kimg={2 * T}"), tmp_path / "one", evaluator=None)
    one.run()
    first = Trainer(tiny(f"train.total_kimg={T}"), tmp_path / "two", evaluator=None)
    first.run()
    second = Trainer(tiny(f"train.total_kimg={2 * T}"), tmp_path / "two", evaluator=None)
    second.load(list_checkpoints(tmp_path / "two" / "checkpoints")[-1])
    torch.manual_seed(12345)  # spoil the restored noise stream
    second.run()
    assert any(not torch.equal(a, b) for a, b in zip(params(one.task.G_plain).values(), params(second.task.G_plain).values()))


def test_sampled_hyperparameters_reach_optimisers_and_losses():
    cfg = tiny("optim.g_lr=0.00037", "optim.d_lr=0.00011", "optim.g_betas=[0.1, 0.95]",
               "optim.d_betas=[0.0, 0.9]", "optim.n_critic=3", "loss.name=hinge",
               "regularizer.name=wgan-gp", "regularizer.kwargs={weight: 7.5}", "train.total_kimg=1")
    t = Trainer(cfg, None, evaluator=None)
    assert t.task.opt_g.param_groups[0]["lr"] == pytest.approx(0.00037)
    assert t.task.opt_d.param_groups[0]["lr"] == pytest.approx(0.00011)
    assert tuple(t.task.opt_g.param_groups[0]["betas"]) == (0.1, 0.95)
    assert tuple(t.task.opt_d.param_groups[0]["betas"]) == (0.0, 0.9)
    assert isinstance(t.task.loss, LOSSES.get("hinge"))
    assert t.task.regularizer.weight == 7.5
    # one iteration = 3 D steps + 1 G step, and the optimisers' step counters agree
    t.task.step.step(t.task.next_real, 0)
    assert t.task.stats.counted("d_steps") == 3 and t.task.stats.counted("g_steps") == 1
    d_state = next(iter(t.task.opt_d.state.values()))
    g_state = next(iter(t.task.opt_g.state.values()))
    assert int(d_state["step"]) == 3 and int(g_state["step"]) == 1


def test_resume_may_change_learning_rate(tmp_path):
    t = Trainer(tiny("train.total_kimg=0.256"), tmp_path / "r", evaluator=None)
    t.run()
    t2 = Trainer(tiny("train.total_kimg=0.512", "optim.g_lr=0.00005"), tmp_path / "r", evaluator=None)
    t2.load(list_checkpoints(tmp_path / "r" / "checkpoints")[-1])
    assert t2.task.opt_g.param_groups[0]["lr"] == pytest.approx(0.00005)


class NaNLoss:
    critic = False

    def d_loss(self, r, f):
        return (r.mean() + f.mean()) * float("nan")

    def g_loss(self, f):
        return f.mean() * float("nan")


def test_divergence_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
    t = Trainer(tiny("train.total_kimg=0.256"), tmp_path / "d", evaluator=None)
    t.run()
    good = list_checkpoints(tmp_path / "d" / "checkpoints")
    assert len(good) == 1
    before = (good[0] / "state.pt").read_bytes()
    t2 = Trainer(tiny("train.total_kimg=2.0", "train.nan_ticks=2"), tmp_path / "d", evaluator=None)
    t2.load(good[0])
    t2.task.step.loss = NaNLoss()
    with pytest.raises(DivergenceError, match=r"non-finite losses for 2 ticks.*last good checkpoint: .*ckpt-"):
        t2.run()
    assert list_checkpoints(tmp_path / "d" / "checkpoints") == good
    assert (good[0] / "state.pt").read_bytes() == before


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path):
    t = Trainer(tiny("train.total_kimg=0.256"), tmp_path / "c", evaluator=None)
    t.run()
    ckpt = list_checkpoints(tmp_path / "c" / "checkpoints")[-1]
    other = Trainer(tiny("train.total_kimg=0.256", "model.arch=mlp", "model.g={}", "model.d={}"), None,
                    evaluator=None)
    with pytest.raises(CheckpointError, match="made for another model"):
        other.load(ckpt)
    bad = tmp_path / "bad"
    shutil.copytree(ckpt, bad)
    (bad / "state.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        t.load(bad)
    # truncated: the first half of a real file
    data = (ckpt / "state.pt").read_bytes()
    (bad / "state.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        t.load(bad)
    assert (ckpt / "state.pt").read_bytes() == data  # the original is untouched


def test_checkpoint_is_complete_and_pruned(tmp_path):
    t = Trainer(tiny("train.total_kimg=1.024", "train.keep_checkpoints=2"), tmp_path / "p", evaluator=None)
    t.run()
    ckpts = list_checkpoints(tmp_path / "p" / "checkpoints")
    assert [c.name for c in ckpts] == ["ckpt-0000000768", "ckpt-0000001024"]
    st = load_checkpoint(ckpts[-1])
    assert set(st["models"]) == {"G", "D", "G_ema"}
    assert set(st["optim"]) == {"G", "D"} and set(st["scaler"]) == {"G", "D"}
    assert st["progress"]["nimg"] == 1024 and st["task_state"]["sampler"] == t.task.sampler.state_dict()
    assert set(st["rng"]) >= {"torch", "numpy", "python"}
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "p" / "checkpoints").iterdir())


def test_save_checkpoint_replaces_atomically(tmp_path):
    root = tmp_path / "ck"
    save_checkpoint(root, 5, {"models": {"a": torch.ones(2)}}, {"x": torch.zeros(1)}, {}, keep=3)
    save_checkpoint(root, 5, {"models": {"a": torch.full((2,), 2.0)}}, {"x": torch.zeros(1)}, {}, keep=3)
    st = load_checkpoint(root / "ckpt-0000000005")
    assert torch.equal(st["models"]["a"], torch.full((2,), 2.0))
    assert [p.name for p in root.iterdir()] == ["ckpt-0000000005"]


def test_ema_half_life_in_images():
    # after half_life_kimg*1000 images the old average keeps exactly half its weight
    beta = ema_beta(batch_size=100, half_life_kimg=1.0, cur_nimg=10**6, rampup=None)
    assert beta ** 10 == pytest.approx(0.5, rel=1e-12)
    # the same half-life at another batch size gives the same decay per image
    assert ema_beta(50, 1.0, 10**6, None) ** 20 == pytest.approx(0.5, rel=1e-12)
    # ramp-up: early on the half-life is rampup * images seen
    assert ema_beta(100, 10.0, 2000, 0.05) == pytest.approx(0.5 ** (100 / 100))
    assert ema_beta(100, 0.0, 0, None) == 0.0


def test_progress_counts_images_and_ticks(tmp_path):
    t = Trainer(tiny("train.total_kimg=0.64", "optim.n_critic=2", "train.tick_kimg=0.32"), None, evaluator=None)
    s = t.run()
    # each iteration shows 2 x 32 real images; 0.64 kimg -> 10 iterations, 2 ticks
    assert t.nimg == 640 and s["ticks"] == 2 and t.task.step.d_steps == 20


@needs_fmnist
def test_trainer_on_fashion_mnist_with_real_evaluator(in_tmp):
    cfg = load_config(None, None, [
        "model.g={ngf: 8}", "model.d={ndf: 8}", "model.z_dim=16", "data.limit=512", "optim.batch_size=64",
        "train.total_kimg=0.256", "train.tick_kimg=0.128", "eval.num_samples=200", "eval.final_num_samples=300",
        "eval.metrics=[fid, kid, pr, dc, is]", "tracking.enabled=false"])
    t = Trainer(cfg, in_tmp / "run")
    s = t.run()
    final, proto = s["final"], s["protocol"]
    assert set(final) >= {"fid", "kid", "precision", "recall", "density", "coverage", "is"}
    assert final["fid"] > 0 and 1.0 <= final["is"] <= 10.0
    assert proto["num_samples"] == 300 and proto["extractor"] == "fmnist-cnn"
    assert proto["reference"] == "fashion-mnist:test@32px" and proto["reference_count"] == 10000
    assert (in_tmp / "run" / "samples").is_dir()


@pytest.mark.parametrize("variant", [
    ["model.arch=resnet", "model.g={ch: 8}", "model.d={ch: 8}", "model.spectral_norm=true", "model.conditional=true",
     "loss.name=hinge", "optim.n_critic=2"],
    ["model.arch=mlp", "model.g={hidden: [32]}", "model.d={hidden: [32]}", "loss.name=wgan",
     "regularizer.name=clip", "regularizer.kwargs={value: 0.01}", "optim.n_critic=3"],
    ["loss.name=lsgan", "regularizer.name=wgan-gp", "regularizer.kwargs={weight: 10}", "model.d={ndf: 8, norm: none}"],
    ["loss.name=minimax", "model.conditional=true", "regularizer.name=r1", "regularizer.kwargs={weight: 0.1, every: 2}"],
])
def test_every_variant_trains_with_finite_losses(variant):
    cfg = tiny("train.total_kimg=0.256", "train.tick_kimg=0.128", "ema.half_life_kimg=0", *variant)
    t = Trainer(cfg, None, evaluator=None)
    g0, d0 = params(t.task.G_plain), params(t.task.D_plain)
    seen = []
    t.reporter.report = lambda m, checkpoint_dir=None: seen.append(m)
    t.run()
    assert len(seen) == 2 and all(all(map(lambda v: v == v and abs(v) < 1e6, (m["loss_d"], m["loss_g"]))) for m in seen)
    assert any(not torch.equal(a, b) for a, b in zip(g0.values(), params(t.task.G_plain).values()))
    assert any(not torch.equal(a, b) for a, b in zip(d0.values(), params(t.task.D_plain).values()))
    if cfg.regularizer.name == "clip":
        assert max(p.abs().max().item() for p in t.task.D_plain.parameters()) <= 0.01 + 1e-7
    if cfg.regularizer.name in ("wgan-gp", "r1"):
        assert seen[-1]["reg"] > 0


def test_inception_weights_option_only_touches_the_inception_extractor(in_tmp):
    from raygan.tasks.generate.eval import Evaluator

    cfg = tiny("eval.inception_weights=random")
    ev = Evaluator(cfg, torch.device("cpu"), channels=1)
    ev._setup()
    assert ev._extractor.name == "fmnist-cnn" and ev._extractor.weights_hash != "random"
