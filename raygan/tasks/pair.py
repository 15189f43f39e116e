"""What every task with one generator (+ its EMA copy) against one discriminator shares:
restoring the networks (an EMA switched on at resume starts from G), D's learning rate and
betas corrected for a lazy regulariser (StyleGAN2-ADA, raygan.engine.phases.lazy_hparams),
re-applying the optimiser settings after a resume, and the hyperparameters read back from the
built objects. Mixed precision is raygan.engine.precision.Precision, owned by the step."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch
from torch import nn


class GeneratorDiscriminatorPair:
    """Mixin for a Task that sets G_plain, D_plain, G_ema (or None), opt_g, opt_d, loss,
    regularizer and step (with `ema_half_life_kimg`)."""

    def place_pair(self, G: nn.Module, D: nn.Module) -> None:
        """Everything between building the two networks and training them, in one order for every
        task (it fixes which random draws the init seed feeds): memory format, the EMA copy, the
        regulariser, the optimisers (D's corrected for a lazy regulariser), DDP wrapping, compile,
        the adversarial loss."""
        from raygan.engine.device import make_optimizer
        from raygan.engine.ema import make_ema
        from raygan.engine.phases import adversarial_phases
        from raygan.losses import build_loss
        from raygan.regularizers import REGULARIZERS, PathLength

        cfg, ctx = self.cfg, self.ctx
        if ctx.channels_last:
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        self.G_ema = make_ema(G) if cfg.ema.half_life_kimg > 0 else None
        if getattr(cfg.model, "sync_bn", False) and ctx.world > 1:  # BN over the global batch (DDP)
            from raygan.engine.syncbn import convert_sync_bn

            G, D = convert_sync_bn(G), convert_sync_bn(D)
        self.regularizer = REGULARIZERS.build(cfg.regularizer.name, **cfg.regularizer.kwargs)
        # G's regulariser, when its architecture brings one (StyleGAN2's path length: model.g.pl_*)
        self.g_regularizer = PathLength.for_generator(G)
        g_every = self.g_regularizer.every if self.g_regularizer is not None else 1
        # the adversarial step's phases: a lazy regulariser is its own phase, and corrects its net's optimiser
        self.phase_list = adversarial_phases(d_reg_every=self.regularizer.every, g_reg_every=g_every)
        (g_lr, g_betas), (d_lr, d_betas) = self._hparams("G"), self._hparams("D")
        self.opt_g = make_optimizer(G.parameters(), g_lr, g_betas, self.device)
        self.opt_d = make_optimizer(D.parameters(), d_lr, d_betas, self.device)
        self.G_plain, self.D_plain = G, D
        if ctx.prepare_model is not None:
            G, D = ctx.prepare_model(G), ctx.prepare_model(D)
        if ctx.compile:
            G, D = torch.compile(G), torch.compile(D)
        self.G, self.D = G, D
        self.loss = build_loss(cfg.loss.name, cfg.loss.kwargs)

    def load_networks(self, models: Dict[str, Any], where: Path) -> None:
        if self.G_ema is not None and "G_ema" not in models:  # EMA switched on at resume: start from G
            models = {**models, "G_ema": models["G"]}
        super().load_networks({k: v for k, v in models.items() if k in self.networks}, where)

    def _hparams(self, net: str):
        """`net`'s lr and betas, corrected for a lazy regulariser phase (StyleGAN2-ADA)."""
        from raygan.engine.phases import net_hparams

        o = self.cfg.optim
        lr, betas = (o.g_lr, o.g_betas) if net == "G" else (o.d_lr, o.d_betas)
        return net_hparams(self.phase_list, net, lr, betas)

    def apply_optim_config(self) -> None:
        (g_lr, g_betas), (d_lr, d_betas) = self._hparams("G"), self._hparams("D")
        for opt, lr, betas in ((self.opt_g, g_lr, g_betas), (self.opt_d, d_lr, d_betas)):
            for group in opt.param_groups:
                group["lr"], group["betas"] = lr, tuple(betas)

    def pair_applied(self) -> Dict[str, Any]:
        """Optimiser, loss, regulariser, batch, architecture, spectral norm and EMA as built."""
        from torch.nn.utils import parametrize

        g, d = self.opt_g.param_groups[0], self.opt_d.param_groups[0]
        reg = self.regularizer
        return {
            "applied_g_lr": float(g["lr"]), "applied_d_lr": float(d["lr"]),
            "applied_g_beta1": float(g["betas"][0]), "applied_g_beta2": float(g["betas"][1]),
            "applied_d_beta1": float(d["betas"][0]), "applied_d_beta2": float(d["betas"][1]),
            "applied_loss": type(self.loss).registry_name,
            "applied_regularizer": type(reg).registry_name,
            "applied_reg_weight": float(getattr(reg, "weight", getattr(reg, "value", 0.0)) or 0.0),
            "applied_batch_size": int(self.ctx.batch * self.ctx.world),
            "applied_arch": self.G_plain.registry_name,
            "applied_spectral_norm": int(any(parametrize.is_parametrized(m) for m in self.D_plain.modules())),
            "applied_ema_half_life_kimg": float(self.step.ema_half_life_kimg if self.G_ema is not None else 0.0),
        }
