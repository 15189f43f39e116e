"""Adversarial losses by name, written on raw logits (means over the batch).

Each is a small class with `d_loss(real_logits, fake_logits)` and `g_loss(fake_logits)`;
`critic` marks losses whose D is a critic (trained n_critic > 1 times per G step).
softplus keeps the log-sigmoid forms stable for large logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from raygan.registry import Registry

LOSSES = Registry("loss")


class Loss:
    critic: bool = False

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _bce_d(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    # -log sigmoid(r) - log(1 - sigmoid(f))
    return F.softplus(-r.float()).mean() + F.softplus(f.float()).mean()


@LOSSES.register("minimax")
class Minimax(Loss):
    """Goodfellow et al. 2014 as the theory states it: G minimises log(1 - D(G(z))).
    Saturates early in training; kept as the reference the others are measured against."""

    def d_loss(self, real_logits, fake_logits):
        return _bce_d(real_logits, fake_logits)

    def g_loss(self, fake_logits):
        return -F.softplus(fake_logits.float()).mean()


@LOSSES.register("ns")
class NonSaturating(Loss):
    """Goodfellow et al.'s practical variant: G maximises log D(G(z)) (strong early gradients)."""

    def d_loss(self, real_logits, fake_logits):
        return _bce_d(real_logits, fake_logits)

    def g_loss(self, fake_logits):
        return F.softplus(-fake_logits.float()).mean()


@LOSSES.register("lsgan")
class LeastSquares(Loss):
    """Mao et al. 2017 with a=0, b=1, c=1 on raw outputs."""

    def d_loss(self, real_logits, fake_logits):
        return 0.5 * ((real_logits.float() - 1).square().mean() + fake_logits.float().square().mean())

    def g_loss(self, fake_logits):
        return 0.5 * (fake_logits.float() - 1).square().mean()


@LOSSES.register("wgan")
class Wasserstein(Loss):
    """Arjovsky et al. 2017: needs a Lipschitz critic (wgan-gp, clip or spectral norm)."""

    critic = True

    def d_loss(self, real_logits, fake_logits):
        return fake_logits.float().mean() - real_logits.float().mean()

    def g_loss(self, fake_logits):
        return -fake_logits.float().mean()


@LOSSES.register("hinge")
class Hinge(Loss):
    """Lim & Ye 2017 / Miyato et al. 2018 (SNGAN, BigGAN)."""

    def d_loss(self, real_logits, fake_logits):
        return F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean()

    def g_loss(self, fake_logits):
        return -fake_logits.float().mean()
