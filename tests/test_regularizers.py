import math

import pytest
import torch
from torch import nn

from raygan.errors import ConfigError
from raygan.regularizers import REGULARIZERS


class LinearCritic(nn.Module):
    """D(x) = w . flatten(x): its input gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float32))

    def forward(self, x, y=None):
        return x.flatten(1) @ self.w


class Quadratic(nn.Module):
    """D(x) = 0.5 * a * ||x||^2 (times (y + 1) if labels are given): gradient a * x."""

    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(a)))

    def forward(self, x, y=None):
        out = 0.5 * self.a * x.flatten(1).square().sum(1)
        return out if y is None else out * (y + 1)


def test_names_and_defaults():
    assert REGULARIZERS.names() == ["clip", "none", "r1", "wgan-gp"]
    none = REGULARIZERS.build("none")
    assert none.every == 1 and none.penalty(None, None, None) is None
    gp, r1, clip = REGULARIZERS.build("wgan-gp"), REGULARIZERS.build("r1"), REGULARIZERS.build("clip")
    assert (gp.weight, gp.every) == (10.0, 1)
    assert (r1.weight, r1.every) == (10.0, 16)
    assert (clip.value, clip.every) == (0.01, 1)


def test_gp_linear_critic_closed_form():
    # w = (2, 1, 2, 0): ||w|| = 3, so GP = 10 * (3 - 1)^2 = 40 for any interpolate
    D = LinearCritic([2.0, 1.0, 2.0, 0.0])
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    gp = REGULARIZERS.build("wgan-gp").penalty(D, real, fake)
    assert gp.item() == pytest.approx(40.0, rel=1e-6)
    gp.backward()  # d/dw 10 (||w|| - 1)^2 = 20 (||w|| - 1) w / ||w|| = (40 / 3) w
    torch.testing.assert_close(D.w.grad, torch.tensor([80 / 3, 40 / 3, 80 / 3, 0.0]))


def test_gp_interpolates_with_per_sample_uniform_eps():
    # D = 0.5||x||^2 -> grad = x_hat = eps * real + (1 - eps) * fake; real = 1s, fake = 0s
    # so ||grad|| = eps * ||1|| = 2 eps for 4 pixels; GP = 10 * mean((2 eps - 1)^2)
    D = Quadratic(1.0)
    real, fake = torch.ones(3, 1, 2, 2), torch.zeros(3, 1, 2, 2)
    torch.manual_seed(7)
    gp = REGULARIZERS.build("wgan-gp", weight=10.0).penalty(D, real, fake)
    torch.manual_seed(7)
    eps = torch.rand(3).tolist()
    assert gp.item() == pytest.approx(10 * sum((2 * e - 1) ** 2 for e in eps) / 3, rel=1e-5)


def test_gp_does_not_backprop_into_fake():
    D = LinearCritic([1.0, 0.0, 0.0, 0.0])
    fake = torch.randn(2, 1, 2, 2, requires_grad=True)
    REGULARIZERS.build("wgan-gp").penalty(D, torch.randn(2, 1, 2, 2), fake).backward()
    assert fake.grad is None


def test_r1_closed_form_and_lazy_multiplier():
    # D = 0.5 a ||x||^2, a = 0.5: ||grad||^2 = a^2 ||x||^2 = 0.25 * (4, 16) -> mean 2.5
    # R1 = gamma / 2 * 2.5 = 12.5 with gamma = 10; lazy every = 16 multiplies by 16 -> 200
    D = Quadratic(0.5)
    real = torch.stack([torch.ones(1, 2, 2), 2 * torch.ones(1, 2, 2)])
    eager = REGULARIZERS.build("r1", weight=10.0, every=1)
    lazy = REGULARIZERS.build("r1", weight=10.0, every=16)
    assert eager.penalty(D, real, None).item() == pytest.approx(12.5, rel=1e-6)
    p = lazy.penalty(D, real, None)
    assert lazy.every == 16 and p.item() == pytest.approx(200.0, rel=1e-6)
    p.backward()  # d/da of 16 * 5 * a^2 * mean||x||^2 = 16 * 5 * 2a * 10 = 800
    assert D.a.grad.item() == pytest.approx(800.0, rel=1e-6)
    assert not real.requires_grad  # the caller's tensor is left alone


def test_r1_passes_labels_to_d():
    # with y: D = 0.5 a ||x||^2 (y + 1): ||grad||^2 = ((y + 1) a)^2 ||x||^2
    D = Quadratic(1.0)
    real = torch.ones(2, 1, 1, 1)
    y = torch.tensor([0, 2])
    p = REGULARIZERS.build("r1", weight=2.0, every=1).penalty(D, real, None, y)
    assert p.item() == pytest.approx((1 + 9) / 2, rel=1e-6)  # gamma/2 = 1


def test_clip_bounds_parameters():
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    clip = REGULARIZERS.build("clip", value=0.05)
    assert clip.penalty(D, None, None) is None
    before = [p.detach().clone() for p in D.parameters()]
    clip.after_d_step(D)
    for b, p in zip(before, D.parameters()):
        assert p.abs().max() <= 0.05
        torch.testing.assert_close(p.detach(), b.clamp(-0.05, 0.05), rtol=0, atol=0)
    assert D[1].weight.eq(0.05).all()  # BN weights start at 1, clipped like everything else


def test_non_clip_after_step_is_noop():
    D = nn.Linear(2, 1)
    w = D.weight.detach().clone()
    for name in ["none", "wgan-gp", "r1"]:
        REGULARIZERS.build(name).after_d_step(D)
    assert torch.equal(D.weight, w)


def test_bad_kwargs():
    with pytest.raises(ConfigError, match="every must be an int >= 1"):
        REGULARIZERS.build("r1", every=0)
    with pytest.raises(ConfigError, match="value must be > 0"):
        REGULARIZERS.build("clip", value=0)
    with pytest.raises(ConfigError, match="weight must be >= 0"):
        REGULARIZERS.build("wgan-gp", weight=-1)
    with pytest.raises(ConfigError, match="regularizer 'wgan-gp'.*gamma"):
        REGULARIZERS.build("wgan-gp", gamma=1)
    with pytest.raises(ConfigError, match="unknown regularizer 'gp'; choose one of: clip, none, r1, wgan-gp"):
        REGULARIZERS.build("gp")


def test_gp_on_real_model_trains_d():
    """End to end on a small conv D: the penalty is finite and gives D parameters gradients."""
    from raygan.models import build_models

    torch.manual_seed(0)
    _, D = build_models("dcgan", resolution=28, channels=1, z_dim=4, d={"ndf": 4, "norm": "none"})
    real, fake = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    for name in ["wgan-gp", "r1"]:
        D.zero_grad()
        p = REGULARIZERS.build(name).penalty(D, real, fake)
        assert math.isfinite(p.item()) and p.item() > 0
        p.backward()
        # weights only: a piecewise-linear D's input gradient is locally constant in its biases
        weights = [q for n, q in D.named_parameters() if n.endswith("weight")]
        assert weights and all(q.grad is not None and q.grad.abs().sum() > 0 for q in weights)
