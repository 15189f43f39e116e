"""Low-data GAN training in the engine: per-class subsets, ADA and DiffAugment as the D step's
registered augmentation (exact resume, p's heuristic in real training), classifier metrics
(CAS, GAN-test) from the generate task's evaluator, and no change at all without ADA."""
import dataclasses

import pytest
import torch
from torch import nn

from raygan.augment import D_AUGMENTATIONS, DAugment, build_d_augment, build_diffaugment
from raygan.config import load_config
from raygan.data import load_dataset
from raygan.data.subsets import per_class_indices
from raygan.engine.checkpoint import list_checkpoints
from raygan.engine.device import make_optimizer
from raygan.engine.reporter import Reporter
from raygan.errors import CheckpointError, ConfigError
from raygan.losses import LOSSES
from raygan.metrics.classify import RECIPE
from raygan.metrics.registry import METRICS, direction, kind
from raygan.regularizers import REGULARIZERS
from raygan.tasks.generate.step import GANStep
from raygan.tasks.generate import GenerateTask
from raygan.tasks.generate.eval import Evaluator
from raygan.tasks.loading import load_model
from raygan.engine.loop import Trainer

from helpers import assert_bitwise_equal, params
from helpers import Recording, conditional_tiny as tiny

FAST = dataclasses.replace(RECIPE, steps=100, batch_size=32)
ADA = "augment.ada={target: 0.6, speed_kimg: 0.5, interval: 2}"


# ---------------------------------------------------------------------------- ADA in training
def test_exact_resume_is_bitwise_with_ada_and_p_survives(tmp_path):
    cfg = lambda kimg: tiny("augment.ada={target: 0.6, speed_kimg: 0.5, interval: 2, p: 0.3}",
                            "augment.diffaugment=translation", "regularizer.name=r1",  # noqa: E731
                            "regularizer.kwargs={weight: 1.0, every: 4}", "data.per_class=20",
                            f"train.total_kimg={kimg}")
    T = 0.512
    one = Trainer(cfg(2 * T), tmp_path / "one", evaluator=None)
    one.run()
    first = Trainer(cfg(T), tmp_path / "two", evaluator=None)
    first.run()
    p_mid = first.task.augment.adaptive.state_dict()
    second = Trainer(cfg(2 * T), tmp_path / "two", evaluator=None)
    assert float(second.task.augment.adaptive.p) == pytest.approx(0.3)  # the config's p before loading
    second.load(list_checkpoints(tmp_path / "two" / "checkpoints")[-1])
    restored = second.task.augment.adaptive.state_dict()
    assert float(p_mid["p"]) != pytest.approx(0.3) and torch.equal(restored["p"], p_mid["p"])  # p survives
    assert torch.equal(restored["acc"], p_mid["acc"]) and restored["d_steps"] == p_mid["d_steps"]
    second.run()
    for name in ("G_plain", "D_plain", "G_ema"):
        assert_bitwise_equal(params(getattr(one.task, name)), params(getattr(second.task, name)))
    a, b = one.task.augment.adaptive.state_dict(), second.task.augment.adaptive.state_dict()
    assert torch.equal(a["p"], b["p"]) and torch.equal(a["acc"], b["acc"])


def test_p_rises_when_d_overfits_a_tiny_subset_and_is_logged_every_tick():
    """50 real images: D soon tells them from fakes (r_t -> 1 > 0.6), so p climbs, at most at
    the configured speed; p and r_t appear in every tick's log."""
    rep = Recording()
    t = Trainer(tiny("augment.ada={target: 0.6, speed_kimg: 2.0, interval: 1}", "data.per_class=5",
                     "model.d={ndf: 16}", "optim.d_lr=0.001", "train.total_kimg=2.048", "train.snapshot_ticks=100"),
                None, reporter=rep, evaluator=None)
    t.run()
    assert len(rep.ticks) == 8 and all("ada_p" in m and "ada_rt" in m for m in rep.ticks)
    ps = [m["ada_p"] for m in rep.ticks]
    assert ps[-1] > 0.4 and ps[-1] > ps[0] and max(ps) <= 2.048 / 2.0 + 1e-6
    assert all(-1 <= m["ada_rt"] <= 1 for m in rep.ticks) and rep.ticks[-1]["ada_rt"] > 0.6
    applied = t.task.applied()
    assert applied["applied_ada"] == 1 and applied["applied_ada_ops"].startswith("xflip,rotate90")
    assert applied["applied_augment"].startswith("ada(ops=") and applied["applied_per_class"] == 5
    assert applied["applied_train_images"] == 50


class ConstD(nn.Module):
    """D(x) = c (+ 0 * x): a discriminator that always answers the same."""

    def __init__(self, c):
        super().__init__()
        self.b = nn.Parameter(torch.tensor(float(c)))

    def forward(self, x, y=None):
        return self.b + 0 * x.flatten(1).sum(1)


class TinyG(nn.Module):
    def __init__(self):
        super().__init__()
        self.z_dim, self.num_classes = 4, 0
        self.lin = nn.Linear(4, 64)

    def forward(self, z, y=None):
        return torch.tanh(self.lin(z)).view(-1, 1, 8, 8)


def const_d_step(c, p0, steps=8):
    torch.manual_seed(0)
    G, D = TinyG(), ConstD(c)
    aug = DAugment([("ada", D_AUGMENTATIONS.build("ada", target=0.6, speed_kimg=0.1, interval=2, p=p0))])
    dev = torch.device("cpu")
    step = GANStep(G=G, D=D, loss=LOSSES.build("ns"), regularizer=REGULARIZERS.build("none"), augment=aug,
                   opt_g=make_optimizer(G.parameters(), 1e-3, (0.5, 0.9), dev),
                   opt_d=make_optimizer(D.parameters(), 0.0, (0.5, 0.9), dev), n_critic=1, z_dim=4,
                   num_classes=0, device=dev, global_batch=10)
    for _ in range(steps):
        step.step(lambda: (torch.rand(10, 1, 8, 8) * 2 - 1, None), 0)
    return float(aug.adaptive.p), aug.end_tick()


def test_p_rises_for_a_d_sure_of_reals_and_falls_otherwise():
    # 8 D steps, adjusted every 2: 4 adjustments of 20 images / 100 = 0.2 each
    p, stats = const_d_step(+10.0, 0.0)
    assert p == pytest.approx(0.8) and stats["ada_rt"] == 1.0
    p, stats = const_d_step(-10.0, 0.9)
    assert p == pytest.approx(0.1) and stats["ada_rt"] == -1.0
    assert const_d_step(+10.0, 0.9)[0] == 1.0  # clamped


def test_diffaugment_through_the_pipeline_draws_exactly_as_before():
    """No ADA: the registered pipeline holding DiffAugment trains the same weights as
    DiffAugment given to the step directly (bench/weights_hash.py checks whole presets)."""
    out = []
    for wrap in (False, True):
        torch.manual_seed(0)
        G, D = TinyG(), nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
        D.forward = (lambda f: lambda x, y=None: f(x).squeeze(1))(D.forward)
        da = build_diffaugment("color,translation,cutout")
        dev = torch.device("cpu")
        step = GANStep(G=G, D=D, loss=LOSSES.build("ns"), regularizer=REGULARIZERS.build("r1", weight=1.0, every=2),
                       augment=DAugment([("diffaugment", da)]) if wrap else None, diffaugment=None if wrap else da,
                       opt_g=make_optimizer(G.parameters(), 1e-3, (0.5, 0.9), dev),
                       opt_d=make_optimizer(D.parameters(), 1e-3, (0.5, 0.9), dev), n_critic=1, z_dim=4,
                       num_classes=0, device=dev)
        for _ in range(5):
            step.step(lambda: (torch.rand(10, 1, 8, 8) * 2 - 1, None), 0)
        out.append((params(G), params(D)))
    assert_bitwise_equal(out[0][0], out[1][0])
    assert_bitwise_equal(out[0][1], out[1][1])


def test_augmentation_is_chosen_by_config():
    assert build_d_augment(tiny().augment) is None
    a = build_d_augment(tiny("augment.diffaugment=translation,cutout", ADA).augment)
    assert [n for n, _ in a.parts] == ["diffaugment", "ada"] and a.adaptive is a.parts[1][1]
    assert a.describe() == "diffaugment(translation,cutout)+ada(ops=xflip,rotate90,xint,scale,rotate,brightness," \
                           "contrast,saturation, target=0.6, speed_kimg=0.5, interval=2)"
    assert build_d_augment(tiny(ADA, "augment.ada.enabled=false").augment) is None  # a value a search can pick
    assert build_d_augment(tiny("augment.ada.target=0.7").augment).adaptive.target == 0.7  # the issue's --set
    with pytest.raises(ConfigError, match="augment.ada.ops"):
        tiny("augment.ada.ops=bogus")


# ---------------------------------------------------------------------------- per-class subsets
def test_per_class_subset_is_the_only_data_on_every_instance_and_after_resume(tmp_path):
    cfg = tiny("data.per_class=7", "data.subset_seed=3", "train.total_kimg=0.256")
    full = load_dataset("digits", split="train", resolution=28)
    want = per_class_indices(full.labels, 7, 3, 10)
    a, b = Trainer(cfg, tmp_path / "a", evaluator=None), Trainer(cfg, None, evaluator=None)
    for t in (a, b):
        assert torch.equal(t.task.subset_indices, want)
        assert torch.equal(t.task.data.images, full.images[want]) and torch.equal(t.task.data.labels, full.labels[want])
    # the sampler only ever yields positions in the subset, and over a few epochs all of them
    seen = torch.cat([a.task.sampler.next() for _ in range(30)])
    assert seen.max() < 70 and set(want[seen].tolist()) == set(want.tolist())
    spec = a.task.model_spec()["train_subset"]
    assert spec["per_class"] == 7 and spec["subset_seed"] == 3 and spec["subset_size"] == 70
    a.run()
    resumed = Trainer(tiny("data.per_class=7", "data.subset_seed=3", "train.total_kimg=0.512"), tmp_path / "a",
                      evaluator=None)
    resumed.load(list_checkpoints(tmp_path / "a" / "checkpoints")[-1])
    assert torch.equal(resumed.task.subset_indices, want)
    other = Trainer(tiny("data.per_class=7", "data.subset_seed=4", "train.total_kimg=0.512"), None, evaluator=None)
    with pytest.raises(CheckpointError, match="another subset"):
        other.load(list_checkpoints(tmp_path / "a" / "checkpoints")[-1])


# ---------------------------------------------------------------------------- classifier metrics
def test_classifier_metrics_are_registered_with_directions():
    assert kind("cas") == kind("gan-test") == "classifier"
    assert direction("cas") == direction("gan_test") == "max"
    with pytest.raises(ConfigError):
        direction("real_acc")  # logged beside them; it does not judge the generator
    from raygan.metrics import compute_metrics

    with pytest.raises(ConfigError, match="classifier metric"):  # not computable from extractor features
        compute_metrics(torch.zeros(4, 2), None, None, ["cas"])
    assert METRICS.meta("cas")["min_samples"] == 100


def test_cas_for_an_unconditional_model_is_one_config_error():
    with pytest.raises(ConfigError) as e:
        tiny("model.conditional=false", "eval.metrics=[fid,cas]")
    assert "conditional" in str(e.value) and "\n" not in str(e.value)


def test_cas_and_gan_test_of_a_tiny_conditional_run_from_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYGAN_CACHE", str(tmp_path / "cache"))
    cfg = tiny("data.per_class=10", "train.total_kimg=0.512", "eval.metrics=[cas, gan-test]")
    t = Trainer(cfg, tmp_path / "r", evaluator=None)
    t.run()
    assert isinstance(GenerateTask.evaluator_for(cfg, torch.device("cpu"), t.task.model_spec()).classifier.metrics,
                      list)
    loaded = load_model(list_checkpoints(tmp_path / "r" / "checkpoints")[-1])  # no trainer: config + weights
    ev = Evaluator(loaded.config, torch.device("cpu"), channels=loaded.model_spec["channels"],
                   model_spec=loaded.model_spec, recipe=FAST)
    values, protocol = ev(loaded.module, 200)
    assert set(values) == {"cas", "gan_test", "real_acc"} and all(0 <= v <= 1 for v in values.values())
    assert values["real_acc"] > 0.5  # 100 steps on 100 real digits: well above chance
    assert protocol["clf_train_count"] == 100 and protocol["clf_test_count"] == 359
    assert protocol["clf_steps"] == 100 and protocol["clf_num_samples"] == 200
    assert "per_class=10" in protocol["clf_train"]
    assert protocol["train_subset_hash"] == t.task.subset["subset_hash"] and "extractor" not in protocol
    again, _ = ev(loaded.module, 200)
    assert again == values  # seeded: the same G gives the same scores


def test_fold_keeps_the_cross_rank_sum_so_rank0s_checkpoint_carries_it():
    """Two ranks' partial observations, folded at a tick end onto rank 0, adjust p exactly as
    unfolded ones would; a rank > 0 loading rank 0's checkpoint drops its copy of them."""
    from raygan.ada import AdaptiveAugment

    def ranks():
        r = [AdaptiveAugment(target=0.6, speed_kimg=0.1, interval=3, p=0.5) for _ in range(2)]
        r[0].observe(torch.tensor([1.0, 2.0, -1.0]))
        r[1].observe(torch.tensor([-1.0, -2.0, -3.0, 4.0]))
        return r

    def allreduce(r):  # what all_reduce_sum returns on every rank
        total = r[0]._acc + r[1]._acc
        return lambda t: total.clone()

    plain = ranks()
    red = allreduce(plain)  # a collective: every rank gets the same sum
    want = [a.adjust(20, red) or float(a.p) for a in plain]
    folded = ranks()
    red = allreduce(folded)
    folded[0].fold(red, keep=True)
    folded[1].fold(red, keep=False)
    assert folded[1]._acc.sum() == 0 and folded[0]._acc.tolist() == [-1.0, 7.0]
    red = allreduce(folded)
    got = [a.adjust(20, red) or float(a.p) for a in folded]
    assert got == want == [pytest.approx(0.3)] * 2  # r_t = -1/7 < 0.6: p falls 20/100
    other = AdaptiveAugment(target=0.6, speed_kimg=0.1, interval=3)
    state = ranks()[0].state_dict()
    other.load_state_dict(state, keep_partial=False)
    assert other._acc.sum() == 0 and float(other.p) == 0.5
