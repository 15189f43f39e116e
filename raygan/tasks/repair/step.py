"""One repair iteration (pix2pix): a conditional D step, then a G step with L1 (+ features).

    D phase   loss.d_loss(D(cond, clean), D(cond, G(x).detach()))  (+ a registered regulariser)
    G phase   adv_weight * loss.g_loss(D(cond, G(x))) + l1_weight * |G(x) - clean|_1
              (+ feature_weight * |f(G(x)) - f(clean)|_1 on a frozen extractor's features)

G runs once per iteration, with grad: D trains on the detached output, then the G phase
reuses it through the updated D. The D phase is skipped while the adversarial term is off:
always with `adv_weight` 0 (the plain regression baseline: D is built and checkpointed but
never touched) and during the L1-only warm-up (`warmup_nimg`).

The phases (D main, a lazy D regulariser, G main) run through raygan.engine.phases with one
precision object (raygan.engine.precision); this module supplies each phase's terms.

Under DDP, G and D are each wrapped; the G phase runs through the unwrapped D with its
parameters frozen, so each backward all-reduces exactly one network's gradients. Statistics
accumulate on the device (no host sync per step).
"""
from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional

import torch
from torch import nn

from raygan.engine.ema import ema_beta, update_ema
from raygan.engine.phases import Phase, PhaseOptimizers, Phases, adversarial_phases
from raygan.engine.precision import Precision
from raygan.engine.stats import StepStats
from raygan.losses import generator_term
from raygan.tasks.base import unwrap
from raygan.tasks.repair.net import ConditionedD

G_STATS = {"loss_g": "g_steps", "l1": "g_steps", "adv": "g_steps", "feat": "g_steps"}
D_STATS = {"loss_d": "d_steps", "reg": "d_steps", "d_real": "d_steps", "d_fake": "d_steps"}


class Batch(NamedTuple):
    clean: torch.Tensor  # (N, C, H, W) in [-1, 1]
    degraded: torch.Tensor  # (N, C, h, w) in [-1, 1]
    mask: Optional[torch.Tensor]  # (N, 1, h, w), 1 = missing; None without mask ops


class RepairStep(PhaseOptimizers):
    def __init__(self, *, G: nn.Module, D: nn.Module, loss, regularizer, opt_g, opt_d,
                 l1_weight: float, adv_weight: float, feature_weight: float = 0.0,
                 features: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, warmup_nimg: int = 0,
                 device: torch.device, amp: str = "none", G_ema: Optional[nn.Module] = None,
                 ema_half_life_kimg: float = 0.0, ema_rampup: Optional[float] = None, global_batch: int = 0,
                 phases: Optional[List[Phase]] = None):
        self.G, self.D = G, D
        self.G_plain, self.D_plain = unwrap(G), unwrap(D)
        self.loss, self.reg = loss, regularizer
        self.l1_weight, self.adv_weight = float(l1_weight), float(adv_weight)
        self.feature_weight = float(feature_weight)
        self.features = features
        self.warmup_nimg = int(warmup_nimg)
        self.device = device
        self.precision = Precision(amp, device)
        phase_list = phases if phases is not None else adversarial_phases(d_reg_every=regularizer.every)
        self.phases = Phases(phase_list, self.precision,
                             {"G": opt_g, "D": opt_d}, frozen={"G": [self.D_plain]})
        self.G_ema = G_ema
        self.ema_half_life_kimg, self.ema_rampup = ema_half_life_kimg, ema_rampup
        self.global_batch = global_batch
        names = dict(G_STATS)
        if self.feature_weight <= 0:
            names.pop("feat")
        if self.adv_weight > 0:
            names.update(D_STATS)
        else:
            names.pop("adv")
        self.stats = StepStats(names, device)

    def adversarial(self, cur_nimg: int) -> bool:
        return self.adv_weight > 0 and cur_nimg >= self.warmup_nimg

    # ------------------------------------------------------------------ phases
    def d_step(self, b: Batch, cond: torch.Tensor, fake: torch.Tensor) -> None:
        D = ConditionedD(self.D)
        fake = fake.detach().float()
        out = {}

        def main_terms():  # D main: the loss (+ a penalty run every step, e.g. WGAN-GP, in float32)
            with self._autocast():
                d_real = D(b.clean, cond).float()
                d_fake = D(fake, cond).float()
                terms = {"adv": self.loss.d_loss(d_real, d_fake)}
            if self.reg.every == 1:
                pen = self.reg.penalty(D, b.clean, fake, cond)
                if pen is not None:
                    out["reg"] = pen.detach()
                    terms["reg"] = pen
            out.update(d_real=d_real, d_fake=d_fake)
            return terms

        loss = self.phases.run("Dmain", main_terms)
        reg_value = out.get("reg", torch.zeros((), device=self.device))
        pen = self.phases.run("Dreg", lambda: self.reg.penalty(D, b.clean, fake, cond))  # lazy R1
        if pen is not None:
            reg_value = pen
        self.reg.after_d_step(self.D_plain)
        self.stats.add("loss_d", loss)
        self.stats.add("reg", reg_value)
        self.stats.add("d_real", out["d_real"].detach().mean())
        self.stats.add("d_fake", out["d_fake"].detach().mean())
        self.stats.count("d_steps")

    def g_step(self, b: Batch, cond: Optional[torch.Tensor], fake: torch.Tensor, adversarial: bool) -> None:
        """`fake` is G's output for this batch, produced with grad."""
        out = {}

        def main_terms():  # G main: L1 (+ features) (+ the adversarial term through the frozen D)
            l1 = out["l1"] = (fake.float() - b.clean).abs().mean()
            terms = {"l1": self.l1_weight * l1 if self.l1_weight > 0 else torch.zeros((), device=self.device)}
            if self.feature_weight > 0:
                feat = out["feat"] = (self.features(fake.float()) - self.features(b.clean)).abs().mean()
                terms["feat"] = self.feature_weight * feat
            if adversarial:
                D = ConditionedD(self.D_plain)
                with self._autocast():
                    adv = out["adv"] = generator_term(self.loss, D(fake, cond).float(),
                                                      lambda: D(b.clean, cond).float())
                terms["adv"] = self.adv_weight * adv
            return terms

        loss = self.phases.run("Gmain", main_terms)
        if "feat" in out:
            self.stats.add("feat", out["feat"])
        if adversarial:
            self.stats.add("adv", out["adv"])
        self.stats.add("loss_g", loss)
        self.stats.add("l1", out["l1"])
        self.stats.count("g_steps")

    def step(self, b: Batch, cur_nimg: int) -> None:
        adversarial = self.adversarial(cur_nimg)
        with self._autocast():
            fake = self.G(b.degraded, b.mask)
        cond = None
        if adversarial:
            with torch.no_grad():
                cond = self.G_plain.condition(b.degraded, b.mask)
            self.d_step(b, cond, fake)
        self.g_step(b, cond, fake, adversarial)
        if self.G_ema is not None:
            beta = ema_beta(self.global_batch, self.ema_half_life_kimg, cur_nimg, self.ema_rampup)
            update_ema(self.G_ema, self.G_plain, beta)
