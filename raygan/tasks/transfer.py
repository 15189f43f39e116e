"""A run that starts from another run's networks (`train.init_from`, `raygan train --init-from`).

The host resolves the source (a run dir's latest checkpoint, or a logged/registered model) into
`InitWeights` on every rank alike, before the run writes anything; the task's `build` loads them
into its freshly built networks (raygan.models.transfer: shape-matching tensors copied, class
parts of an unconditional source started so that the conditional networks first behave as the
source did). Optimisers, counters, data order and RNG start fresh: this is a new run.

What is refused, in one line: a source of another task, one whose architecture or sizes differ
(each difference named: `model.arch: resnet there, dcgan here`), a conditional source for an
unconditional run, and a missing or unreadable source (the source itself is only read).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from raygan.engine.checkpoint import load_checkpoint
from raygan.errors import CheckpointError, ConfigError


@dataclass
class InitWeights:
    source: str  # as the user named it (a run dir, models:/NAME/VERSION)
    config: Dict[str, Any]  # the source run's config
    networks: Dict[str, Dict[str, torch.Tensor]]  # "G" and, where the source has them, "G_ema" and "D"
    model_spec: Dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # the checkpoint or model folder the weights came from
    lineage: Dict[str, str] = field(default_factory=dict)  # what the new run records (MLflow tags)


def from_checkpoint(ckpt_dir: Path, source: str) -> InitWeights:
    """The networks of a raygan checkpoint (read with weights_only: no code runs)."""
    st = load_checkpoint(Path(ckpt_dir))
    models = st.get("models")
    if not isinstance(st.get("config"), dict) or not isinstance(models, dict) or "G" not in models:
        raise CheckpointError(f"--init-from {source}: {ckpt_dir} is not a raygan checkpoint of a G/D run")
    nets = {k: v for k, v in models.items() if k in ("G", "G_ema", "D") and isinstance(v, dict)}
    return InitWeights(source, st["config"], nets, dict(st.get("model_spec") or {}), str(ckpt_dir))


def check_source(cfg, init: InitWeights) -> None:
    """The source is of this task and built the same networks (class inputs aside)."""
    from raygan.tasks.check import build_config
    from raygan.tasks.loading import check_model_spec

    try:  # read from a file: validated as any config before anything compares it
        src = build_config(init.config).to_dict()
        check_model_spec(init.model_spec or {"channels": 1}, f"--init-from {init.source}")
    except ConfigError as e:
        raise CheckpointError(f"--init-from {init.source}: its config is unusable ({e})") from None
    task = src.get("task", "generate")
    if task != cfg.task:
        raise ConfigError(f"--init-from {init.source}: it is a '{task}' run; this run trains '{cfg.task}'")
    diffs = _differences(src, cfg.to_dict())
    if diffs:
        raise ConfigError(f"--init-from {init.source}: another architecture ({'; '.join(diffs)})")
    if (src.get("model") or {}).get("conditional") and not cfg.model.conditional:
        raise ConfigError(f"--init-from {init.source}: the source is class-conditional; this run is not "
                          f"(set model.conditional=true)")


_SAME = (("model", "arch"), ("model", "z_dim"), ("model", "g"), ("model", "d"), ("model", "spectral_norm"),
         ("data", "resolution"))


def _differences(src: Dict[str, Any], own: Dict[str, Any]) -> List[str]:
    out = []
    for section, key in _SAME:
        a, b = (src.get(section) or {}).get(key), (own.get(section) or {}).get(key)
        if a != b:
            out.append(f"{section}.{key}: {a!r} there, {b!r} here")
    return out


def load_pair(init: Optional[InitWeights], G: torch.nn.Module, D: torch.nn.Module, channels: int) -> None:
    """G and D from the source (before the EMA copy, DDP and the optimisers are made)."""
    if init is None:
        return
    had = init.model_spec.get("channels")
    if had is not None and int(had) != int(channels):
        raise ConfigError(f"--init-from {init.source}: the source made {had}-channel images; this run's data has "
                          f"{channels} (set data.channels={had})")
    from raygan.models.transfer import transfer_state

    transfer_state(G, init.networks["G"], f"--init-from {init.source}: network G")
    if "D" in init.networks:
        transfer_state(D, init.networks["D"], f"--init-from {init.source}: network D")


def load_ema(init: Optional[InitWeights], G_ema: Optional[torch.nn.Module]) -> None:
    """The EMA copy from the source's own EMA when it kept one (else it stays the copy of G)."""
    if init is None or G_ema is None or "G_ema" not in init.networks:
        return
    from raygan.models.transfer import transfer_state

    transfer_state(G_ema, init.networks["G_ema"], f"--init-from {init.source}: network G_ema")
