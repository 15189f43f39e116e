"""Discriminator regularisers by name, as separate phases (StyleGAN2-ADA style).

The step runs `penalty(D, real, fake, y)` (already weighted): with `every` 1 inside D's main
phase (one backward), with `every` k > 1 as its own lazy "Dreg" phase every k D steps
(raygan.engine.phases); it calls `after_d_step(D)` after each D optimiser step. D may be
DDP-wrapped: it is only ever called, never looked into. Spectral norm is a model option
(`spectral_norm=True`), not a regulariser.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn

from raygan.errors import ConfigError
from raygan.registry import Registry

REGULARIZERS = Registry("regularizer")


def _positive(name: str, key: str, value: float, allow_zero: bool = True) -> float:
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        raise ConfigError(f"regularizer '{name}': {key} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return float(value)


def _input_grad(D: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor],
                augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, with_output: bool = False):
    """d sum(D(augment(x))) / dx, kept in the graph so the penalty trains D (double backward);
    with `with_output` also D's output."""
    x = x.detach().requires_grad_(True)
    out = D(augment(x) if augment is not None else x, y)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return (grad.flatten(1), out) if with_output else grad.flatten(1)


class Regularizer:
    every: int = 1  # a lazy penalty runs every N-th D step (raygan.engine.phases corrects lr/betas for it)
    #: the penalty is on the non-augmented reals, taken through the D-step augmentation (R1)
    on_clean_reals: bool = False
    #: the penalty pairs each real with a fake (WGAN-GP): a conditional D step gives both one label
    pairs_real_and_fake: bool = False

    def penalty(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, y: Optional[torch.Tensor] = None,
        augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ) -> Optional[torch.Tensor]:
        return None

    def after_d_step(self, D: nn.Module) -> None:
        return None


@REGULARIZERS.register("none")
class NoRegularizer(Regularizer):
    def __repr__(self) -> str:
        return "none()"


@REGULARIZERS.register("wgan-gp")
class GradientPenalty(Regularizer):
    """Gulrajani et al. 2017: weight * E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates
    x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1) per sample (torch's global RNG).
    `y` labels the interpolates: the conditional D step draws the fakes for the real labels."""

    pairs_real_and_fake = True

    def __init__(self, weight: float = 10.0):
        self.weight = _positive("wgan-gp", "weight", weight)

    def penalty(self, D, real, fake, y=None, augment=None):
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
        x_hat = eps * real.detach() + (1 - eps) * fake.detach()
        norm = _input_grad(D, x_hat, y).norm(2, dim=1)
        return self.weight * (norm - 1).square().mean()

    def __repr__(self) -> str:
        return f"wgan-gp(weight={self.weight})"


@REGULARIZERS.register("r1")
class R1(Regularizer):
    """Mescheder et al. 2018: (gamma / 2) * E[||grad_x D(real)||^2], run lazily every `every`
    D steps and multiplied by `every` (StyleGAN2), so the strength does not depend on it. The
    gradient is w.r.t. the non-augmented reals through a fresh draw of the D-step augmentation."""

    on_clean_reals = True

    def __init__(self, weight: float = 10.0, every: int = 16):
        self.weight = _positive("r1", "weight", weight)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"regularizer 'r1': every must be an int >= 1, got {every!r}")
        self.every = every

    def penalty(self, D, real, fake, y=None, augment=None):
        grad, out = _input_grad(D, real, y, augment, with_output=True)
        pen = (0.5 * self.weight * self.every) * grad.square().sum(dim=1).mean()
        if self.every > 1:  # its own phase: D's output biases get no gradient from it; + 0 * out gives them a zero
            pen = pen + out.float().sum() * 0  # one, so a DDP-wrapped D all-reduces every parameter (as NVlabs')
        return pen

    def __repr__(self) -> str:
        return f"r1(weight={self.weight}, every={self.every})"


@REGULARIZERS.register("clip")
class WeightClip(Regularizer):
    """Arjovsky et al. 2017: clamp every D parameter to [-value, value] after each D step,
    a crude Lipschitz bound for the WGAN critic."""

    def __init__(self, value: float = 0.01):
        self.value = _positive("clip", "value", value, allow_zero=False)

    @torch.no_grad()
    def after_d_step(self, D):
        for p in D.parameters():
            p.clamp_(-self.value, self.value)

    def __repr__(self) -> str:
        return f"clip(value={self.value})"


class PathLength:
    """StyleGAN2's path-length regulariser, G's lazy phase ("Greg"; Karras et al. 2020, as
    NVlabs' StyleGAN2Loss): for fakes from batch // batch_shrink latents and y ~ N(0, I) / sqrt(HW),
    a = |J_w^T y| (averaged over the ws), a_mean <- lerp(a_mean, mean(a), decay), and the loss
    weight * every * mean((a - a_mean)^2). `a_mean` is the state a checkpoint keeps. The options
    come from a style-based generator's `path_length` (raygan.models.stylegan2: model.g.pl_*);
    a generator without them, or with weight 0, has none."""

    def __init__(self, weight: float = 2.0, every: int = 4, decay: float = 0.01, batch_shrink: int = 2):
        self.weight, self.every, self.decay = float(weight), int(every), float(decay)
        self.batch_shrink = int(batch_shrink)
        self.pl_mean = torch.zeros(())

    @classmethod
    def for_generator(cls, G: nn.Module) -> Optional["PathLength"]:
        opts = getattr(G, "path_length", None)
        return cls(**opts) if opts and opts.get("weight", 0) > 0 else None

    def batch(self, n: int) -> int:
        return max(1, n // self.batch_shrink)

    def lengths(self, img: torch.Tensor, ws: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """|J_w^T y| per sample: the gradient of sum(img * noise) w.r.t. ws, kept in the graph."""
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        return grads.square().sum(dim=2).mean(dim=1).sqrt()

    def penalty(self, G: nn.Module, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The weighted loss on G(z, y) (G may be DDP-wrapped: it is only called, with return_ws)."""
        img, ws = G(z, y, return_ws=True)
        img = img.float()
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        lengths = self.lengths(img, ws, noise)
        pl_mean = self.pl_mean.to(lengths.device).lerp(lengths.mean(), self.decay)
        self.pl_mean = pl_mean.detach()
        self.last_penalty = (lengths - pl_mean).square().mean().detach()
        # img[:, 0, 0, 0] * 0: every G parameter gets a (zero) gradient, so DDP's all-reduce sees them all
        return (img[:, 0, 0, 0] * 0 + (lengths - pl_mean).square() * (self.weight * self.every)).mean()

    def state_dict(self) -> dict:
        return {"pl_mean": self.pl_mean.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.pl_mean = state["pl_mean"].detach().clone().float()

    def __repr__(self) -> str:
        return f"path-length(weight={self.weight}, every={self.every}, decay={self.decay})"
