"""Typed experiment config: defaults in code, YAML presets as small deltas, --set overrides.

Every section forbids unknown keys, so a typo fails loudly instead of silently training
the default. Progress is in kimg (thousands of real images shown to D) so that schedules
mean the same at any batch size and worker count.
"""
from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from raygan.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    name: str = "fashion-mnist"
    root: Optional[str] = None
    resolution: int = 32
    channels: Optional[int] = None  # None: the source's native channels
    limit: Optional[int] = Field(default=None, gt=0)
    download: bool = False


class ModelConfig(_Strict):
    arch: str = "dcgan"
    z_dim: int = Field(default=100, gt=0)
    conditional: bool = False
    spectral_norm: bool = False
    g: Dict[str, Any] = Field(default_factory=dict)  # extra generator kwargs, e.g. ngf
    d: Dict[str, Any] = Field(default_factory=dict)  # extra discriminator kwargs, e.g. ndf


class LossConfig(_Strict):
    name: str = "ns"


class RegularizerConfig(_Strict):
    name: str = "none"
    kwargs: Dict[str, Any] = Field(default_factory=dict)  # e.g. {weight: 10} or {weight: 1, every: 16}


class AugmentConfig(_Strict):
    diffaugment: str = ""  # e.g. "color,translation,cutout", applied to real and fake in the D step
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
    reference_split: str = "test"
    batch_size: int = Field(default=500, gt=0)
    inception_weights: Optional[str] = None
    seed: int = 123  # fixed noise for evaluation, independent of the training RNG


class TrackingConfig(_Strict):
    enabled: bool = True
    uri: Optional[str] = None  # None: sqlite:///<cwd>/mlflow.db
    experiment: str = "raygan"
    run_name: Optional[str] = None
    register_model: Optional[str] = "raygan-generator"  # None: log the model, don't register


class Config(_Strict):
    seed: int = 0
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

    def to_dict(self) -> Dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def arch_hash(self) -> str:
        """Identity of the trained networks: a checkpoint only loads into the same one."""
        ident = {
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


# --------------------------------------------------------------------------- loading


def preset_names() -> List[str]:
    root = resources.files("raygan") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> Dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"{where}: not valid YAML{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of config sections, got {type(data).__name__}")
    return data


def load_preset(name: str) -> Dict[str, Any]:
    if name not in preset_names():
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(preset_names())}")
    text = (resources.files("raygan") / "presets" / f"{name}.yaml").read_text()
    data = _read_yaml(text, f"preset {name}")
    data.setdefault("preset", name)
    return data


# Options that belong to one registered variant: when a delta picks another variant
# (a new loss/regulariser name, a new architecture) the old variant's options are dropped.
_VARIANT_OPTIONS = {"name": ("kwargs",), "arch": ("g", "d")}


def deep_merge(base: Dict[str, Any], delta: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for selector, options in _VARIANT_OPTIONS.items():
        if selector in delta and selector in out and delta[selector] != out[selector]:
            for opt in options:
                out.pop(opt, None)
    for k, v in delta.items():
        if isinstance(v, dict) and v and isinstance(out.get(k), dict):  # {} replaces (clears)
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(item: str) -> Dict[str, Any]:
    """'a.b.c=value' -> {'a': {'b': {'c': value}}}, value parsed as YAML (1e-4, true, [1,2])."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. optim.g_lr=1e-4")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"--set {item!r}: empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        value = _maybe_number(value)
    out: Dict[str, Any] = {}
    cur = out
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def _maybe_number(s: str) -> Any:
    # YAML 1.1 reads "1e-4" as a string; users mean a float.
    try:
        return float(s) if any(c in s for c in ".eE") else s
    except ValueError:
        return s


def _format_validation(e: ValidationError) -> str:
    first = e.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = len(e.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    got = first.get("input")
    shown = "" if first["type"] == "extra_forbidden" or isinstance(got, dict) else f" (got {got!r})"
    return f"config: {loc}: {msg}{shown}{tail}"


def build_config(data: Dict[str, Any]) -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e)) from None
    check_names(cfg)
    return cfg


def load_config(
    preset: Optional[str] = None,
    config_file: Optional[str] = None,
    overrides: Optional[List[str]] = None,
) -> Config:
    """Defaults <- preset <- config file <- --set overrides, validated once at the end."""
    data: Dict[str, Any] = {}
    if preset:
        data = deep_merge(data, load_preset(preset))
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {config_file}")
        data = deep_merge(data, _read_yaml(path.read_text(), str(path)))
    for item in overrides or []:
        data = deep_merge(data, parse_override(item))
    return build_config(data)


def check_names(cfg: Config) -> None:
    """Registry names are checked up front so a typo fails before any data is loaded."""
    from raygan.augment import build_diffaugment
    from raygan.data import SOURCES
    from raygan.losses import LOSSES
    from raygan.metrics import EXTRACTORS
    from raygan.metrics.evaluate import METRICS
    from raygan.models import ARCHITECTURES
    from raygan.regularizers import REGULARIZERS

    SOURCES.get(cfg.data.name)
    ARCHITECTURES.get(cfg.model.arch)
    LOSSES.get(cfg.loss.name)
    REGULARIZERS.get(cfg.regularizer.name)
    EXTRACTORS.get(cfg.eval.extractor)
    for m in cfg.eval.metrics:
        METRICS.get(m)
    build_diffaugment(cfg.augment.diffaugment)
    if cfg.data.resolution not in (28, 32, 64):
        raise ConfigError(f"config: data.resolution: {cfg.data.resolution} not supported; choose 28, 32 or 64")
    if cfg.data.channels not in (None, 1, 3):
        raise ConfigError(f"config: data.channels: {cfg.data.channels} not supported; choose 1 or 3")
