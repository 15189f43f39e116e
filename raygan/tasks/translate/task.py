"""Task `translate`: unpaired image-to-image translation A <-> B (CycleGAN, Zhu et al. 2017).

Batch: an A batch and a B batch per step from two unpaired domains (`load_domains`: two classes
of a labelled source, or the trainA/trainB folder layout), each with its own `EpochSampler`
(A seeded with `seed`, B with `seed + 1`). The kimg clock counts A images: `images_per_step()`
is the global batch, and every step also shows D_B as many B images.

Networks (built in this order from the init seed): G_AB, G_BA from GENERATORS (`model.arch`,
kwargs `model.g`; the generation default "dcgan" means `resnet-translator`), D_A, D_B from
DISCRIMINATORS (`model.d_arch`, default `patchgan`, kwargs `model.d`), unconditional
(in_channels = image channels). Two Adam optimisers as the reference: one over both
generators (`optim.g_lr/g_betas`), one over both discriminators (`optim.d_lr/d_betas`).

Step (the reference's order; phases run by raygan.engine.phases through one precision object):
the G phase runs both cycles through the DDP-wrapped generators and the unwrapped, frozen
discriminators:

    L_G = g_loss(D_B(G_AB(a))) + g_loss(D_A(G_BA(b)))                       (`loss.name`, lsgan)
          + lambda_cycle * (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)
          + lambda_identity * lambda_cycle * (|G_BA(a) - a|_1 + |G_AB(b) - b|_1)

then the D phase: L_D = 0.5 d_loss(D_A(a), pool_A(G_BA(b))) + 0.5 d_loss(D_B(b), pool_B(G_AB(a))),
each D seeing fakes through its own history pool (one per D and per rank, in the checkpoint).
Learning rates follow `lr_factor` in images seen (constant, then linear to 0 from
`translate.lr_decay_start` x total_kimg), set before every step, so a resume re-applies it.
With `data.crop` each domain's images are kept whole (raygan.data.crops) and every sample is a
random crop, positioned by torch's default generator (checkpointed with every RNG: exact resume).

Exported: both generators as one module, `CycleTranslator` (raygan.tasks.translate.net), `forward(x, direction="a2b")`
(state dict `G_AB.*`, `G_BA.*`), rebuilt from the config by `build_inference`.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

import torch
from pydantic import Field
from torch import nn

from raygan.augment import flip_horizontal
from raygan.config.schema import Float, Int, TaskOptions
from raygan.data.crops import center_crops
from raygan.data.patch_sources import load_patch_domains
from raygan.data.domains import FOLDER, KNOWN_CLASSES, load_domains, resolve_class
from raygan.data.sampler import EpochSampler
from raygan.engine import dist
from raygan.engine.device import make_optimizer
from raygan.engine.phases import Phases, adversarial_phases
from raygan.engine.precision import Precision
from raygan.engine.stats import StepStats
from raygan.errors import ConfigError
from raygan.losses import build_loss, generator_term
from raygan.tasks.base import TASKS, ExportedModel, Task, unwrap
from raygan.tasks.translate.cycle import ImagePool, cycle_loss, generator_objective, identity_loss
from raygan.tasks.translate.cycle import lr_factor as decay_factor
from raygan.tasks.translate.net import (DIRECTIONS, CycleTranslator, build_discriminator, build_generator)

GRID = 8  # test images per domain in the picture

#: statistic -> counter; losses unweighted except loss_g / loss_d (the optimised totals)
STATS = {k: "steps" for k in (
    "loss_g", "g_adv_a2b", "g_adv_b2a", "loss_cycle_a", "loss_cycle_b", "loss_idt_a", "loss_idt_b",
    "loss_d", "loss_d_a", "loss_d_b", "d_real_a", "d_fake_a", "d_real_b", "d_fake_b")}


@TASKS.register("translate")
class TranslateTask(Task):
    name = "translate"
    search_space = "translate"
    export_network = "G_AB"
    unused = {"conditional": "it is unconditional", "regularizer": "CycleGAN uses none",
              "diffaugment": "only augment.flip applies", "ada": "only augment.flip applies",
              "n_critic": "one D step per G step", "ema": "it keeps no EMA; set 0",
              "per_class": "use data.limit", "stream": "its two domains are loaded into memory",
              "init_from": "starting from another run's networks is for generate runs so far",
              "freeze_d": "its discriminators do not name their blocks"}

    class Options(TaskOptions):
        """The config's `translate:` section (CycleGAN): cycle and identity terms, history pools, lr decay."""

        lambda_cycle: Float = Field(default=10.0, ge=0)
        lambda_identity: Float = Field(default=0.5, ge=0)  # as a fraction of lambda_cycle
        pool_size: Int = Field(default=50, ge=0)
        lr_decay_start: Float = Field(default=0.5, ge=0, le=1)  # fraction of total_kimg, then linear to 0
        # the two domains of a labelled source: a class name or index each (a folder's are trainA/trainB)
        domain_a: Optional[Union[Int, str]] = None
        domain_b: Optional[Union[Int, str]] = None
        # with data.crop: score the whole test images (data.resolution) or a fixed centre crop of each (data.crop)
        eval_size: Literal["full", "crop"] = "full"

    # ------------------------------------------------------------------ config
    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        d, t, e = cfg.data, cfg.translate, cfg.eval
        # domains: resolvable without reading data
        if d.name == FOLDER:
            if t.domain_a is not None or t.domain_b is not None:
                raise ConfigError("config: translate.domain_a/domain_b: the folder source's domains are the "
                                  "trainA/trainB subfolders of data.root; leave them unset")
        elif d.name in KNOWN_CLASSES:
            if t.domain_a is None or t.domain_b is None:
                raise ConfigError(f"config: task 'translate' on {d.name} needs two classes: set "
                                  f"translate.domain_a and translate.domain_b")
            ia, ib = resolve_class(d.name, t.domain_a), resolve_class(d.name, t.domain_b)
            if ia == ib:
                raise ConfigError(f"config: translate.domain_a and translate.domain_b are the same {d.name} class "
                                  f"'{KNOWN_CLASSES[d.name][ia]}'; choose two different classes")
        else:
            raise ConfigError(f"config: data.name: task 'translate' needs a labelled source "
                              f"({', '.join(KNOWN_CLASSES)}) or 'folder', got '{d.name}'")
        if "domain_acc" in e.metrics and (d.name != "fashion-mnist" or e.extractor != "fmnist-cnn"):
            raise ConfigError("config: eval.metrics: domain_acc needs data.name fashion-mnist and "
                              "eval.extractor fmnist-cnn (the classifier of its 10 classes)")
        # networks and loss: built on the meta device, so bad names/options fail before data
        build_loss(cfg.loss.name, cfg.loss.kwargs)
        with torch.device("meta"):
            build_generator(cfg, d.channels or 1)
            build_discriminator(cfg, d.channels or 1)
            if d.crop is not None and cfg.translate.eval_size == "full":  # the whole test images pass G too
                build_generator(cfg.model_copy(update={"data": d.model_copy(update={"crop": None})}), d.channels or 1)

    # ------------------------------------------------------------------ building
    def setup_data(self) -> None:
        d, ctx = self.cfg.data, self.ctx
        t = self.cfg.translate
        common = dict(domain_a=t.domain_a, domain_b=t.domain_b, root=d.root, resolution=d.resolution,
                      channels=d.channels, download=d.download)
        a, b = load_domains(d.name, split="train", limit=d.limit, **common) if d.crop is None else \
            self._patch_domains(common)
        self.domain_names: List[str] = list(a.class_names)
        self.data_a, self.data_b = a.to(self.device), b.to(self.device)
        self.channels = a.channels
        for ds in (a, b):
            if ctx.batch * ctx.world > len(ds):
                raise ConfigError(f"config: optim.batch_size {self.cfg.optim.batch_size} is larger than "
                                  f"domain {ds.name} ({len(ds)} images)")
        self.sampler_a = EpochSampler(len(a), ctx.batch, seed=self.cfg.seed, rank=ctx.rank, world_size=ctx.world)
        self.sampler_b = EpochSampler(len(b), ctx.batch, seed=self.cfg.seed + 1, rank=ctx.rank,
                                      world_size=ctx.world)
        # the picture's fixed test images
        ta, tb = load_domains(d.name, split=self.cfg.eval.reference_split, limit=GRID, **common)
        if d.crop is not None:  # the picture (and the export example) at the training size
            ta.images, tb.images = center_crops(ta.images, d.crop), center_crops(tb.images, d.crop)
        self.grid_a, self.grid_b = self._float(ta.images.to(self.device)), self._float(tb.images.to(self.device))

    def _patch_domains(self, common):
        """Domains for patch training: images whole (longer side <= data.resolution), cropped per step."""
        d = self.cfg.data
        kw = {k: v for k, v in common.items() if k not in ("resolution", "channels")}
        pa, pb = load_patch_domains(d.name, split="train", max_side=d.resolution, channels=d.channels,
                                    limit=d.limit, **kw)
        return pa.check(d.crop, pa.name), pb.check(d.crop, pb.name)

    def build(self) -> None:
        cfg, ctx, o, t = self.cfg, self.ctx, self.cfg.optim, self.cfg.translate
        nets = [build_generator(cfg, self.channels), build_generator(cfg, self.channels),
                build_discriminator(cfg, self.channels), build_discriminator(cfg, self.channels)]
        nets = [n.to(self.device) for n in nets]
        if ctx.channels_last:
            nets = [n.to(memory_format=torch.channels_last) for n in nets]
        self.G_AB_plain, self.G_BA_plain, self.D_A_plain, self.D_B_plain = nets
        gen_params = itertools.chain(self.G_AB_plain.parameters(), self.G_BA_plain.parameters())
        dis_params = itertools.chain(self.D_A_plain.parameters(), self.D_B_plain.parameters())
        self.opt_g = make_optimizer(list(gen_params), o.g_lr, o.g_betas, self.device)
        self.opt_d = make_optimizer(list(dis_params), o.d_lr, o.d_betas, self.device)
        wrapped = list(nets)
        if ctx.prepare_model is not None:
            wrapped = [ctx.prepare_model(n) for n in wrapped]
        if ctx.compile:
            wrapped = [torch.compile(n) for n in wrapped]
        self.G_AB, self.G_BA, self.D_A, self.D_B = wrapped
        self.loss = build_loss(cfg.loss.name, cfg.loss.kwargs)
        self.pool_a, self.pool_b = ImagePool(t.pool_size), ImagePool(t.pool_size)  # fakes for D_A / D_B
        self.precision = Precision(ctx.amp, self.device)
        self.scalers = self.precision.scalers  # {"G", "D"}: the checkpoint's keys
        self.phases = Phases(adversarial_phases(), self.precision, {"G": self.opt_g, "D": self.opt_d},
                             frozen={"G": [self.D_A_plain, self.D_B_plain]})
        self.stats = StepStats(STATS, self.device)
        self.networks = {"G_AB": self.G_AB_plain, "G_BA": self.G_BA_plain, "D_A": self.D_A_plain, "D_B": self.D_B_plain}
        self.optimizers = {"G": self.opt_g, "D": self.opt_d}
        self.translator = CycleTranslator(self.G_AB_plain, self.G_BA_plain)
        self.total_nimg = max(1, cfg.train.total_nimg)
        self.nimg = 0
        self._pools_gathered: Optional[List[Dict[str, Any]]] = None
        self._apply_lr(0)

    @classmethod
    def eval_uses_seed(cls, cfg) -> bool:
        """Translation is deterministic (no noise, the whole test split): one evaluation says it all."""
        return False

    @classmethod
    def evaluator_for(cls, cfg, device, model_spec):
        from raygan.tasks.translate.eval import TranslateEvaluator

        return TranslateEvaluator(cfg, device, channels=int(model_spec["channels"]))

    # ------------------------------------------------------------------ training
    def _float(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().div_(127.5).sub_(1.0)

    def _next(self, data, sampler: EpochSampler) -> torch.Tensor:
        if self.cfg.data.crop is None:
            x = self._float(data.images[sampler.next().to(self.device)])
        else:  # random crops, positions from torch's default generator (checkpointed with every RNG)
            x = self._float(data.crops(sampler.next(), self.cfg.data.crop, None))
        if self.cfg.augment.flip:
            x = flip_horizontal(x)
        if self.ctx.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self):
        return self.precision.autocast()

    def lr_factor(self, nimg: int) -> float:
        """The lr multiplier for a step starting at `nimg` images seen (raygan.tasks.translate.cycle.lr_factor)."""
        return decay_factor(int(nimg), self.total_nimg, self.cfg.translate.lr_decay_start)

    def _apply_lr(self, nimg: int) -> None:
        o, f = self.cfg.optim, self.lr_factor(nimg)
        for opt, base in ((self.opt_g, o.g_lr), (self.opt_d, o.d_lr)):
            for group in opt.param_groups:
                group["lr"] = base * f
        self.nimg = int(nimg)

    def images_per_step(self) -> int:
        """The global batch of A images (each step also shows D_B as many B images)."""
        return self.cfg.optim.batch_size

    def train_step(self, nimg: int) -> None:
        t, loss, st = self.cfg.translate, self.loss, self.stats
        self._apply_lr(nimg)
        real_a, real_b = self._next(self.data_a, self.sampler_a), self._next(self.data_b, self.sampler_b)
        o = {}

        def g_terms():  # G main: both cycles, through the frozen plain discriminators
            with self._autocast():
                o["fake_b"] = fake_b = self.G_AB(real_a)
                rec_a = self.G_BA(fake_b)
                o["fake_a"] = fake_a = self.G_BA(real_b)
                rec_b = self.G_AB(fake_a)
                D_A, D_B = self.D_A_plain, self.D_B_plain
                o["adv_ab"] = generator_term(loss, D_B(fake_b).float(), lambda: D_B(real_b).float())
                o["adv_ba"] = generator_term(loss, D_A(fake_a).float(), lambda: D_A(real_a).float())
                o["cyc_a"], o["cyc_b"] = cycle_loss(rec_a.float(), real_a), cycle_loss(rec_b.float(), real_b)
                o["idt_a"] = o["idt_b"] = None
                if t.lambda_identity > 0:
                    o["idt_a"] = identity_loss(self.G_BA(real_a).float(), real_a)
                    o["idt_b"] = identity_loss(self.G_AB(real_b).float(), real_b)
            return generator_objective(o["adv_ab"] + o["adv_ba"], o["cyc_a"], o["cyc_b"], o["idt_a"], o["idt_b"],
                                       lambda_cycle=t.lambda_cycle, lambda_identity=t.lambda_identity)

        loss_g = self.phases.run("Gmain", g_terms)
        adv_ab, adv_ba, cyc_a, cyc_b, idt_a, idt_b = (o[k] for k in ("adv_ab", "adv_ba", "cyc_a", "cyc_b",
                                                                      "idt_a", "idt_b"))
        # ---- D phase: real vs pooled fakes, each D's loss halved
        pooled_a, pooled_b = self.pool_a.query(o["fake_a"]), self.pool_b.query(o["fake_b"])

        def d_terms():
            with self._autocast():
                o["dr_a"], o["df_a"] = self.D_A(real_a).float(), self.D_A(pooled_a).float()
                o["dr_b"], o["df_b"] = self.D_B(real_b).float(), self.D_B(pooled_b).float()
                o["loss_d_a"] = 0.5 * loss.d_loss(o["dr_a"], o["df_a"])
                o["loss_d_b"] = 0.5 * loss.d_loss(o["dr_b"], o["df_b"])
            return {"a": o["loss_d_a"], "b": o["loss_d_b"]}

        loss_d = self.phases.run("Dmain", d_terms)
        loss_d_a, loss_d_b, dr_a, df_a, dr_b, df_b = (o[k] for k in ("loss_d_a", "loss_d_b", "dr_a", "df_a",
                                                                       "dr_b", "df_b"))
        zero = torch.zeros((), device=self.device)
        for k, v in (("loss_g", loss_g), ("g_adv_a2b", adv_ab), ("g_adv_b2a", adv_ba),
                     ("loss_cycle_a", cyc_a), ("loss_cycle_b", cyc_b),
                     ("loss_idt_a", zero if idt_a is None else idt_a), ("loss_idt_b", zero if idt_b is None else idt_b),
                     ("loss_d", loss_d), ("loss_d_a", loss_d_a), ("loss_d_b", loss_d_b),
                     ("d_real_a", dr_a.mean()), ("d_fake_a", df_a.mean()),
                     ("d_real_b", dr_b.mean()), ("d_fake_b", df_b.mean())):
            st.add(k, v)
        st.count("steps")

    def end_tick(self, nimg: int) -> Dict[str, float]:
        """Sets the lr for the next step (what a checkpoint written now holds); under DDP,
        rank 0 collects every rank's pools (only rank 0 writes the task state)."""
        self._apply_lr(nimg)
        if self.ctx.world > 1:
            self._pools_gathered = self._gather_pools()
        return {"lr_factor": self.lr_factor(nimg)}

    def _gather_pools(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = [{} for _ in range(self.ctx.world)]
        for key, pool in (("a", self.pool_a), ("b", self.pool_b)):
            sd = pool.state_dict()
            stored = sd["images"]
            if sd["count"] == 0:  # the same count on every rank: all empty alike
                parts = [stored] * self.ctx.world
            else:
                parts = list(dist.all_gather_cat(stored.to(self.device)).cpu().chunk(self.ctx.world))
            for r in range(self.ctx.world):
                out[r][key] = {"size": sd["size"], "count": sd["count"], "images": parts[r].clone()}
        return out

    # ------------------------------------------------------------------ evaluation and pictures
    def eval_network(self) -> nn.Module:
        return self.translator

    @torch.no_grad()
    def picture(self, path: Path) -> Path:
        """Rows: test A | G_AB(A) | G_BA(G_AB(A)), then test B | G_BA(B) | G_AB(G_BA(B))."""
        from torchvision.utils import save_image

        net = self.translator
        was_training = net.training
        net.eval()
        rows = []
        for x, there, back in ((self.grid_a, "a2b", "b2a"), (self.grid_b, "b2a", "a2b")):
            y = net(x, there).float()
            rows += [x, y, net(y, back).float()]
        net.train(was_training)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(torch.cat(rows).add(1).div(2).clamp(0, 1).cpu(), str(path), nrow=GRID, padding=2)
        return path

    # ------------------------------------------------------------------ state
    def state(self) -> Dict[str, Any]:
        pools = self._pools_gathered if self.ctx.world > 1 and self._pools_gathered is not None else \
            [{"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()}]
        return {"sampler_a": self.sampler_a.state_dict(), "sampler_b": self.sampler_b.state_dict(),
                "pools": pools, "nimg": self.nimg}

    def load_state(self, state: Dict[str, Any], same_world: bool) -> None:
        self.sampler_a.load_state_dict(state["sampler_a"])
        self.sampler_b.load_state_dict(state["sampler_b"])
        pools = state.get("pools") or []
        r = self.ctx.rank
        if r < len(pools):  # another worker count: ranks beyond the old count start empty pools
            self.pool_a.load_state_dict(pools[r]["a"])
            self.pool_b.load_state_dict(pools[r]["b"])
        self._apply_lr(int(state.get("nimg", 0)))

    def apply_optim_config(self) -> None:
        o = self.cfg.optim
        for opt, betas in ((self.opt_g, o.g_betas), (self.opt_d, o.d_betas)):
            for group in opt.param_groups:
                group["betas"] = tuple(betas)
        self._apply_lr(self.nimg)

    def applied(self) -> Dict[str, Any]:
        g, d, t = self.opt_g.param_groups[0], self.opt_d.param_groups[0], self.cfg.translate
        return {
            "applied_g_lr": float(g["lr"]), "applied_d_lr": float(d["lr"]),
            "applied_g_beta1": float(g["betas"][0]), "applied_g_beta2": float(g["betas"][1]),
            "applied_d_beta1": float(d["betas"][0]), "applied_d_beta2": float(d["betas"][1]),
            "applied_lr_factor": self.lr_factor(self.nimg),
            "applied_loss": type(self.loss).registry_name,
            "applied_batch_size": int(self.ctx.batch * self.ctx.world),
            "applied_arch": self.G_AB_plain.registry_name, "applied_d_arch": self.D_A_plain.registry_name,
            "applied_lambda_cycle": float(t.lambda_cycle), "applied_lambda_identity": float(t.lambda_identity),
            "applied_pool_size": int(self.pool_a.size),
        }

    # ------------------------------------------------------------------ export
    def model_spec(self) -> Dict[str, Any]:
        return {"channels": int(self.channels), "domains": list(self.domain_names), "directions": list(DIRECTIONS)}

    @classmethod
    def exported_state(cls, models: Dict[str, Any]):
        missing = [n for n in ("G_AB", "G_BA") if n not in models]
        if missing:
            raise ConfigError(f"checkpoint has no network {' or '.join(repr(n) for n in missing)} "
                              f"(not a translation checkpoint)")
        sd = {f"{n}.{k}": v for n in ("G_AB", "G_BA") for k, v in models[n].items()}
        return "G_AB+G_BA", sd

    @classmethod
    def build_inference(cls, cfg, spec: Dict[str, Any]) -> nn.Module:
        channels = int(spec["channels"])
        return CycleTranslator(build_generator(cfg, channels), build_generator(cfg, channels))

    def export(self) -> ExportedModel:
        module = CycleTranslator(unwrap(self.G_AB_plain), unwrap(self.G_BA_plain))
        spec = {"task": self.name, "network": "G_AB+G_BA", "config": self.cfg.to_dict(),
                "model_spec": self.model_spec()}
        extra = {"input": "x (N, C, H, W) in [-1, 1]; keyword direction='a2b' (default) or 'b2a'",
                 "domains": {"a": self.domain_names[0], "b": self.domain_names[1]}}
        return ExportedModel(module, spec, self.grid_a[:4].detach().cpu(), extra)
