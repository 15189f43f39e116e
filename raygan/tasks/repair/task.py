"""Task `repair`: degraded image -> clean image (denoising, inpainting, super-resolution), pix2pix style.

Batch: clean training images from the in-memory dataset (an `EpochSampler`, as `generate`),
degraded on the fly by the `repair.degradations` pipeline with random parameters drawn from
the task's own CPU generator (seeded per rank, checkpointed: exact resume). With `data.crop` the
images are kept whole and each sample is a random crop of the clean (HR) image, its position drawn
from that same generator (raygan.data.crops); the networks are built for the crop. Networks: G is a
registered image-to-image generator (`model.arch`, `model.g`) inside a `RepairNet` (SR input,
mask channel); D a registered conditional discriminator (`model.d_arch`, default patchgan;
`model.d`, `model.spectral_norm`) that sees the condition (the degraded image at full size, plus
the mask) and the image; an EMA copy of G with `ema.half_life_kimg` > 0. Phases (`RepairStep`):
a D step with any registered loss and regulariser, then G with
`adv_weight * adversarial + l1_weight * L1 (+ feature_weight * feature L1)`. With
`repair.adv_weight` 0 the D phase never runs (the plain regression baseline, same G); for the
first `repair.adv_warmup_kimg` G learns from L1 alone and D is not trained yet.

Judged by PSNR, SSIM, masked PSNR and FID of repaired test images (raygan.tasks.repair.eval).
Picture: rows degraded | repaired | clean of 8 fixed test images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from raygan.augment import flip_horizontal
from raygan.config.schema import SEED_MAX, Float, Int, TaskOptions
from raygan.data.patch_sources import load_patches
from raygan.data.patch_stream import StreamedPatches
from raygan.data.streamed import StreamedDataset, check_data_hash, load_training_data
from raygan.data.sampler import EpochSampler
from raygan.degradations import build_degradations
from raygan.errors import CheckpointError, ConfigError, RayganError
from raygan.losses import build_loss
from raygan.regularizers import REGULARIZERS
from raygan.tasks.base import TASKS, ExportedModel, Task, unwrap
from raygan.tasks.pair import GeneratorDiscriminatorPair
from raygan.tasks.repair.net import (build_discriminator, build_generator, check_networks, spec_from_pipeline)
from raygan.tasks.repair.step import Batch, RepairStep

PICTURE = 8  # test images in the per-tick picture


def degradation_seed(seed: int, rank: int) -> int:
    """The training degradation stream of one rank (distinct from the weights' and the noise's)."""
    return (int(seed) * 1_000_003 + 7_777_777 + int(rank)) % (1 << 63)


@TASKS.register("repair")
class RepairTask(GeneratorDiscriminatorPair, Task):
    name = "repair"
    search_space = "repair"
    unused = {"conditional": "an image is its own condition",
              "diffaugment": "D sees a condition and an image; only augment.flip applies",
              "ada": "D sees a condition and an image; only augment.flip applies",
              "n_critic": "one D step per G step, as pix2pix",
              "init_from": "starting from another run's networks is for generate runs so far",
              "freeze_d": "its discriminators do not name their blocks"}

    class Options(TaskOptions):
        """The config's `repair:` section: degraded -> clean, an L1 term beside the adversarial one."""

        degradations: Union[str, List[Dict[str, Any]]] = "noise:sigma=0.5"  # in order; see raygan.degradations
        # fixes each test image's degradation (part of the metric protocol)
        eval_seed: Int = Field(default=2024, ge=0, le=SEED_MAX)
        l1_weight: Float = Field(default=100.0, ge=0)  # pix2pix's lambda
        adv_weight: Float = Field(default=1.0, ge=0)  # 0: the plain regression baseline, same network
        feature_weight: Float = Field(default=0.0, ge=0)  # feature matching on `feature_extractor`
        feature_extractor: str = "fmnist-cnn"
        adv_warmup_kimg: Float = Field(default=0.0, ge=0)  # L1 (+ features) only this long; D not trained yet
        # with data.crop: score the whole test images (data.resolution) or a fixed centre crop of each (data.crop)
        eval_size: Literal["full", "crop"] = "full"

    @classmethod
    def check_config(cls, cfg) -> None:
        from raygan.metrics.registry import METRICS

        super().check_config(cfg)
        r = cfg.repair
        pipeline = build_degradations(r.degradations, seed=r.eval_seed)
        if cfg.data.crop is not None and cfg.data.crop % pipeline.scale:
            raise ConfigError(f"config: data.crop {cfg.data.crop} is not divisible by the super-resolution scale "
                              f"{pipeline.scale}: use a multiple of {pipeline.scale}")
        for size in sorted({cfg.data.resolution, cfg.data.train_size}):  # the training crops and the test images
            pipeline.check(size, cfg.data.channels or 1)
        spec = spec_from_pipeline(pipeline, cfg.data.channels or 1)
        check_networks(cfg, spec)
        with torch.device("meta"):  # option values and sizes, as a run builds them (no memory used)
            build_generator(cfg, spec)
            build_discriminator(cfg, spec)
        build_loss(cfg.loss.name, cfg.loss.kwargs)
        REGULARIZERS.build(cfg.regularizer.name, **cfg.regularizer.kwargs)
        if r.feature_weight > 0:
            from raygan.metrics import EXTRACTORS

            EXTRACTORS.get(r.feature_extractor)
        if r.l1_weight == 0 and r.adv_weight == 0 and r.feature_weight == 0:
            raise ConfigError("config: repair: l1_weight, adv_weight and feature_weight are all 0: nothing to train")
        masked = [m for m in cfg.eval.metrics if METRICS.meta(m).get("needs_mask")]
        if masked and not pipeline.has_mask:
            raise ConfigError(f"config: eval.metrics: {', '.join(masked)} needs a mask degradation (box or strokes)")

    # ------------------------------------------------------------------ building
    def setup_data(self) -> None:
        cfg, d, ctx = self.cfg, self.cfg.data, self.ctx
        self.pipeline = build_degradations(cfg.repair.degradations, seed=cfg.repair.eval_seed)
        if d.crop is None:
            self.data = load_training_data(d.name, root=d.root, resolution=d.resolution, channels=d.channels,
                                           limit=d.limit, download=d.download, stream=d.stream).to(self.device)
            n, channels = len(self.data.labels), self.data.channels
        else:  # patches: images kept whole (longer side <= resolution), a random crop of each per step
            self.data = load_patches(d.name, root=d.root, split="train", max_side=d.resolution, channels=d.channels,
                                     limit=d.limit, download=d.download, stream=d.stream
                                     ).check(d.crop, d.name).to(self.device)
            n, channels = len(self.data), self.data.channels
        self.pipeline.check(d.train_size, channels)
        if ctx.batch * ctx.world > n:
            raise ConfigError(f"config: optim.batch_size {cfg.optim.batch_size} is larger than the "
                              f"dataset ({n} images)")
        self.sampler = EpochSampler(n, ctx.batch, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world)
        if isinstance(self.data, (StreamedDataset, StreamedPatches)):  # a large prepared dataset: read ahead
            self.data.read_ahead(self.sampler)
        self.deg_gen = torch.Generator().manual_seed(degradation_seed(cfg.seed, ctx.rank))
        self.spec = spec_from_pipeline(self.pipeline, channels)

    def build(self) -> None:
        cfg, ctx, r, o = self.cfg, self.ctx, self.cfg.repair, self.cfg.optim
        G = build_generator(cfg, self.spec).to(self.device)
        D = build_discriminator(cfg, self.spec).to(self.device)
        self.place_pair(G, D)
        G, D = self.G, self.D
        self.features = self._feature_fn() if r.feature_weight > 0 else None
        self.step = RepairStep(G=G, D=D, loss=self.loss, regularizer=self.regularizer, opt_g=self.opt_g,
                               opt_d=self.opt_d, l1_weight=r.l1_weight, adv_weight=r.adv_weight,
                               feature_weight=r.feature_weight, features=self.features,
                               warmup_nimg=int(round(r.adv_warmup_kimg * 1000)), device=self.device,
                               amp=ctx.amp, G_ema=self.G_ema, ema_half_life_kimg=cfg.ema.half_life_kimg,
                               ema_rampup=cfg.ema.rampup, global_batch=o.batch_size,
                               phases=self.phase_list)
        self.stats = self.step.stats
        self.networks = {"G": self.G_plain, "D": self.D_plain, **({"G_ema": self.G_ema} if self.G_ema else {})}
        self.optimizers = {"G": self.opt_g, "D": self.opt_d}
        self.scalers = self.step.precision.scalers  # {"G", "D"}: the checkpoint's keys
        self._picture: Optional[tuple] = None
        self.steps = 0  # train steps on this rank (reseeds the degradations when the world size changes)

    def _feature_fn(self):
        """Differentiable features of [-1, 1] images on the frozen `repair.feature_extractor`."""
        from raygan.metrics import build_extractor

        name = self.cfg.repair.feature_extractor
        weights = self.cfg.eval.inception_weights if name == "inception" else None
        ext = build_extractor(name, weights=weights, device=self.device)
        self.feature_extractor = ext

        def features(x: torch.Tensor) -> torch.Tensor:
            return ext.embed(ext.preprocess((x + 1) * 127.5))["features"].float()

        return features

    @classmethod
    def with_eval_seed(cls, cfg, seed: int):
        """Another evaluation seed draws new test degradations (`repair.eval_seed`): the repair
        evaluation has no noise of its own, so `eval.seed` alone would change nothing."""
        cfg = super().with_eval_seed(cfg, seed)
        return cfg.model_copy(update={"repair": cfg.repair.model_copy(update={"eval_seed": int(seed)})})

    @classmethod
    def eval_uses_seed(cls, cfg) -> bool:
        """True when the degradations draw anything (noise, masks, a parameter range): probed on a
        grey image with two seeds; a fixed blur/downsample/JPEG chain is deterministic."""
        pipeline = build_degradations(cfg.repair.degradations, seed=0)
        c, r = cfg.data.channels or 1, cfg.data.resolution
        x = torch.full((1, c, r, r), 0.5)
        a, b = pipeline.evaluate(x, [0], seed=1), pipeline.evaluate(x, [0], seed=2)
        return not torch.equal(a.image, b.image) or (a.mask is not None and not torch.equal(a.mask, b.mask))

    @classmethod
    def evaluator_for(cls, cfg, device, model_spec):
        from raygan.tasks.repair.eval import Evaluator

        return Evaluator(cfg, device, model_spec)

    # ------------------------------------------------------------------ training
    def next_batch(self) -> Batch:
        idx = self.sampler.next()
        if self.cfg.data.crop is None:
            x = self.data.images[idx.to(self.device)].float().div_(255.0)
        else:  # the crop of the clean (HR) image, positions from the checkpointed degradation stream
            x = self.data.crops(idx, self.cfg.data.crop, self.deg_gen).to(self.device, non_blocking=True)
            x = x.float().div_(255.0)
        if self.cfg.augment.flip:
            x = flip_horizontal(x, generator=self.deg_gen)
        deg = self.pipeline.train(x, self.deg_gen)
        clean, degraded = x.mul(2).sub_(1), deg.image.mul(2).sub_(1)
        mask = deg.mask
        if self.ctx.channels_last:
            clean, degraded = (t.contiguous(memory_format=torch.channels_last) for t in (clean, degraded))
        return Batch(clean, degraded, mask)

    def images_per_step(self) -> int:
        return self.cfg.optim.batch_size

    def train_step(self, nimg: int) -> None:
        self.step.step(self.next_batch(), nimg)
        self.steps += 1

    def read_stats(self, reduce=None) -> Dict[str, float]:
        """The tick's statistics; D's (and the adversarial term's) only once D has trained in it,
        so an L1-only warm-up does not report zeros as if they were losses."""
        d_ran = "d_steps" in self.stats.counters and self.stats.counted("d_steps") > 0  # the same on every rank
        out = super().read_stats(reduce)
        if not d_ran:
            for k in ("loss_d", "reg", "d_real", "d_fake", "adv"):
                out.pop(k, None)
        return out

    # ------------------------------------------------------------------ evaluation and pictures
    def eval_network(self) -> nn.Module:
        return self.G_ema if self.G_ema is not None else self.G_plain

    def _picture_cases(self):
        """(clean uint8, degraded [0, 1], mask) of 8 fixed images: the evaluation split's first
        ones (the training set's when that split does not exist), degraded with eval seeding; their
        centre crops for a patch-trained run."""
        if self._picture is None:
            from raygan.tasks.repair.eval import EvalSet

            crops = self.cfg.data.crop is not None  # a patch-trained run shows (and exports) crops
            test = EvalSet(self.cfg, self.spec["channels"], crops=crops)
            try:
                n = min(PICTURE, len(test))
            except RayganError:
                test = EvalSet(self.cfg, self.spec["channels"], split="train", crops=crops)
                n = min(PICTURE, len(test))
            deg, mask = test.degraded(0, n)
            self._picture = (test.clean[:n], deg, mask)
        return self._picture

    @torch.no_grad()
    def picture(self, path: Path) -> Path:
        from torchvision.utils import save_image

        from raygan.tasks.repair.eval import full_mask, repair_images

        clean, deg, mask = self._picture_cases()
        repaired = repair_images(self.eval_network(), deg, mask, self.device, PICTURE)
        size = tuple(clean.shape[-2:])
        shown = F.interpolate(deg, size=size, mode="nearest") if deg.shape[-2:] != size else deg.clone()
        m = full_mask(mask, size)
        if m is not None:  # holes shown in red (RGB) or white (grey), so they read as missing
            hole = torch.tensor([1.0, 0.0, 0.0] if shown.shape[1] == 3 else [1.0]).view(1, -1, 1, 1)
            shown = torch.where(m > 0.5, hole.expand_as(shown), shown)
        rows = torch.cat([shown, repaired.float() / 255, clean.float() / 255])
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(rows.cpu(), str(path), nrow=clean.shape[0], padding=2)
        return path

    # ------------------------------------------------------------------ state
    def state(self) -> Dict[str, Any]:
        st = {"sampler": self.sampler.state_dict(), "degradation_rng": self.deg_gen.get_state(),
              "d_steps": self.step.d_steps, "steps": self.steps}
        if getattr(self.data, "content_hash", None) is not None:  # a prepared dataset (whole or patches)
            st["data_hash"] = self.data.content_hash
        return st

    def load_state(self, state: Dict[str, Any], same_world: bool) -> None:
        check_data_hash(state, self.data)
        self.sampler.load_state_dict(state["sampler"])
        self.step.d_steps = int(state["d_steps"])
        self.steps = int(state.get("steps", 0))
        if same_world:
            try:
                self.deg_gen.set_state(state["degradation_rng"])
            except (KeyError, RuntimeError, TypeError) as e:
                raise CheckpointError(f"checkpoint: degradation generator state unusable: {e}") from None
        else:  # another worker count: this rank's stream restarts, distinct per rank and position
            self.deg_gen.manual_seed(degradation_seed(self.cfg.seed, self.ctx.rank) + 65_537 * self.steps)

    def applied(self) -> Dict[str, Any]:
        s = self.step
        return {
            **self.pair_applied(),
            "applied_d_arch": self.D_plain.registry_name,
            "applied_l1_weight": s.l1_weight, "applied_adv_weight": s.adv_weight,
            "applied_feature_weight": s.feature_weight, "applied_adv_warmup_kimg": s.warmup_nimg / 1000.0,
            "applied_degradations": str(self.pipeline.describe()["ops"]),
        }

    # ------------------------------------------------------------------ export
    def model_spec(self) -> Dict[str, Any]:
        return dict(self.spec)

    @classmethod
    def build_inference(cls, cfg, spec: Dict[str, Any]) -> nn.Module:
        for k in ("channels", "scale", "mask"):
            if k not in spec:
                raise CheckpointError(f"repair model spec lacks '{k}' (got {sorted(spec)})")
        return build_generator(cfg, spec)

    def export(self) -> ExportedModel:
        G = unwrap(self.eval_network())
        spec = {"task": self.name, "network": "G_ema" if self.G_ema is not None else "G",
                "config": self.cfg.to_dict(), "model_spec": self.model_spec()}
        _, deg, mask = self._picture_cases()
        x = deg[:4] * 2 - 1
        example = torch.cat([x, mask[:4]], 1) if mask is not None else x  # one tensor: image (+ mask)
        return ExportedModel(G, spec, example.detach().cpu())
