"""StyleGAN2 trained by the generate task: path length as G's lazy "Greg" phase (its optimiser
corrected as StyleGAN2-ADA's), style mixing, w-average tracking copied into the EMA generator,
conditional through the label embedding, with ADA + DiffAugment and lazy R1; and an exact resume
(every network, buffer, optimiser, pl_mean and the G clock), on a generator a few channels wide."""
import pytest
import torch

from raygan.config import load_config
from raygan.engine.checkpoint import list_checkpoints
from raygan.engine.loop import Trainer

from helpers import Preempted, StopAt, assert_bitwise_equal, params

TOTAL = 0.064  # 8 steps of 8 images
TINY = ["data.name=digits", "data.resolution=32", "data.limit=64", "model.arch=stylegan2", "model.z_dim=8",
        "model.conditional=true",
        "model.g={w_dim: 8, mapping_layers: 1, fmaps: 0.002, channel_max: 8, pl_every: 2, mixing_prob: 0.9}",
        "model.d={fmaps: 0.002, channel_max: 8, mapping_layers: 1, mbstd_group: 4}",
        "optim.batch_size=8", "optim.g_lr=0.0025", "optim.d_lr=0.0025", "optim.g_betas=[0.0, 0.99]",
        "optim.d_betas=[0.0, 0.99]", "ema.half_life_kimg=0.5", "ema.rampup=0.05",
        "augment.diffaugment=translation", "augment.ada={target: 0.6, speed_kimg: 1, interval: 1}",
        "regularizer.name=r1", "regularizer.kwargs={weight: 0.1, every: 3}", "train.tick_kimg=0.032",
        "train.snapshot_ticks=1", "train.eval_ticks=1", "train.sample_ticks=100", "train.keep_checkpoints=4",
        "tracking.enabled=false", f"train.total_kimg={TOTAL}"]


def state(tr):
    t = tr.task
    return {"networks": {k: params(m) for k, m in t.networks.items()},
            "optim": {k: o.state_dict() for k, o in t.optimizers.items()},
            "task": t.state(), "nimg": tr.nimg}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cfg = load_config(None, None, TINY)
    root = tmp_path_factory.mktemp("sg2")
    one = Trainer(cfg, root / "one", evaluator=None)
    one.run()
    half = round(TOTAL * 500)
    first = Trainer(cfg, root / "two", reporter=StopAt(half), evaluator=None)
    with pytest.raises(Preempted):
        first.run()
    second = Trainer(cfg, root / "resumed", evaluator=None)
    second.load(list_checkpoints(root / "two" / "checkpoints")[-1])
    second.run()
    return one, second


def test_resume_is_bitwise_exact_with_path_length_mixing_ada_and_r1(runs):
    one, resumed = runs
    a, b = state(one), state(resumed)
    assert a["task"]["g_steps"] == 8 and "g_regularizer" in a["task"] and "augment" in a["task"]
    assert_bitwise_equal(a, b)


def test_path_length_runs_as_gs_lazy_phase(runs):
    one, _ = runs
    t = one.task
    assert [p.name for p in t.phase_list] == ["Gmain", "Greg", "Dmain", "Dreg"]
    assert t.phase_list[1].every == 2 and not t.phase_list[1].main
    # G's optimiser corrected for the lazy phase (c = 2/3) as D's is for R1 every 3 (c = 3/4)
    g, d = t.opt_g.param_groups[0], t.opt_d.param_groups[0]
    assert g["lr"] == pytest.approx(0.0025 * 2 / 3) and g["betas"][1] == pytest.approx(0.99 ** (2 / 3))
    assert d["lr"] == pytest.approx(0.0025 * 3 / 4)
    pl_mean = float(t.g_regularizer.pl_mean)
    # 4 penalties (every 2nd of 8 G steps), each moving pl_mean 1% of the way toward the batch's mean length
    assert 0 < pl_mean < 0.05 * 10


def test_w_average_is_tracked_and_reaches_the_ema_generator(runs):
    one, _ = runs
    G, G_ema = one.task.G_plain, one.task.G_ema
    assert G.w_avg.abs().sum() > 0
    assert torch.equal(G_ema.w_avg, G.w_avg)  # EMA copies buffers
    assert one.task.eval_network() is G_ema and not G_ema.training


def test_conditional_generator_follows_its_labels(runs):
    one, _ = runs
    G = one.task.G_ema
    z = torch.randn(4, 8)
    a = G(z, torch.zeros(4, dtype=torch.long))
    b = G(z, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(a, b) and G.mapping.embed is not None


def test_without_path_length_there_is_no_greg_phase():
    cfg = load_config(None, None, [*TINY, "model.g={w_dim: 8, mapping_layers: 1, fmaps: 0.002, channel_max: 8, "
                                          "pl_weight: 0}"])
    tr = Trainer(cfg, None, evaluator=None)
    assert [p.name for p in tr.task.phase_list] == ["Gmain", "Dmain", "Dreg"]
    assert tr.task.g_regularizer is None and tr.task.opt_g.param_groups[0]["lr"] == 0.0025
