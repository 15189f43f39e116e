"""The device a run trains on and the optimiser every task uses, chosen once."""
from __future__ import annotations

import torch

from raygan.errors import ConfigError


def check_device_name(name: str) -> None:
    """The name's form only (at config time: a GPU config may be written on a laptop)."""
    if name == "auto":
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"config: train.device: {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"config: train.device: {name!r} is not supported; use auto, cpu, cuda or cuda:N")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device_name(name)
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config: train.device: {name} asked for, but no CUDA device is available")
    return dev


def make_optimizer(params, lr: float, betas, device: torch.device) -> torch.optim.Optimizer:
    """Adam: fused on CUDA, foreach (multi-tensor) elsewhere -- same maths, fewer kernel launches."""
    if device.type == "cuda":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=True)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), foreach=True)
