"""Bounds on what a network may ask for, checked before real memory is allocated.

A config, a registered model's spec.json or a checkpoint's config names widths, depths, channels
and class counts; `channels: 1e9` or `ngf: 10**6` would otherwise allocate terabytes (or fail
deep in torch's allocator) before any weight is compared. Every network raygan builds goes
through `build_network` / `build_within_limits`:

1. free-form options (`model.g`, `model.d`) are plain values: ints at most `MAX_WIDTH`, lists
   and depth options (blocks, n_blocks, n_layers, depth) at most `MAX_LIST` layers;
2. the network is built once on PyTorch's meta device (shapes only, no memory, no random draws)
   and its parameters + buffers counted: more than `MAX_PARAMS` in one network is refused;
3. only then is it built for real; an allocator failure there is still one line.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Mapping, Tuple

import torch
from torch import nn

from raygan.errors import ConfigError

#: any int option of a network (channels, units, blocks): real ones are <= 1024
MAX_WIDTH = 16384
#: entries of a list option (e.g. mlp `hidden`, one per layer) and the value of a depth option
MAX_LIST = 64
#: options that count layers or blocks (each one a Python module: bounded like a list of layers)
DEPTH_OPTIONS = ("blocks", "n_blocks", "n_layers", "depth")
#: parameters + buffers of one network: 500M is 2 GB in float32 (about 8 GB with grads and Adam)
MAX_PARAMS = 500_000_000
#: classes of a conditional model
MAX_CLASSES = 100_000


def check_options(where: str, opts: Mapping[str, Any]) -> None:
    """Ints in free-form network options are at most MAX_WIDTH; lists at most MAX_LIST long."""
    def walk(v: Any, path: str) -> None:
        if isinstance(v, bool):
            return
        if isinstance(v, int) and abs(v) > MAX_WIDTH:
            raise ConfigError(f"{path}: {v} is too large for a network option (at most {MAX_WIDTH})")
        if isinstance(v, (list, tuple)):
            if len(v) > MAX_LIST:
                raise ConfigError(f"{path}: {len(v)} entries (at most {MAX_LIST} layers)")
            for i, x in enumerate(v):
                walk(x, f"{path}.{i}")
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}")

    for k, v in (opts or {}).items():
        if k in DEPTH_OPTIONS and isinstance(v, int) and not isinstance(v, bool) and v > MAX_LIST:
            raise ConfigError(f"{where}.{k}: {v} layers/blocks (at most {MAX_LIST})")
        walk(v, f"{where}.{k}")


def count(module: nn.Module) -> int:
    return sum(t.numel() for t in module.parameters()) + sum(t.numel() for t in module.buffers())


def check_params(networks: Iterable[Tuple[str, nn.Module]], what: str) -> None:
    for role, net in networks:
        n = count(net)
        if n > MAX_PARAMS:
            raise ConfigError(f"{what}: the {role} would have {n / 1e6:,.0f}M parameters (at most "
                              f"{MAX_PARAMS / 1e6:,.0f}M, {n * 4 / 2**30:,.1f} GiB in float32); reduce its "
                              f"widths or depth")


def on_meta() -> bool:
    """Whether tensors are being created on the meta device right now (a check, not a build)."""
    return torch.empty(0).device.type == "meta"


def build_within_limits(build: Callable[..., Any], kwargs: Dict[str, Any], roles: Tuple[str, ...],
                        what: str) -> Any:
    """`build(**kwargs)` after a meta-device build of the same networks passed `check_params`.
    The meta build leaves spectral norm off (it adds no parameters, only slow power iterations)."""
    meta_kwargs = {**kwargs, "spectral_norm": False} if "spectral_norm" in kwargs else kwargs
    with torch.device("meta"):
        nets = build(**meta_kwargs)
    check_params(zip(roles, nets if isinstance(nets, tuple) else (nets,)), what)
    if on_meta():
        return build(**kwargs) if meta_kwargs is not kwargs else nets
    try:
        return build(**kwargs)
    except (MemoryError, RuntimeError) as e:
        text = str(e)
        if isinstance(e, MemoryError) or "alloc" in text or "out of memory" in text:
            raise ConfigError(f"{what}: not enough memory to build the networks "
                              f"({text.splitlines()[0][:120] if text else type(e).__name__})") from None
        raise


def build_network(registry, name: str, what: str, role: str, **kwargs: Any) -> nn.Module:
    """`registry.build(name, **kwargs)` for one image-to-image network, within the bounds."""
    fixed = {"in_channels", "out_channels", "resolution", "spectral_norm", "scale"}
    check_options(what, {k: v for k, v in kwargs.items() if k not in fixed})
    return build_within_limits(lambda **kw: registry.build(name, **kw), kwargs, (role,), what)
