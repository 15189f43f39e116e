"""The GAN step's maths, against closed forms: R1 on clean reals through the augmentation, the
lazy-regularisation correction, conditional WGAN-GP labels, EMA with n_critic > 1."""
import pytest
import torch
from torch import nn

from raygan.config import load_config
from raygan.engine.device import make_optimizer
from raygan.engine.ema import ema_beta, make_ema
from raygan.losses import LOSSES
from raygan.regularizers import REGULARIZERS
from raygan.tasks.generate.step import GANStep
from raygan.engine.loop import Trainer


class LinearD(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so penalties have closed forms."""

    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape))
        self.seen_labels = []

    def forward(self, x, y=None):
        self.seen_labels.append(None if y is None else y.clone())
        return (x * self.w).flatten(1).sum(1)


class TinyG(nn.Module):
    def __init__(self, z_dim=4, num_classes=0):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.lin = nn.Linear(z_dim, 4)

    def forward(self, z, y=None):
        return torch.tanh(self.lin(z)).view(-1, 1, 2, 2)


def make_step(reg, augment=None, n_critic=1, num_classes=0, D=None, G=None, **kw):
    G = G or TinyG(num_classes=num_classes)
    D = D or LinearD((1, 2, 2))
    dev = torch.device("cpu")
    return GANStep(G=G, D=D, loss=LOSSES.build("ns"), regularizer=reg, diffaugment=augment,
                   opt_g=make_optimizer(G.parameters(), 1e-3, (0.5, 0.9), dev),
                   opt_d=make_optimizer(D.parameters(), 1e-3, (0.5, 0.9), dev), n_critic=n_critic,
                   z_dim=4, num_classes=num_classes, device=dev, **kw)


def test_r1_is_taken_on_clean_reals_through_a_fresh_augmentation():
    torch.manual_seed(0)
    calls = []

    def double(x):  # a deterministic "augmentation" with a known Jacobian (2 I)
        calls.append(x.shape[0])
        return 2 * x

    reg = REGULARIZERS.build("r1", weight=1.0, every=2)
    step = make_step(reg, augment=double)
    for g in step.opt_d.param_groups:
        g["lr"] = 0.0  # keep w fixed, so the penalty has a closed form
    D = step.D_plain
    real = torch.rand(3, 1, 2, 2)
    step.d_step(real, None)  # d_steps = 1: no penalty phase
    assert calls == [3, 3]
    w = D.w.detach().clone()
    step.d_step(real, None)  # d_steps = 2: the lazy R1 phase runs, with its own augmentation draw
    assert calls == [3, 3, 3, 3, 3]
    # grad_x D(2x) = 2w, so R1 = weight/2 * every * |2w|^2; on the augmented input it would be |w|^2
    expected = 0.5 * 1.0 * 2 * (2 * w).square().sum()
    reg_mean = step.stats.read()["reg"]
    assert reg_mean * 2 == pytest.approx(float(expected), rel=1e-5)  # averaged over the 2 D steps


def test_lazy_r1_corrects_the_d_optimiser_as_stylegan2_ada():
    cfg = load_config("digits", None, ["regularizer.name=r1", "regularizer.kwargs={weight: 1.0, every: 4}",
                                        "optim.d_lr=0.001", "optim.d_betas=[0.5, 0.99]", "tracking.enabled=false"])
    t = Trainer(cfg, None, evaluator=None)
    group = t.task.opt_d.param_groups[0]
    assert group["lr"] == pytest.approx(0.001 * 4 / 5)
    assert group["betas"] == pytest.approx((0.5 ** 0.8, 0.99 ** 0.8))
    assert t.task.opt_g.param_groups[0]["lr"] == cfg.optim.g_lr  # G is not regularised
    t.task.apply_optim_config()  # as after a resume: the correction stays
    assert t.task.opt_d.param_groups[0]["lr"] == pytest.approx(0.001 * 4 / 5)
    plain = Trainer(load_config("digits", None, ["optim.d_lr=0.001", "tracking.enabled=false"]), None, evaluator=None)
    assert plain.task.opt_d.param_groups[0]["lr"] == 0.001  # non-lazy: untouched, bit for bit


@pytest.mark.parametrize("n_critic", [1, 3])
def test_conditional_wgan_gp_gives_each_fake_the_real_label(n_critic):
    torch.manual_seed(0)
    D = LinearD((1, 2, 2))
    step = make_step(REGULARIZERS.build("wgan-gp", weight=10.0), num_classes=5, D=D, n_critic=n_critic)
    y_real = torch.tensor([0, 1, 2, 3, 4, 0])

    def next_real():
        return torch.rand(6, 1, 2, 2), y_real

    step.step(next_real, 0)
    # per D step: D(real, y), D(fake, y_fake), then the penalty's D(x_hat, y); then G's D(fake, y_fake)
    d_calls = D.seen_labels[: 3 * n_critic]
    for i in range(n_critic):
        real_y, fake_y, interp_y = d_calls[3 * i: 3 * i + 3]
        assert torch.equal(fake_y, real_y) and torch.equal(interp_y, real_y)


def test_without_gp_fake_labels_stay_uniform_draws():
    torch.manual_seed(0)
    D = LinearD((1, 2, 2))
    step = make_step(REGULARIZERS.build("none"), num_classes=5, D=D)
    y_real = torch.zeros(64, dtype=torch.long)
    step.step(lambda: (torch.rand(64, 1, 2, 2), y_real), 0)
    assert len(torch.unique(D.seen_labels[1])) > 1


def test_ema_half_life_counts_the_images_of_every_critic_step():
    torch.manual_seed(0)
    G = TinyG()
    ema = make_ema(G)
    step = make_step(REGULARIZERS.build("none"), G=G, n_critic=4, G_ema=ema, ema_half_life_kimg=0.1,
                     global_batch=8)
    before = [p.detach().clone() for p in ema.parameters()]
    step.step(lambda: (torch.rand(8, 1, 2, 2), None), 10_000)
    beta = ema_beta(8 * 4, 0.1, 10_000, None)  # 32 real images per G step
    assert beta == pytest.approx(0.5 ** (32 / 100))
    for b, e, g in zip(before, ema.parameters(), G.parameters()):
        torch.testing.assert_close(e, b + (g.detach() - b) * (1 - beta), rtol=0, atol=1e-6)
