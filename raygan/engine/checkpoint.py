"""Complete, atomic checkpoints.

A checkpoint is a directory `ckpt-<nimg>/` holding `state.pt` (networks, optimisers,
grad scaler, progress counters, data-order position, config and its hashes) and one
`rng-rank<r>.pt` per rank (each rank draws its own noise). It is written into a temp
directory and renamed into place, so a crash mid-write never leaves a half checkpoint
that looks complete. Loading uses `torch.load(weights_only=True)`: no pickled code runs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from raygan.config.safe import check_tree
from raygan.errors import CheckpointError

STATE_FILE = "state.pt"
META_FILE = "meta.json"
if TYPE_CHECKING:  # torch is imported where a checkpoint is read or written: listing runs stays cheap
    import torch

CHECKPOINT_NAME = re.compile(r"^ckpt-(\d+)$")
#: values (tensors count one each) a training state may hold: a real one holds a few thousand
MAX_STATE_NODES = 1_000_000


def checkpoint_name(nimg: int) -> str:
    return f"ckpt-{nimg:010d}"


def write_checkpoint_dir(directory: Path, state: Dict[str, Any], rng: Dict[str, Any], rank: int,
                         meta: Dict[str, Any]) -> None:
    """Write this rank's files into an existing directory (used inside a temp dir)."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        torch.save(state, directory / STATE_FILE)
        (directory / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    torch.save(rng, directory / f"rng-rank{rank}.pt")


def save_checkpoint(root: Path, nimg: int, state: Dict[str, Any], rng: Dict[str, Any],
                    meta: Dict[str, Any], keep: int) -> Path:
    """Atomically write `root/ckpt-<nimg>` (single process), then prune to the newest `keep`."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(nimg)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-ckpt-", dir=root))
    try:
        write_checkpoint_dir(tmp, state, rng, 0, meta)
        if final.exists():  # same nimg saved again (e.g. final == last periodic): replace
            old = root / f".old-{final.name}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    prune(root, keep)
    return final


def list_checkpoints(root: Path) -> List[Path]:
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = CHECKPOINT_NAME.match(p.name)
        if m and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Optional[Path]:
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


def prune(root: Path, keep: int) -> None:
    for p in list_checkpoints(root)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)


def _load(path: Path, what: str) -> Any:
    import torch

    if not path.is_file():
        raise CheckpointError(f"checkpoint {path.parent}: missing {path.name}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, foreign pickle
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({what}): {reason}") from None


def load_checkpoint(directory: Path, rank: int = 0, expected_arch_hash: Optional[str] = None
                    ) -> Dict[str, Any]:
    """Read state + this rank's RNG; refuse a checkpoint made for other networks."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint not found: {directory}")
    state = _load(directory / STATE_FILE, "training state")
    if not isinstance(state, dict) or "models" not in state:
        raise CheckpointError(f"checkpoint {directory} is not a raygan checkpoint")
    # weights_only unpickling runs no code, but shared references can still make a small file a
    # "billion laughs" for whatever walks the config later: bound it before anything reads it
    check_tree(state, f"checkpoint {directory}", CheckpointError, max_nodes=MAX_STATE_NODES)
    if expected_arch_hash is not None and state.get("arch_hash") != expected_arch_hash:
        had = state.get("config", {}).get("model", {})
        raise CheckpointError(
            f"checkpoint {directory} was made for another model "
            f"(arch {had.get('arch')!r}, hash {state.get('arch_hash')}); "
            f"the config asks for hash {expected_arch_hash}: use the run's own config or a new --run-dir"
        )
    rng_file = directory / f"rng-rank{rank}.pt"
    state["rng"] = _load(rng_file, "rng") if rng_file.is_file() else None
    check_tree(state["rng"], f"checkpoint {rng_file}", CheckpointError)
    return state


def load_state_dict_checked(module: "torch.nn.Module", sd: Dict[str, Any], what: str, where: Path) -> None:
    try:
        module.load_state_dict(sd)
    except (RuntimeError, KeyError, ValueError) as e:
        why = _mismatch(module.state_dict(), sd) or str(e).splitlines()[0][:160]
        raise CheckpointError(f"checkpoint {where}: {what} does not fit this model: {why}") from None


def _mismatch(own: Dict[str, Any], sd: Dict[str, Any], show: int = 2) -> str:
    """Which tensors differ, in one short line: the model's missing ones, the checkpoint's extra
    ones and shape mismatches (first `show` of each), so a user sees what changed."""
    def names(keys):
        keys = list(keys)
        return ", ".join(keys[:show]) + (f" (+{len(keys) - show} more)" if len(keys) > show else "")

    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} here {tuple(own[k].shape)}" for k in own
              if k in sd and hasattr(sd[k], "shape") and tuple(sd[k].shape) != tuple(own[k].shape)]
    parts = [f"{label} {names(keys)}" for label, keys in
             (("not in the checkpoint:", missing), ("only in the checkpoint:", extra), ("shape", shapes)) if keys]
    return "; ".join(parts)
