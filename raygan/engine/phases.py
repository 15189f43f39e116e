"""The adversarial step's phases as data, as StyleGAN2-ADA's training loop has them.

A phase names the network it trains ("G" or "D": the optimiser and grad scaler it steps) and
its interval. Main phases ("Gmain", "Dmain") run every time the task asks; a regulariser phase
("Greg", "Dreg": lazy R1 today, StyleGAN2's path length later) runs when its network's main-step
count is a multiple of `every`, in float32 and unscaled. A network with a lazy phase has its
optimiser's lr and betas corrected by c = every / (every + 1): lr * c, beta ** c, so its
momentum sees the extra phase as it should (`lazy_hparams`, `Phases.hparams`).

`Phases.run(name, terms)` is the whole of one phase: freeze the other networks, zero the
gradients, call `terms()` (the task's loss terms for this phase, forward passes under
`precision.autocast()`), sum them in order, backward through the precision object, optional
gradient clipping (unscaled first), the optimiser step, unfreeze. A task supplies its terms per
phase and nothing else: no scaler, no autocast, no optimiser calls of its own.

Adding a G regulariser (path length) is one more entry: `adversarial_phases(g_reg_every=4)` (a
`Phase("Greg", "G", every=4)`) in the task's phase list, from which G's optimiser already takes
its lr/betas (`net_hparams`), and its terms passed to `run("Greg", ...)` after "Gmain".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from raygan.engine.precision import Precision

Terms = Union[torch.Tensor, Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class Phase:
    name: str  # "Gmain", "Greg", "Dmain", "Dreg", ...
    net: str  # the optimiser (and grad scaler) it steps: "G" or "D"
    every: int = 1  # a regulariser phase: run when the net's main-step count is a multiple of this
    main: bool = True  # a main phase counts its net's steps; a regulariser phase runs on that count
    clip: Optional[float] = None  # clip the gradient norm to this (unscaled first)

    def __post_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"phase {self.name}: every must be an int >= 1, got {self.every!r}")

    @property
    def scaled(self) -> bool:
        """Main phases run mixed precision with loss scaling; regulariser phases in float32."""
        return self.main


def lazy_ratio(every: Optional[int]) -> float:
    """c = every / (every + 1) for a lazy regulariser phase; 1 when it runs every step (or none)."""
    return every / (every + 1) if every is not None and every > 1 else 1.0


def lazy_hparams(lr: float, betas: Sequence[float], every: Optional[int]) -> Tuple[float, Tuple[float, ...]]:
    """StyleGAN2-ADA's correction: (lr * c, betas ** c)."""
    c = lazy_ratio(every)
    if c == 1.0:
        return lr, tuple(betas)
    return lr * c, tuple(b ** c for b in betas)


def net_hparams(phases: Iterable[Phase], net: str, lr: float,
                betas: Sequence[float]) -> Tuple[float, Tuple[float, ...]]:
    """`net`'s optimiser settings corrected for its lazy regulariser phase in `phases`, if any."""
    every = max([p.every for p in phases if p.net == net and not p.main], default=1)
    return lazy_hparams(lr, betas, every)


def adversarial_phases(d_reg_every: int = 1, g_reg_every: int = 1) -> List[Phase]:
    """G main, D main, and a lazy regulariser phase for a network whose interval is > 1 (a
    regulariser run every step belongs in its main phase's terms, in the same backward)."""
    phases = [Phase("Gmain", "G")]
    if g_reg_every > 1:
        phases.append(Phase("Greg", "G", every=g_reg_every, main=False))
    phases.append(Phase("Dmain", "D"))
    if d_reg_every > 1:
        phases.append(Phase("Dreg", "D", every=d_reg_every, main=False))
    return phases


def total(terms: Terms) -> torch.Tensor:
    """The terms summed left to right (a bare tensor is its own total)."""
    if isinstance(terms, torch.Tensor):
        return terms
    values = list(terms.values())
    out = values[0]
    for v in values[1:]:
        out = out + v
    return out


class Phases:
    """Runs a task's phases through one precision object. `frozen[net]`: the modules frozen while
    `net` trains (G's phases run through a frozen D, so each backward reaches one network)."""

    def __init__(self, phases: Iterable[Phase], precision: Precision,
                 optimizers: Dict[str, torch.optim.Optimizer], frozen: Optional[Dict[str, Sequence[nn.Module]]] = None,
                 params: Optional[Dict[str, Callable[[], Iterable[torch.Tensor]]]] = None):
        self.phases: Dict[str, Phase] = {}
        for p in phases:
            if p.name in self.phases:
                raise ValueError(f"phase {p.name} listed twice")
            self.phases[p.name] = p
        self.precision = precision
        self.optimizers = optimizers
        self.frozen = {k: list(v) for k, v in (frozen or {}).items()}
        self.params = params or {}
        #: main steps taken per network (a regulariser phase's clock; part of the task's checkpoint)
        self.counts: Dict[str, int] = {p.net: 0 for p in self.phases.values()}

    def hparams(self, net: str, lr: float, betas: Sequence[float]) -> Tuple[float, Tuple[float, ...]]:
        return net_hparams(self.phases.values(), net, lr, betas)

    def due(self, name: str) -> bool:
        p = self.phases.get(name)
        return p is not None and (p.main or self.counts[p.net] % p.every == 0)

    def run(self, name: str, terms: Callable[[], Terms]) -> Optional[torch.Tensor]:
        """One phase: returns the loss it stepped on (detached), or None when not due / absent."""
        if not self.due(name):
            return None
        p, prec = self.phases[name], self.precision
        opt = self.optimizers[p.net]
        frozen = self.frozen.get(p.net, ())
        # each parameter gets back its own flag: blocks frozen for good (FreezeD) stay frozen
        restore = [(q, q.requires_grad) for m in frozen for q in m.parameters()]
        for m in frozen:
            m.requires_grad_(False)
        try:
            opt.zero_grad(set_to_none=True)
            loss = total(terms())
            prec.backward(loss, p.net, scaled=p.scaled)
            if p.clip is not None:
                prec.clip_grad_norm(p.net, opt, self._params(p.net, opt), p.clip, scaled=p.scaled)
            prec.step(p.net, opt, scaled=p.scaled)
        finally:
            for q, flag in restore:
                q.requires_grad_(flag)
        if p.main:
            self.counts[p.net] += 1
        return loss.detach()

    def _params(self, net: str, opt: torch.optim.Optimizer) -> List[torch.Tensor]:
        if net in self.params:
            return list(self.params[net]())
        return [q for g in opt.param_groups for q in g["params"]]


class PhaseOptimizers:
    """What a task's step reads of its phases: `opt_g` / `opt_d` read and replace the optimisers the
    phases step (one place holds them, so swapping one reaches the phases), `d_steps` is the D
    clock that lazy regulariser phases run on (checkpointed by the task), `_autocast` the precision
    object's context."""

    phases: Phases
    precision: Precision

    @property
    def d_steps(self) -> int:
        return self.phases.counts["D"]

    @d_steps.setter
    def d_steps(self, value: int) -> None:
        self.phases.counts["D"] = int(value)

    def _autocast(self):
        return self.precision.autocast()

    @property
    def opt_g(self) -> torch.optim.Optimizer:
        return self.phases.optimizers["G"]

    @opt_g.setter
    def opt_g(self, opt: torch.optim.Optimizer) -> None:
        self.phases.optimizers["G"] = opt

    @property
    def opt_d(self) -> torch.optim.Optimizer:
        return self.phases.optimizers["D"]

    @opt_d.setter
    def opt_d(self, opt: torch.optim.Optimizer) -> None:
        self.phases.optimizers["D"] = opt

