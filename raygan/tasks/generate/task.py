"""Task `generate`: noise (and a class label) -> image, the GAN of the papers this project serves.

Batch: real images (+ labels when conditional) from the in-memory dataset, latents drawn per
step; with `data.per_class: K` the dataset is the class-balanced K-per-class subset picked by
`data.subset_seed` (raygan.data.subsets; the same images on every rank and after a resume, and
no other image is ever drawn). Networks: a registered architecture pair (G, D), an EMA copy of
G. Phases: n_critic D steps and one G step (`GANStep`), composed from the registered loss,
regulariser and D-step augmentation (`augment.diffaugment` then `augment.ada`,
raygan.augment.build_d_augment). Judged by feature metrics (FID, KID, IS, PR, DC) and, for a
conditional G, classifier metrics (CAS, GAN-test; raygan.tasks.generate.eval); picture: a
fixed 8x8 grid. Per tick it logs ADA's p and r_t when ADA runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch
from torch import nn

from raygan.augment import build_d_augment, flip_horizontal
from raygan.data.streamed import StreamedDataset, check_data_hash, load_training_data
from raygan.data.sampler import EpochSampler
from raygan.data.subsets import per_class_indices, subset_protocol
from raygan.engine import dist
from raygan.errors import CheckpointError, ConfigError
from raygan.losses import build_loss
from raygan.models import ARCHITECTURES, build_models
from raygan.models.transfer import freeze_blocks
from raygan.regularizers import REGULARIZERS
from raygan.tasks.base import TASKS, ExportedModel, Task, unwrap
from raygan.tasks.generate.step import GANStep
from raygan.tasks.pair import GeneratorDiscriminatorPair
from raygan.tasks.transfer import check_source, load_ema, load_pair
from raygan.tasks.generate.checks import check_classes, check_generate

GRID = 64  # images in the per-tick sample grid


@TASKS.register("generate")
class GenerateTask(GeneratorDiscriminatorPair, Task):
    name = "generate"
    class_term = True
    unused = {"crop": "it trains on whole images; patch training is for repair and translate"}

    @classmethod
    def default_search_space(cls, cfg) -> str:
        """A low-data run (`data.per_class`) searches its D augmentation (`lowdata`), not the architecture; an
        architecture that names a space (stylegan2) gets it."""
        if cfg.data.per_class is not None:
            return "lowdata"
        # an architecture with its own knobs names its space (stylegan2)
        return getattr(ARCHITECTURES.get(cfg.model.arch), "search_space", None) or cls.search_space

    @classmethod
    def check_config(cls, cfg) -> None:
        from raygan.metrics.registry import needs_classifier

        super().check_config(cfg)
        ARCHITECTURES.get(cfg.model.arch)
        build_loss(cfg.loss.name, cfg.loss.kwargs)
        REGULARIZERS.build(cfg.regularizer.name, **cfg.regularizer.kwargs)  # its kwargs, as a run builds it
        build_d_augment(cfg.augment)
        # the networks, as a run builds them but on the meta device (no memory, no random draws), so
        # option names, values and sizes fail here (and in --dry-run), before any data is read; the
        # data's channels and classes are not known yet: the smallest (1 channel, 2 classes) stand in
        m = cfg.model
        with torch.device("meta"):
            _, D = build_models(m.arch, resolution=cfg.data.resolution, channels=cfg.data.channels or 1,
                                z_dim=m.z_dim, num_classes=2 if m.conditional else 0, spectral_norm=False,
                                g=dict(m.g), d=dict(m.d), class_head=cfg.loss.ac_weight > 0 and m.conditional)
            freeze_blocks(D, m.freeze_d)  # more blocks than D has: said here (and in --dry-run)
        if cfg.loss.ac_weight and not cfg.model.conditional:
            raise ConfigError("config: loss.ac_weight: the AC-GAN class term needs a class-conditional "
                              "model (model.conditional: true)")
        clf = [m for m in cfg.eval.metrics if needs_classifier(m)]
        if clf and not cfg.model.conditional:
            raise ConfigError(f"config: eval.metrics: {', '.join(clf)} need a class-conditional generator "
                              f"(model.conditional: true); this model is unconditional")

    # ------------------------------------------------------------------ building
    def setup_data(self) -> None:
        d, ctx = self.cfg.data, self.ctx
        data = load_training_data(d.name, root=d.root, resolution=d.resolution, channels=d.channels,
                                  limit=d.limit, download=d.download, stream=d.stream)
        self.subset_indices, self.subset = None, None
        if d.per_class is not None:  # the K-per-class subset: the only images this run ever draws
            self.subset_indices = per_class_indices(data.labels, d.per_class, d.subset_seed, data.num_classes)
            self.subset = subset_protocol(self.subset_indices, d.per_class, d.subset_seed)
            data = data.take(self.subset_indices, f"per_class={d.per_class}, subset_seed={d.subset_seed}")
        # a small dataset lives on the device as one uint8 tensor and is indexed
        check_classes(self.cfg, data)
        check_generate(self.cfg)  # a warning: said when a run is built, not when a search validates configs
        self.data = data.to(self.device)
        self.num_classes = self.data.num_classes if self.cfg.model.conditional else 0
        if ctx.batch * ctx.world > len(self.data.labels):
            raise ConfigError(f"config: optim.batch_size {self.cfg.optim.batch_size} is larger than the "
                              f"dataset ({len(self.data.labels)} images)")
        self.sampler = EpochSampler(len(self.data.labels), ctx.batch, seed=self.cfg.seed,
                                    rank=ctx.rank, world_size=ctx.world)
        if isinstance(self.data, StreamedDataset):  # a large prepared dataset: the next batches are read ahead
            self.data.read_ahead(self.sampler)

    def build(self) -> None:
        cfg, ctx, m = self.cfg, self.ctx, self.cfg.model
        G, D = build_models(m.arch, resolution=cfg.data.resolution, channels=self.data.channels, z_dim=m.z_dim,
                            num_classes=self.num_classes, spectral_norm=m.spectral_norm,
                            g=dict(m.g), d=dict(m.d), class_head=cfg.loss.ac_weight > 0)
        if ctx.init is not None:  # --init-from: the source's weights (raygan.tasks.transfer)
            check_source(cfg, ctx.init)
            load_pair(ctx.init, G, D, self.data.channels)
        freeze_blocks(D, m.freeze_d)  # FreezeD: before DDP sees which parameters train
        G, D = G.to(self.device), D.to(self.device)
        self.place_pair(G, D)
        load_ema(ctx.init, self.G_ema)
        G, D, o = self.G, self.D, cfg.optim
        self.augment = build_d_augment(cfg.augment)
        self.step = GANStep(G=G, D=D, loss=self.loss, regularizer=self.regularizer, augment=self.augment,
                            opt_g=self.opt_g, opt_d=self.opt_d, n_critic=o.n_critic, z_dim=m.z_dim,
                            num_classes=self.num_classes, device=self.device, amp=ctx.amp,
                            G_ema=self.G_ema, ema_half_life_kimg=cfg.ema.half_life_kimg,
                            ema_rampup=cfg.ema.rampup, global_batch=o.batch_size,
                            class_weight=cfg.loss.ac_weight, phases=self.phase_list,
                            g_regularizer=self.g_regularizer)
        self.stats = self.step.stats
        self.networks = {"G": self.G_plain, "D": self.D_plain, **({"G_ema": self.G_ema} if self.G_ema else {})}
        self.optimizers = {"G": self.opt_g, "D": self.opt_d}
        self.scalers = self.step.precision.scalers  # {"G", "D"}: the checkpoint's keys
        # the picture's latents come from their own generator: they never touch the training RNG
        grid_gen = torch.Generator(device=self.device).manual_seed(cfg.eval.seed)
        self.grid_z = torch.randn(GRID, m.z_dim, device=self.device, generator=grid_gen)
        self.grid_y = (torch.arange(GRID, device=self.device) % self.num_classes) if self.num_classes else None

    @classmethod
    def evaluator_for(cls, cfg, device, model_spec):
        from raygan.tasks.generate.eval import Evaluator

        return Evaluator(cfg, device, channels=int(model_spec["channels"]), model_spec=model_spec)

    # ------------------------------------------------------------------ training
    def next_real(self):
        idx = self.sampler.next().to(self.device)
        x = self.data.images[idx].float().div_(127.5).sub_(1.0)
        if self.cfg.augment.flip:
            x = flip_horizontal(x)
        if self.ctx.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.data.labels[idx] if self.num_classes else None
        return x, y

    def images_per_step(self) -> int:
        return self.cfg.optim.batch_size * self.cfg.optim.n_critic

    def train_step(self, nimg: int) -> None:
        self.step.step(self.next_real, nimg)

    def end_tick(self, nimg: int) -> Dict[str, float]:
        """ADA's p now and r_t over the tick (every rank, in lockstep); nothing without ADA."""
        if self.augment is None:
            return {}
        return self.augment.end_tick(dist.all_reduce_sum, self.ctx.rank)

    # ------------------------------------------------------------------ evaluation and pictures
    def eval_network(self) -> nn.Module:
        """The generator used for samples and metrics: the EMA one when enabled."""
        return self.G_ema if self.G_ema is not None else self.G_plain

    @torch.no_grad()
    def picture(self, path: Path) -> Path:
        from torchvision.utils import save_image

        G = self.eval_network()
        was_training = G.training
        G.eval()
        imgs = G(self.grid_z, self.grid_y).float()
        G.train(was_training)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(imgs.add(1).div(2).clamp(0, 1).cpu(), str(path), nrow=8, padding=2)
        return path

    # ------------------------------------------------------------------ state
    def state(self) -> Dict[str, Any]:
        st: Dict[str, Any] = {"sampler": self.sampler.state_dict(), "d_steps": self.step.d_steps,
                              "g_steps": self.step.phases.counts["G"]}
        if self.g_regularizer is not None:  # path length's running mean
            st["g_regularizer"] = self.g_regularizer.state_dict()
        if self.augment is not None and self.augment.adaptive is not None:
            st["augment"] = self.augment.state_dict()  # ADA's p and accumulators
        if self.subset is not None:
            st["subset_hash"] = self.subset["subset_hash"]
        if self.data.content_hash is not None:
            st["data_hash"] = self.data.content_hash
        return st

    def load_state(self, state: Dict[str, Any], same_world: bool) -> None:
        if self.subset is not None and state.get("subset_hash") not in (None, self.subset["subset_hash"]):
            raise CheckpointError(f"the checkpoint was trained on another subset (hash {state['subset_hash']}) "
                                  f"than data.per_class={self.cfg.data.per_class}, data.subset_seed="
                                  f"{self.cfg.data.subset_seed} picks ({self.subset['subset_hash']})")
        check_data_hash(state, self.data)
        self.sampler.load_state_dict(state["sampler"])
        self.step.d_steps = int(state["d_steps"])
        if "g_steps" in state:  # G's lazy phase runs on this clock (older checkpoints lack it)
            self.step.phases.counts["G"] = int(state["g_steps"])
        if self.g_regularizer is not None and "g_regularizer" in state:
            self.g_regularizer.load_state_dict(state["g_regularizer"])
        if self.augment is not None and "augment" in state:
            self.augment.load_state_dict(state["augment"], rank=self.ctx.rank)

    def applied(self) -> Dict[str, Any]:
        return {
            **self.pair_applied(),
            "applied_n_critic": int(self.step.n_critic),
            "applied_ac_weight": float(self.step.class_weight),
            "applied_diffaugment": ",".join(self.augment.diffaugment.ops)
            if self.augment is not None and self.augment.diffaugment is not None else "",
            "applied_augment": self.augment.describe() if self.augment is not None else "",
            **self._applied_ada(),
            "applied_per_class": int(self.subset["per_class"]) if self.subset else 0,
            "applied_train_images": int(len(self.data.labels)),
        }

    def _applied_ada(self) -> Dict[str, Any]:
        ada = self.augment.adaptive if self.augment is not None else None
        if ada is None:
            return {"applied_ada": 0}
        return {"applied_ada": 1, "applied_ada_ops": ",".join(ada.ops),
                "applied_ada_target": "fixed p" if ada.target is None else float(ada.target),
                "applied_ada_speed_kimg": float(ada.speed_kimg), "applied_ada_interval": int(ada.interval)}

    # ------------------------------------------------------------------ export
    def model_spec(self) -> Dict[str, Any]:
        spec: Dict[str, Any] = {"channels": int(self.data.channels), "num_classes": int(self.num_classes)}
        if self.subset is not None:  # which images it learnt from (the metric protocol names them)
            spec["train_subset"] = dict(self.subset)
        return spec

    @classmethod
    def build_inference(cls, cfg, spec: Dict[str, Any]) -> nn.Module:
        m = cfg.model
        G, _ = build_models(m.arch, resolution=cfg.data.resolution, channels=int(spec["channels"]), z_dim=m.z_dim,
                            num_classes=int(spec["num_classes"]), spectral_norm=m.spectral_norm,
                            g=dict(m.g), d=dict(m.d), class_head=cfg.loss.ac_weight > 0)
        return G

    def export(self) -> ExportedModel:
        G = unwrap(self.eval_network())
        spec = {"task": self.name, "network": "G_ema" if self.G_ema is not None else "G",
                "config": self.cfg.to_dict(), "model_spec": self.model_spec()}
        example = self.grid_z[:4].detach().cpu()
        return ExportedModel(G, spec, example)


