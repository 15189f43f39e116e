"""The typed config: every section, its defaults and its checks (unknown keys fail loudly).

Sections shared by every task (data, model, optim, train, eval, tracking, ...) and the sections
of one task (`repair`, `translate`) live here; what a name means is checked against the
registries by `raygan.config.load.check_names` and the task's own `check_config`.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


#: seeds reach numpy (0..2**32-1 only), torch and Python's random: one range for all of them
SEED_MAX = 2**32 - 1


class _Strict(BaseModel):
    # every float must be finite: an inf learning rate or total_kimg is refused, not trained
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(_Strict):
    name: str = "fashion-mnist"
    root: Optional[str] = None
    resolution: int = 32
    channels: Optional[int] = None  # None: the source's native channels
    limit: Optional[int] = Field(default=None, gt=0)
    download: bool = False
    per_class: Optional[int] = Field(default=None, gt=0)  # a class-balanced subset: K images per class
    subset_seed: int = 0  # which K per class (the same on every rank and after resume)
    domain_a: Optional[Union[int, str]] = None  # translate: the class (name or index) of domain A
    domain_b: Optional[Union[int, str]] = None  # translate: the class of domain B


class ModelConfig(_Strict):
    arch: str = "dcgan"
    z_dim: int = Field(default=100, gt=0)
    conditional: bool = False
    spectral_norm: bool = False
    d_arch: Optional[str] = None  # image-to-image tasks: the discriminator's name (default patchgan)
    g: Dict[str, Any] = Field(default_factory=dict)  # extra generator kwargs, e.g. ngf
    d: Dict[str, Any] = Field(default_factory=dict)  # extra discriminator kwargs, e.g. ndf


class LossConfig(_Strict):
    name: str = "ns"
    # the loss's own options, e.g. {real_target: 0.9} for ns-smooth; checked against the loss's signature
    # (raygan.losses.build_loss: unknown keys refused, naming the valid ones)
    kwargs: Dict[str, Any] = Field(default_factory=dict)
    # AC-GAN's auxiliary class term (task generate, conditional): D's class head learns the real labels and
    # G is pushed to make fakes that head assigns to their labels; 0 = off (projection conditioning only)
    ac_weight: float = Field(default=0.0, ge=0)


class RegularizerConfig(_Strict):
    name: str = "none"
    kwargs: Dict[str, Any] = Field(default_factory=dict)  # e.g. {weight: 10} or {weight: 1, every: 16}


class AdaConfig(_Strict):
    """StyleGAN2-ADA's adaptive augmentation; p follows r_t = E[sign(D(real))] toward `target`.
    Present = on (`--set augment.ada.target=0.6`); `enabled: false` switches it off by a value,
    so a search space can choose it (`augment.ada.enabled: {choice: [false, true]}`)."""

    enabled: bool = True
    target: Optional[float] = Field(default=0.6, gt=0, lt=1)  # None: p stays fixed
    speed_kimg: float = Field(default=500.0, gt=0)  # p can go 0 -> 1 in this many kimg
    interval: int = Field(default=4, ge=1)  # D steps between adjustments
    p: float = Field(default=0.0, ge=0, le=1)  # initial probability
    ops: str = "bgc"  # blit (flip, rot90, int translation), geom, color, or a comma list of ops


class AugmentConfig(_Strict):
    diffaugment: str = ""  # e.g. "color,translation,cutout", applied to real and fake in the D step
    ada: Optional[AdaConfig] = None  # adaptive augmentation in the D step (after DiffAugment if both)
    flip: bool = False  # classic horizontal flips of real images


class OptimConfig(_Strict):
    batch_size: int = Field(default=64, gt=0)  # global: split evenly across workers
    g_lr: float = Field(default=2e-4, gt=0)
    d_lr: float = Field(default=2e-4, gt=0)
    g_betas: Tuple[float, float] = (0.5, 0.999)
    d_betas: Tuple[float, float] = (0.5, 0.999)
    n_critic: int = Field(default=1, ge=1)  # D steps per G step

    @field_validator("g_betas", "d_betas")
    @classmethod
    def _betas(cls, v: Tuple[float, float]) -> Tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("betas must lie in [0, 1)")
        return v


class EMAConfig(_Strict):
    half_life_kimg: float = Field(default=0.0, ge=0)  # 0 disables the EMA generator
    rampup: Optional[float] = Field(default=None, gt=0)  # half-life <= rampup * kimg early on


class TrainConfig(_Strict):
    total_kimg: float = Field(default=100.0, gt=0)
    tick_kimg: float = Field(default=4.0, gt=0)
    snapshot_ticks: int = Field(default=5, ge=1)
    eval_ticks: int = Field(default=5, ge=0)  # 0: evaluate only at the end
    sample_ticks: int = Field(default=5, ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: Literal["none", "bf16", "fp16"] = "none"  # GPU only; ignored on CPU
    channels_last: bool = True  # GPU only
    compile: bool = False
    threads: Optional[int] = Field(default=None, ge=1)  # torch intra-op threads
    nan_ticks: int = Field(default=2, ge=1)  # non-finite ticks in a row before giving up


class EvalConfig(_Strict):
    extractor: str = "fmnist-cnn"
    metrics: List[str] = Field(default_factory=lambda: ["fid"])
    num_samples: int = Field(default=5000, gt=1)  # during training
    final_num_samples: int = Field(default=10000, gt=1)  # at the end of the run
    # k-NN metrics (pr, dc) compare this many fakes with as many reals at every evaluation, so tick
    # and final values are comparable; None: min(num_samples, final_num_samples)
    knn_samples: Optional[int] = Field(default=None, gt=5)
    reference_split: str = "test"
    batch_size: int = Field(default=500, gt=0)
    inception_weights: Optional[str] = None
    seed: int = Field(default=123, ge=0, le=SEED_MAX)  # fixed noise for evaluation, independent of training


class TrackingConfig(_Strict):
    enabled: bool = True
    uri: Optional[str] = None  # None: sqlite:///<cwd>/mlflow.db
    experiment: str = "raygan"
    run_name: Optional[str] = None
    register_model: Optional[str] = "auto"  # auto: raygan-[<task>-]<dataset>-<arch>; None: log, do not register


class RepairConfig(_Strict):
    """Task `repair`: degraded -> clean, with an L1 reconstruction term beside the adversarial one."""

    degradations: Union[str, List[Dict[str, Any]]] = "noise:sigma=0.5"  # in order; see raygan.degradations
    # fixes each test image's degradation (part of the metric protocol)
    eval_seed: int = Field(default=2024, ge=0, le=SEED_MAX)
    l1_weight: float = Field(default=100.0, ge=0)  # pix2pix's lambda
    adv_weight: float = Field(default=1.0, ge=0)  # 0: the plain regression baseline, same network
    feature_weight: float = Field(default=0.0, ge=0)  # feature matching on `feature_extractor`
    feature_extractor: str = "fmnist-cnn"
    adv_warmup_kimg: float = Field(default=0.0, ge=0)  # L1 (+ features) only this long; D not trained yet


class TranslateConfig(_Strict):
    """Task `translate` (CycleGAN): cycle and identity terms, history pools, lr decay."""

    lambda_cycle: float = Field(default=10.0, ge=0)
    lambda_identity: float = Field(default=0.5, ge=0)  # as a fraction of lambda_cycle
    pool_size: int = Field(default=50, ge=0)
    lr_decay_start: float = Field(default=0.5, ge=0, le=1)  # fraction of total_kimg, then linear to 0


class Config(_Strict):
    task: str = "generate"  # a registered task: generate | repair | translate
    seed: int = Field(default=0, ge=0, le=SEED_MAX)
    preset: Optional[str] = None  # informational: which preset this came from
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    regularizer: RegularizerConfig = Field(default_factory=RegularizerConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    ema: EMAConfig = Field(default_factory=EMAConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    repair: RepairConfig = Field(default_factory=RepairConfig)
    translate: TranslateConfig = Field(default_factory=TranslateConfig)

    def to_dict(self) -> Dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def arch_hash(self) -> str:
        """Identity of the trained networks: a checkpoint only loads into the same one."""
        ident = {
            "task": self.task,
            "model": self.model.model_dump(mode="json"),
            "resolution": self.data.resolution,
            "channels": self.data.channels,
            "data": self.data.name,
        }
        return _hash(ident)

    def config_hash(self) -> str:
        return _hash(self.to_dict())


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
