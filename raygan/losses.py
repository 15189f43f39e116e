"""Adversarial losses by name, written on raw logits (means over the batch).

Each is a small registered class with `d_loss(real_logits, fake_logits)` and
`g_loss(fake_logits, real_logits=None)`; its constructor's keyword arguments are its options
(`loss.kwargs` in the config: typed by the signature's defaults, unknown keys refused by
`build_loss`). A loss whose G side compares fakes with reals (relativistic) sets
`g_needs_real`: the step then also passes D's logits on the reals to `g_loss`; the others are
called with the fake logits alone (no extra D forward). `critic` marks losses whose D is a
critic (trained n_critic > 1 times per G step). softplus keeps the log-sigmoid forms stable for
large logits.

Adding a loss is one class here (plus its hand-computed test in tests/test_losses.py).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Mapping, Optional

import torch
import torch.nn.functional as F

from raygan.errors import ConfigError
from raygan.registry import Registry

LOSSES = Registry("loss")


class Loss:
    critic: bool = False
    #: g_loss also needs D's logits on real images (a relativistic loss)
    g_needs_real: bool = False

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: torch.Tensor, real_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError

    def options(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in loss_options(type(self))}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


def loss_options(cls: type) -> Dict[str, Any]:
    """A loss class's options and their defaults, from its constructor's signature."""
    if cls.__init__ is object.__init__:
        return {}
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: p.default for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def build_loss(name: str, kwargs: Optional[Mapping[str, Any]] = None) -> Loss:
    """The loss registered as `name` with its options; an unknown option or a value of the wrong
    type is a one-line ConfigError naming the valid ones."""
    cls = LOSSES.get(name)
    valid = loss_options(cls)
    kwargs = dict(kwargs or {})
    where = f"config: loss.kwargs: loss '{name}'"
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        allowed = ", ".join(f"{k} (default {v!r})" for k, v in valid.items()) or "none"
        raise ConfigError(f"{where} has no option {', '.join(repr(k) for k in unknown)}; valid: {allowed}")
    for k, v in kwargs.items():
        default = valid[k]
        if isinstance(default, float) and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ConfigError(f"{where}: {k} must be a number, got {v!r}")
        if isinstance(default, float):
            kwargs[k] = float(v)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def generator_term(loss: Loss, fake_logits: torch.Tensor, real_logits: Callable[[], torch.Tensor]) -> torch.Tensor:
    """G's adversarial term; `real_logits()` (D on reals, an extra forward) is called only for a
    loss that needs it."""
    if getattr(loss, "g_needs_real", False):
        return loss.g_loss(fake_logits, real_logits())
    return loss.g_loss(fake_logits)


def _bce(x: torch.Tensor, target: float) -> torch.Tensor:
    """mean BCE(sigmoid(x), target) = target * softplus(-x) + (1 - target) * softplus(x)."""
    x = x.float()
    if target == 1.0:
        return F.softplus(-x).mean()
    if target == 0.0:
        return F.softplus(x).mean()
    return (target * F.softplus(-x) + (1.0 - target) * F.softplus(x)).mean()


def _bce_d(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    # -log sigmoid(r) - log(1 - sigmoid(f))
    return F.softplus(-r.float()).mean() + F.softplus(f.float()).mean()


@LOSSES.register("minimax")
class Minimax(Loss):
    """Goodfellow et al. 2014 as the theory states it: G minimises log(1 - D(G(z))).
    Saturates early in training; kept as the reference the others are measured against."""

    def d_loss(self, real_logits, fake_logits):
        return _bce_d(real_logits, fake_logits)

    def g_loss(self, fake_logits, real_logits=None):
        return -F.softplus(fake_logits.float()).mean()


@LOSSES.register("ns")
class NonSaturating(Loss):
    """Goodfellow et al.'s practical variant: G maximises log D(G(z)) (strong early gradients)."""

    def d_loss(self, real_logits, fake_logits):
        return _bce_d(real_logits, fake_logits)

    def g_loss(self, fake_logits, real_logits=None):
        return F.softplus(-fake_logits.float()).mean()


@LOSSES.register("lsgan")
class LeastSquares(Loss):
    """Mao et al. 2017 with a=0, b=1, c=1 on raw outputs."""

    def d_loss(self, real_logits, fake_logits):
        return 0.5 * ((real_logits.float() - 1).square().mean() + fake_logits.float().square().mean())

    def g_loss(self, fake_logits, real_logits=None):
        return 0.5 * (fake_logits.float() - 1).square().mean()


@LOSSES.register("wgan")
class Wasserstein(Loss):
    """Arjovsky et al. 2017: needs a Lipschitz critic (wgan-gp, clip or spectral norm)."""

    critic = True

    def d_loss(self, real_logits, fake_logits):
        return fake_logits.float().mean() - real_logits.float().mean()

    def g_loss(self, fake_logits, real_logits=None):
        return -fake_logits.float().mean()


@LOSSES.register("hinge")
class Hinge(Loss):
    """Lim & Ye 2017 / Miyato et al. 2018 (SNGAN, BigGAN)."""

    def d_loss(self, real_logits, fake_logits):
        return F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean()

    def g_loss(self, fake_logits, real_logits=None):
        return -fake_logits.float().mean()


@LOSSES.register("ns-smooth")
class LabelSmoothing(Loss):
    """Non-saturating loss with one-sided label smoothing (Salimans et al. 2016): D's target for
    reals is `real_target` (0.9) instead of 1, fakes stay at 0; G's loss is the plain
    non-saturating one. D: BCE(r, real_target) + BCE(f, 0); G: BCE(f, 1)."""

    def __init__(self, real_target: float = 0.9):
        if not 0.0 < real_target <= 1.0:
            raise ValueError(f"real_target must lie in (0, 1], got {real_target}")
        self.real_target = float(real_target)

    def d_loss(self, real_logits, fake_logits):
        return _bce(real_logits, self.real_target) + _bce(fake_logits, 0.0)

    def g_loss(self, fake_logits, real_logits=None):
        return _bce(fake_logits, 1.0)


@LOSSES.register("ragan")
class RelativisticAverage(Loss):
    """Relativistic average GAN (Jolicoeur-Martineau 2018), as ESRGAN uses it: D judges whether a
    real is more realistic than the average fake, and G the reverse (both sides see both):

        D: BCE(r - mean(f), 1) + BCE(f - mean(r), 0)
        G: BCE(f - mean(r), 1) + BCE(r - mean(f), 0)

    (ESRGAN's code halves each sum; that is a factor on the learning rate only.) The means are
    over the batch and kept in the graph, so D's gradient flows through both."""

    g_needs_real = True

    def d_loss(self, real_logits, fake_logits):
        r, f = real_logits.float(), fake_logits.float()
        return _bce(r - f.mean(), 1.0) + _bce(f - r.mean(), 0.0)

    def g_loss(self, fake_logits, real_logits=None):
        if real_logits is None:
            raise ValueError("ragan's generator loss needs D's logits on real images")
        r, f = real_logits.float(), fake_logits.float()
        return _bce(f - r.mean(), 1.0) + _bce(r - f.mean(), 0.0)
