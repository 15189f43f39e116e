"""Loading a run's exported network cheaply: from a checkpoint, without building a trainer,
reading the dataset or creating optimisers. `eval`, `sample`, `repair`, sweep re-evaluation and
champion registration all come through here.

The network is rebuilt from raygan's registries with the checkpoint's own config and model
spec (what the task recorded about its data, e.g. channels and classes), then its weights are
loaded; `torch.load(weights_only=True)` underneath, so loading runs no code.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from raygan.engine.checkpoint import load_checkpoint, load_state_dict_checked
from raygan.errors import CheckpointError, ConfigError
from raygan.models.limits import MAX_CLASSES
from raygan.tasks.base import task_class


@dataclass
class LoadedModel:
    module: nn.Module
    config: Any  # the run's Config
    task: str
    network: str  # which checkpointed network (G_ema or G ...)
    nimg: int
    checkpoint: str
    model_spec: Dict[str, Any]


#: the model spec's values a network is built from: (type, lowest, highest)
_SPEC_VALUES = {"channels": (int, 1, 4), "num_classes": (int, 0, MAX_CLASSES), "scale": (int, 1, 8),
                "mask": (bool, None, None)}


def check_model_spec(spec: Any, where: str) -> Dict[str, Any]:
    """A recorded model spec (from a checkpoint or a spec.json: untrusted) before anything is built:
    a mapping whose channels / num_classes / scale / mask have their type and a sane range."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: model spec is not a mapping (got {type(spec).__name__})")
    if "channels" not in spec:
        raise ConfigError(f"{where}: model spec has no 'channels'")
    for key, (kind, low, high) in _SPEC_VALUES.items():
        if key not in spec:
            continue
        v = spec[key]
        if type(v) is not kind or (low is not None and not low <= v <= high):
            want = "true or false" if kind is bool else f"an integer from {low} to {high}"
            raise ConfigError(f"{where}: model spec {key} must be {want}, got {v!r}")
    return spec


def build_exported(cfg, model_spec: Dict[str, Any], state_dict: Dict[str, Any], where: str) -> nn.Module:
    """The task's exported network from its config, spec and weights (eval mode, on CPU)."""

    check_model_spec(model_spec, where)
    module = task_class(cfg.task).build_inference(cfg, model_spec)
    load_state_dict_checked(module, state_dict, "exported network", Path(where))
    return module.eval()


def load_model(ckpt_dir: Path, device: Optional[torch.device] = None, expect_task: Optional[str] = None
               ) -> LoadedModel:
    """The exported network of a checkpoint (the EMA generator when the run kept one)."""
    from raygan.tasks.check import build_config

    st = load_checkpoint(Path(ckpt_dir))
    if not isinstance(st.get("config"), dict) or not isinstance((st.get("progress") or {}).get("nimg"), int):
        raise CheckpointError(f"checkpoint {ckpt_dir} is not a raygan checkpoint (no config or progress)")
    try:
        cfg = build_config(st["config"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {ckpt_dir} holds a config this raygan rejects: {e}") from None
    if expect_task is not None and cfg.task != expect_task:
        raise CheckpointError(f"checkpoint {ckpt_dir} is a '{cfg.task}' model; this command needs a "
                              f"'{expect_task}' model")
    cls = task_class(cfg.task)
    try:
        network, weights = cls.exported_state(st.get("models") or {})
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {ckpt_dir}: {e}") from None
    module = build_exported(cfg, st.get("model_spec") or {}, weights, str(ckpt_dir))
    if device is not None:
        module = module.to(device)
    return LoadedModel(module, cfg, cfg.task, network, int(st["progress"]["nimg"]), str(ckpt_dir),
                       dict(st.get("model_spec") or {}))
