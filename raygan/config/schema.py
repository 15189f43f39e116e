"""The typed config: every section, its defaults and its checks (unknown keys fail loudly).

Sections shared by every task (data, model, optim, train, eval, tracking, ...) live here; a task's
own section (`repair`, `translate`) is its `Options` model, registered with the task
(raygan.config.sections). What a name means is checked against the registries by the task layer
(raygan.tasks.check), which `build_config` runs.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from typing_extensions import Annotated

from raygan.config.sections import option_sections


#: seeds reach numpy (0..2**32-1 only), torch and Python's random: one range for all of them
SEED_MAX = 2**32 - 1
#: size bounds: far above any real use, low enough that a typo or a hostile file cannot ask for
#: terabytes before anything is checked (model widths and the parameter count are bounded where
#: networks are built: raygan.models.limits)
MAX_Z_DIM = 16384
MAX_SAMPLES = 1_000_000  # generated images per evaluation
MAX_BATCH = 65536
MAX_EVAL_BATCH = 4096
MIN_CROP, MAX_CROP = 8, 4096  # data.crop in px  # images per extractor forward (inception: 3x299x299 floats each)


def _no_bool(v: Any) -> Any:
    """YAML's true/false are not numbers: `batch_size: true` must not become 1."""
    if isinstance(v, bool):
        raise ValueError("expected a number, not true/false")
    return v


#: int and float fields that refuse booleans (pydantic's lax mode would read true as 1)
Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]


class _Strict(BaseModel):
    # every float must be finite: an inf learning rate or total_kimg is refused, not trained
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(_Strict):
    name: str = "fashion-mnist"
    root: Optional[str] = None
    resolution: Int = 32
    channels: Optional[Int] = None  # None: the source's native channels
    limit: Optional[Int] = Field(default=None, gt=0)
    download: bool = False
    # a prepared dataset (raygan data prepare): None streams it when its fitted pixels exceed 1 GiB
    # (raygan.data.streamed.STREAM_THRESHOLD_BYTES), else loads it into memory; true/false force one path
    stream: Optional[bool] = None
    per_class: Optional[Int] = Field(default=None, gt=0)  # a class-balanced subset: K images per class
    subset_seed: Int = 0  # which K per class (the same on every rank and after resume)
    # repair/translate: train on random crop x crop patches of the images (the HR image for SR), which are
    # kept at their own size, their longer side at most `resolution` (folder photos keep their aspect);
    # the networks are built for the crop size. None: whole images fitted to `resolution`
    crop: Optional[Int] = Field(default=None, ge=MIN_CROP, le=MAX_CROP)

    @property
    def train_size(self) -> int:
        """The side of the images the networks train on: the crop, or the whole fitted image."""
        return int(self.crop or self.resolution)


class ModelConfig(_Strict):
    arch: str = "dcgan"
    z_dim: Int = Field(default=100, gt=0, le=MAX_Z_DIM)
    conditional: bool = False
    spectral_norm: bool = False
    d_arch: Optional[str] = None  # image-to-image tasks: the discriminator's name (default patchgan)
    g: Dict[str, Any] = Field(default_factory=dict)  # extra generator kwargs, e.g. ngf
    d: Dict[str, Any] = Field(default_factory=dict)  # extra discriminator kwargs, e.g. ndf
    # FreezeD (Mo et al. 2020): D's first k blocks (input side, the architecture's `D.blocks`) do not train;
    # meant for fine-tuning a run started with --init-from (train.init_from)
    freeze_d: Int = Field(default=0, ge=0)
    # under DDP (--workers N > 1) every BatchNorm normalises with the statistics of the global batch
    # (torch's SyncBatchNorm on GPU, raygan.engine.syncbn's all-reduce BN on CPU); off: per-rank statistics
    sync_bn: bool = False


class LossConfig(_Strict):
    name: str = "ns"
    # the loss's own options, e.g. {real_target: 0.9} for ns-smooth; checked against the loss's signature
    # (raygan.losses.build_loss: unknown keys refused, naming the valid ones)
    kwargs: Dict[str, Any] = Field(default_factory=dict)
    # AC-GAN's auxiliary class term (task generate, conditional): D's class head learns the real labels and
    # G is pushed to make fakes that head assigns to their labels; 0 = off (projection conditioning only)
    ac_weight: Float = Field(default=0.0, ge=0)


class RegularizerConfig(_Strict):
    name: str = "none"
    kwargs: Dict[str, Any] = Field(default_factory=dict)  # e.g. {weight: 10} or {weight: 1, every: 16}


class AdaConfig(_Strict):
    """StyleGAN2-ADA's adaptive augmentation; p follows r_t = E[sign(D(real))] toward `target`.
    Present = on (`--set augment.ada.target=0.6`); `enabled: false` switches it off by a value,
    so a search space can choose it (`augment.ada.enabled: {choice: [false, true]}`)."""

    enabled: bool = True
    target: Optional[Float] = Field(default=0.6, gt=0, lt=1)  # None: p stays fixed
    speed_kimg: Float = Field(default=500.0, gt=0)  # p can go 0 -> 1 in this many kimg
    interval: Int = Field(default=4, ge=1)  # D steps between adjustments
    p: Float = Field(default=0.0, ge=0, le=1)  # initial probability
    ops: str = "bgc"  # blit (flip, rot90, int translation), geom, color, or a comma list of ops


class AugmentConfig(_Strict):
    diffaugment: str = ""  # e.g. "color,translation,cutout", applied to real and fake in the D step
    ada: Optional[AdaConfig] = None  # adaptive augmentation in the D step (after DiffAugment if both)
    flip: bool = False  # classic horizontal flips of real images


class OptimConfig(_Strict):
    batch_size: Int = Field(default=64, gt=0, le=MAX_BATCH)  # global: split evenly across workers
    g_lr: Float = Field(default=2e-4, gt=0)
    d_lr: Float = Field(default=2e-4, gt=0)
    g_betas: Tuple[Float, Float] = (0.5, 0.999)
    d_betas: Tuple[Float, Float] = (0.5, 0.999)
    n_critic: Int = Field(default=1, ge=1)  # D steps per G step

    @field_validator("g_betas", "d_betas")
    @classmethod
    def _betas(cls, v: Tuple[Float, Float]) -> Tuple[Float, Float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("betas must lie in [0, 1)")
        return v


class EMAConfig(_Strict):
    half_life_kimg: Float = Field(default=0.0, ge=0)  # 0 disables the EMA generator
    rampup: Optional[Float] = Field(default=None, gt=0)  # half-life <= rampup * kimg early on


class TrainConfig(_Strict):
    total_kimg: Float = Field(default=100.0, gt=0)
    tick_kimg: Float = Field(default=4.0, gt=0)
    snapshot_ticks: Int = Field(default=5, ge=1)
    eval_ticks: Int = Field(default=5, ge=0)  # 0: evaluate only at the end
    sample_ticks: Int = Field(default=5, ge=1)
    keep_checkpoints: Int = Field(default=2, ge=1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: Literal["none", "bf16", "fp16"] = "none"  # GPU only; ignored on CPU
    channels_last: bool = True  # GPU only
    compile: bool = False
    threads: Optional[Int] = Field(default=None, ge=1)  # torch intra-op threads
    nan_ticks: Int = Field(default=2, ge=1)  # non-finite ticks in a row before giving up
    # start from another run's networks (G, G_ema, D): a run dir or a model URI (models:/NAME/VERSION);
    # optimisers, counters and RNG start fresh (`raygan train --init-from`)
    init_from: Optional[str] = None

    @property
    def total_nimg(self) -> int:
        """The run's length in real images shown to D (the loop's clock counts nimg)."""
        return int(round(self.total_kimg * 1000))


class EvalConfig(_Strict):
    extractor: str = "fmnist-cnn"
    metrics: List[str] = Field(default_factory=lambda: ["fid"])
    num_samples: Int = Field(default=5000, gt=1, le=MAX_SAMPLES)  # during training
    final_num_samples: Int = Field(default=10000, gt=1, le=MAX_SAMPLES)  # at the end of the run
    # k-NN metrics (pr, dc) compare this many fakes with as many reals at every evaluation, so tick
    # and final values are comparable; None: min(num_samples, final_num_samples)
    knn_samples: Optional[Int] = Field(default=None, gt=5, le=MAX_SAMPLES)
    reference_split: str = "test"
    batch_size: Int = Field(default=500, gt=0, le=MAX_EVAL_BATCH)
    inception_weights: Optional[str] = None
    seed: Int = Field(default=123, ge=0, le=SEED_MAX)  # fixed noise for evaluation, independent of training

    @field_validator("metrics")
    @classmethod
    def _one_spelling(cls, v: List[str]) -> List[str]:
        """Metric names are spelled with underscores, as their values (domain-acc -> domain_acc)."""
        return [m.strip().replace("-", "_") if isinstance(m, str) else m for m in v]


class TrackingConfig(_Strict):
    enabled: bool = True
    uri: Optional[str] = None  # None: sqlite:///<cwd>/mlflow.db
    experiment: str = "raygan"
    run_name: Optional[str] = None
    register_model: Optional[str] = "auto"  # auto: raygan-[<task>-]<dataset>-<arch>; None: log, do not register


#: the base of a task's options model (`RepairTask.Options`): typed, unknown keys refused, finite floats
TaskOptions = _Strict


class Config(_Strict):
    task: str = "generate"  # a registered task: generate | repair | translate
    seed: Int = Field(default=0, ge=0, le=SEED_MAX)
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
    # beyond these: one section per registered task with options (`repair`, `translate`), validated
    # by that task's own model (raygan.config.sections); any other key is refused
    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _task_sections(cls, data: Any) -> Any:
        """Every registered task's section, validated by its options model (defaults when absent)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, model in option_sections().items():
            got = data.pop(name, None)
            data[name] = got if isinstance(got, model) else model.model_validate({} if got is None else got)
        return data

    @model_validator(mode="after")
    def _no_unknown_section(self) -> "Config":
        sections = option_sections()
        for key, value in (self.__pydantic_extra__ or {}).items():
            if key not in sections:
                raise ValueError(f"{key}: unknown key")
            if not isinstance(value, sections[key]):
                self.__pydantic_extra__[key] = sections[key].model_validate(value)
        return self

    @classmethod
    def sections(cls) -> Dict[str, Any]:
        """Every top-level key -> its type: the shared fields, then each registered task's options model."""
        return {**{n: f.annotation for n, f in cls.model_fields.items()}, **option_sections()}

    def to_dict(self) -> Dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def arch_hash(self) -> str:
        """Identity of the trained networks: a checkpoint only loads into the same one."""
        ident = {
            "task": self.task,
            # how a network trains (frozen blocks, synchronised BN) is not what it is: a checkpoint loads either way
            "model": self.model.model_dump(mode="json", exclude={"freeze_d", "sync_bn"}),
            "resolution": self.data.resolution,
            "channels": self.data.channels,
            "data": self.data.name,
        }
        return _hash(ident)

    def config_hash(self) -> str:
        return _hash(self.to_dict())


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
