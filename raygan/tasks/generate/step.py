"""One GAN iteration: n_critic discriminator steps, then one generator step.

The step knows nothing about which loss, regulariser or augmentation it runs: each is a
registered piece with a small interface (losses.d_loss/g_loss, reg.penalty/after_d_step,
augment(x), and for an adaptive augmentation such as ADA augment.observe(D(real)) and
augment.step(images, reduce) once per D step on every rank). Statistics accumulate on the
device and are read once per tick, so the step never forces a host sync.

The phases (raygan.engine.phases: D main, a lazy D regulariser such as R1 every k steps, G main)
run through one precision object (raygan.engine.precision); this module only supplies each
phase's loss terms.

Under DDP, G and D are each wrapped. D's loss sees only detached fakes, and the G step
runs through the unwrapped D with its parameters frozen, so each backward all-reduces
exactly one network's gradients.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from raygan.engine import dist
from raygan.engine.ema import ema_beta, update_ema
from raygan.engine.phases import Phase, PhaseOptimizers, Phases, adversarial_phases
from raygan.engine.precision import Precision
from raygan.engine.stats import StepStats
from raygan.losses import generator_term
from raygan.tasks.base import unwrap

#: the step's statistics and the counter each is averaged over
STATS = {"loss_d": "d_steps", "loss_g": "g_steps", "reg": "d_steps", "d_real": "d_steps", "d_fake": "d_steps"}
#: with the AC-GAN term: D's class loss on reals and G's on its fakes (unweighted cross-entropies)
CLASS_STATS = {"cls_d": "d_steps", "cls_g": "g_steps"}
#: with a G regulariser (StyleGAN2's path length): its unweighted penalty and the running mean length
G_REG_STATS = {"pl_penalty": "g_reg_steps", "pl_mean": "g_reg_steps"}


class GANStep(PhaseOptimizers):
    def __init__(self, *, G: nn.Module, D: nn.Module, loss, regularizer, diffaugment: Optional[Callable] = None,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, n_critic: int,
                 z_dim: int, num_classes: int, device: torch.device, amp: str = "none",
                 G_ema: Optional[nn.Module] = None, ema_half_life_kimg: float = 0.0,
                 ema_rampup: Optional[float] = None, global_batch: int = 0,
                 augment: Optional[Callable] = None, class_weight: float = 0.0,
                 phases: Optional[List[Phase]] = None, g_regularizer=None):
        """`augment` (raygan.augment.DAugment, or any callable) is applied to every batch D sees;
        `diffaugment` is its older name. One with `observe`/`step` (ADA) is fed D's real logits.
        `class_weight` > 0 adds AC-GAN's term: D (built with a class head) gets class_weight *
        CE(class logits of the reals, their labels) and G the same on its fakes and their
        conditioning labels. D's head learns from real images only, so it is never taught G's
        mistakes (the original AC-GAN also trains it on fakes). `phases`: the task's phase list
        (default: G main, D main, and a "Dreg" phase for a lazy regulariser). `g_regularizer`
        (raygan.regularizers.PathLength, or None): its penalty is G's lazy "Greg" phase after G main
        every `g_regularizer.every` G steps (in G main's terms when every is 1)."""
        self.G, self.D = G, D
        self.G_plain, self.D_plain = unwrap(G), unwrap(D)
        self.loss, self.reg = loss, regularizer
        self.augment = augment if augment is not None else diffaugment
        self.diffaugment = self.augment  # the older name, kept for callers that read it
        self.adaptive = self.augment is not None and hasattr(self.augment, "observe") and \
            getattr(self.augment, "adaptive", self.augment) is not None
        self.n_critic = n_critic
        self.z_dim, self.num_classes = z_dim, num_classes
        self.device = device
        self.precision = Precision(amp, device)
        self.g_reg = g_regularizer
        phase_list = phases if phases is not None else adversarial_phases(
            d_reg_every=regularizer.every, g_reg_every=g_regularizer.every if g_regularizer is not None else 1)
        self.phases = Phases(phase_list, self.precision,
                             {"G": opt_g, "D": opt_d}, frozen={"G": [self.D_plain]})
        self.G_ema = G_ema
        self.ema_half_life_kimg, self.ema_rampup = ema_half_life_kimg, ema_rampup
        self.global_batch = global_batch
        self.class_weight = float(class_weight)
        if self.class_weight and not num_classes:
            raise ValueError("the AC-GAN class term needs a conditional generator and discriminator")
        self._last_real: Optional[Tuple[torch.Tensor, Optional[torch.Tensor]]] = None  # G's relativistic side
        self.stats = StepStats({**STATS, **(CLASS_STATS if self.class_weight else {}),
                                **(G_REG_STATS if self.g_reg is not None else {})}, device)

    # ------------------------------------------------------------------ helpers
    def sample_latents(self, n: int, generator: Optional[torch.Generator] = None,
                       labels: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Latents and (for a conditional G) labels: drawn uniformly, or `labels` when given."""
        z = torch.randn(n, self.z_dim, device=self.device, generator=generator)
        y = None
        if self.num_classes > 0:
            y = labels if labels is not None else torch.randint(0, self.num_classes, (n,), device=self.device,
                                                                generator=generator)
        return z, y

    def _fake_labels(self, y_real: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """A regulariser that interpolates real and fake (WGAN-GP) needs both halves of each pair
        to carry one label, or the interpolate's label matches neither end: then fakes are drawn
        for the real batch's labels, as conditional GP implementations do."""
        return y_real if getattr(self.reg, "pairs_real_and_fake", False) else None

    def _logits(self, D: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor]):
        """D's logits, and with the AC-GAN term the cross-entropy of its class head against y."""
        if not self.class_weight:
            return D(x, y).float(), None
        out, classes = D(x, y, classes=True)
        return out.float(), F.cross_entropy(classes.float(), y)

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return self.augment(x) if self.augment is not None else x

    # ------------------------------------------------------------------ phases
    def d_step(self, real: torch.Tensor, y_real: Optional[torch.Tensor],
               z: Optional[torch.Tensor] = None, y_fake: Optional[torch.Tensor] = None,
               fake: Optional[torch.Tensor] = None) -> None:
        n = real.shape[0]
        if fake is None:
            if z is None:
                z, y_fake = self.sample_latents(n, labels=self._fake_labels(y_real))
            with torch.no_grad(), self._autocast():
                fake = self.G_plain(z, y_fake)
        fake = fake.detach()
        out = {}

        def main_terms():  # D main: the loss (+ AC-GAN's class term, + a penalty run every step)
            real_aug, fake_aug = self._aug(real), self._aug(fake.float())
            with self._autocast():
                d_real, cls = self._logits(self.D, real_aug, y_real)
                d_fake = self.D(fake_aug, y_fake).float()
                terms = {"adv": self.loss.d_loss(d_real, d_fake)}
                if cls is not None:
                    terms["cls"] = self.class_weight * cls
            if self.reg.every == 1:  # e.g. WGAN-GP: in the same backward, computed in float32 (AMP-safe)
                pen = self._penalty(real, real_aug, fake_aug, y_real)
                if pen is not None:
                    terms["reg"] = out["reg"] = pen
            out.update(d_real=d_real, d_fake=d_fake, cls=cls, real_aug=real_aug, fake_aug=fake_aug)
            return terms

        loss = self.phases.run("Dmain", main_terms)
        reg_value = out.get("reg", torch.zeros((), device=self.device))
        # lazy R1: its own float32 phase, every `reg.every` D steps
        pen = self.phases.run("Dreg", lambda: self._penalty(real, out["real_aug"].detach(),
                                                             out["fake_aug"].detach(), y_real))
        if pen is not None:
            reg_value = pen
        self.reg.after_d_step(self.D_plain)
        d_real, d_fake, cls = out["d_real"], out["d_fake"], out["cls"]
        if self.adaptive:  # ADA: r_t from this step's real logits; p adjusted every few steps (all ranks)
            self.augment.observe(d_real)
            self.augment.step(self.global_batch or n * dist.world_size(), reduce=dist.all_reduce_sum)
        self.stats.add("loss_d", loss)
        self.stats.add("reg", reg_value)
        self.stats.add("d_real", d_real.detach().mean())
        self.stats.add("d_fake", d_fake.detach().mean())
        if cls is not None:
            self.stats.add("cls_d", cls)
        self.stats.count("d_steps")
        self._last_real = (real, y_real)

    def _penalty(self, real, real_aug, fake_aug, y_real):
        """R1 (`on_clean_reals`) is the gradient w.r.t. the non-augmented reals, taken through a
        fresh augmentation (StyleGAN2-ADA, official DiffAugment); WGAN-GP works on D's inputs."""
        if getattr(self.reg, "on_clean_reals", False):
            return self.reg.penalty(self.D, real.detach(), fake_aug, y_real, augment=self._aug)
        return self.reg.penalty(self.D, real_aug, fake_aug, y_real)

    def g_step(self, n: int, z: Optional[torch.Tensor] = None, y_fake: Optional[torch.Tensor] = None,
               fake: Optional[torch.Tensor] = None) -> None:
        """`fake`, when given, is a batch G produced with grad (the fused path in `step`)."""
        if fake is None and z is None:
            z, y_fake = self.sample_latents(n)
        out = {}

        def main_terms():  # G main: the loss (+ AC-GAN's class term), through the frozen plain D
            nonlocal fake
            with self._autocast():
                if fake is None:
                    fake = self.G(z, y_fake)
                d_fake, cls = self._logits(self.D_plain, self._aug(fake), y_fake)
                terms = {"adv": generator_term(self.loss, d_fake, self._real_logits)}
                if cls is not None:
                    out["cls"] = cls
                    terms["cls"] = self.class_weight * cls
            if self.g_reg is not None and self.g_reg.every == 1:  # a G regulariser run every step
                terms["g_reg"] = self._g_penalty(n)
            return terms

        loss = self.phases.run("Gmain", main_terms)
        self.stats.add("loss_g", loss)
        if "cls" in out:
            self.stats.add("cls_g", out["cls"])
        self.stats.count("g_steps")
        if self.g_reg is not None:  # lazy: its own float32 phase every `every` G steps (absent when every is 1)
            self.phases.run("Greg", lambda: self._g_penalty(n))

    def _g_penalty(self, n: int) -> torch.Tensor:
        """G's regulariser on fresh latents (float32, through the possibly wrapped G); its statistics."""
        z, y = self.sample_latents(self.g_reg.batch(n))
        pen = self.g_reg.penalty(self.G, z, y)
        self.stats.add("pl_penalty", self.g_reg.last_penalty)
        self.stats.add("pl_mean", self.g_reg.pl_mean)
        self.stats.count("g_reg_steps")
        return pen

    def _real_logits(self) -> torch.Tensor:
        """D's logits on the last D step's reals, for a loss whose G side sees both (relativistic)."""
        if self._last_real is None:
            raise RuntimeError("a loss that compares real and fake logits needs a D step before the G step")
        real, y = self._last_real
        return self.D_plain(self._aug(real), y).float()

    def step(self, next_real: Callable[[], Tuple[torch.Tensor, Optional[torch.Tensor]]], cur_nimg: int) -> None:
        """n_critic D steps on fresh real batches, one G step, then the EMA update.

        With n_critic == 1 the generator runs once per iteration, with grad: D trains on
        the detached batch, then G's step reuses the same batch through the updated D (the
        pytorch/examples DCGAN scheme). With n_critic > 1 each D step draws fresh noise.
        """
        if self.n_critic == 1:
            real, y = next_real()
            z, y_fake = self.sample_latents(real.shape[0], labels=self._fake_labels(y))
            with self._autocast():
                fake = self.G(z, y_fake)
            self.d_step(real, y, fake=fake, y_fake=y_fake)
            self.g_step(real.shape[0], fake=fake, y_fake=y_fake)
        else:
            n = 0
            for _ in range(self.n_critic):
                real, y = next_real()
                n = real.shape[0]
                self.d_step(real, y)
            self.g_step(n)
        if self.G_ema is not None:  # G moved once per batch x n_critic real images
            beta = ema_beta(self.global_batch * self.n_critic, self.ema_half_life_kimg, cur_nimg, self.ema_rampup)
            update_ema(self.G_ema, self.G_plain, beta)
