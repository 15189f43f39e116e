"""Augmentations: DiffAugment for the D step, flips for data, and the D step's pipeline.

`D_AUGMENTATIONS` registers what the D step may apply to reals and fakes, by config section:
"diffaugment" (`augment.diffaugment`, below) and "ada" (`augment.ada`, raygan.ada);
`build_d_augment(cfg.augment)` composes them in a fixed order (DiffAugment, then ADA) into one
`DAugment`, which GANStep calls on every batch D sees and feeds D's real logits.

DiffAugment (Zhao et al. 2020, mit-han-lab/data-efficient-gans `DiffAugment_pytorch.py`)
applies the same random, differentiable transforms to real and fake images before D, so D
cannot memorise a small dataset and G still gets gradients through the transform. Ops
follow the reference exactly (same draws from torch's global RNG, in the same order), so
seeded runs are reproducible and results comparable. Images are NCHW in [-1, 1], any C.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from raygan.errors import ConfigError
from raygan.registry import Registry

AUGMENTATIONS = Registry("augmentation")


def _per_sample(x: torch.Tensor) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


@AUGMENTATIONS.register("color")
def color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness (+U[-0.5, 0.5)), saturation (x U[0, 2)), contrast (x U[0.5, 1.5)) per sample.
    Saturation is the identity for one channel (the draw is still made, keeping RNG in step)."""
    x = x + (_per_sample(x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_per_sample(x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample(x) + 0.5) + mean


def _grid(x: torch.Tensor, rows: int, cols: int):
    n = x.shape[0]
    return torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(rows, device=x.device),
        torch.arange(cols, device=x.device),
        indexing="ij",
    )


@AUGMENTATIONS.register("translation")
def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each sample by an integer in [-ratio*size, ratio*size] per axis; vacated pixels are 0."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, size=[n, 1, 1], device=x.device)
    dx = torch.randint(-sw, sw + 1, size=[n, 1, 1], device=x.device)
    b, gy, gx = _grid(x, h, w)
    # index into a 1-pixel zero border; out-of-range sources land on it
    gy = torch.clamp(gy + dy + 1, 0, h + 1)
    gx = torch.clamp(gx + dx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[b, gy, gx].permute(0, 3, 1, 2)


@AUGMENTATIONS.register("cutout")
def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a (ratio*H) x (ratio*W) square per sample. As in the reference, its centre is
    uniform over the image, so near a border the square is clipped to the image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), size=[n, 1, 1], device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), size=[n, 1, 1], device=x.device)
    _, gy, gx = _grid(x, h, w)
    top, left = oy - ch // 2, ox - cw // 2
    inside = (gy >= top) & (gy < top + ch) & (gx >= left) & (gx < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class DiffAugment:
    """The ops of a policy, applied in order. A plain object of module-level functions,
    so it pickles into Ray workers."""

    def __init__(self, ops: List[str]):
        self.ops = list(ops)
        self._fns: List[Callable[[torch.Tensor], torch.Tensor]] = [AUGMENTATIONS.get(op) for op in self.ops]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for fn in self._fns:
            x = fn(x)
        return x

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.ops)!r})"


def build_diffaugment(policy: Optional[str]) -> Optional[DiffAugment]:
    """'color,translation,cutout' -> DiffAugment; '' or 'none' -> None (no augmentation)."""
    ops = [p.strip() for p in (policy or "").split(",") if p.strip()]
    if not ops or ops == ["none"]:
        return None
    unknown = [op for op in ops if op not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(
            f"unknown DiffAugment op(s) {', '.join(repr(u) for u in unknown)} in policy {policy!r}; "
            f"choose from: {', '.join(AUGMENTATIONS.names())}"
        )
    return DiffAugment(ops)


def flip_horizontal(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2 (classic data augmentation on reals;
    `generator` keeps the data pipeline's randomness separate from the model's)."""
    device = generator.device if generator is not None else x.device
    flip = torch.rand(x.shape[0], generator=generator, device=device).to(x.device) < 0.5
    return torch.where(flip.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)


# ---------------------------------------------------------------------- the D-step augmentation
#: augmentations GANStep applies to reals and fakes (and R1's fresh draw), by config section
D_AUGMENTATIONS = Registry("D-step augmentation")


@D_AUGMENTATIONS.register("diffaugment", section="augment.diffaugment")
def _diffaugment(policy: str = "") -> Optional[DiffAugment]:
    return build_diffaugment(policy)


@D_AUGMENTATIONS.register("ada", section="augment.ada")
def _ada(target: Optional[float] = 0.6, speed_kimg: float = 500.0, interval: int = 4, p: float = 0.0,
         ops: str = "bgc"):
    from raygan.ada import AdaptiveAugment

    return AdaptiveAugment(target=target, speed_kimg=speed_kimg, interval=interval, p=p, ops=ops)


class DAugment:
    """The D step's augmentation: its registered parts in a fixed order (DiffAugment, then ADA),
    each applied to every image batch D sees. An adaptive part (ADA) also watches D's real
    logits (`observe`) and adjusts its p every few D steps (`step`); without one those are
    no-ops and a DiffAugment-only pipeline draws exactly what DiffAugment alone draws."""

    def __init__(self, parts: List[Tuple[str, Callable[[torch.Tensor], torch.Tensor]]]):
        self.parts = list(parts)
        self._fns = [fn for _, fn in self.parts]
        self.adaptive = next((fn for _, fn in self.parts if hasattr(fn, "observe")), None)
        self.diffaugment = next((fn for name, fn in self.parts if name == "diffaugment"), None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for fn in self._fns:
            x = fn(x)
        return x

    # ------------------------------------------------------------------ adaptive part
    def observe(self, real_logits: torch.Tensor) -> None:
        if self.adaptive is not None:
            self.adaptive.observe(real_logits)

    def step(self, images: int, reduce=None) -> None:
        """One D step showed `images` real images (all ranks); call on every rank in lockstep."""
        if self.adaptive is not None:
            self.adaptive.step(images, reduce)

    def end_tick(self, reduce=None, rank: int = 0) -> Dict[str, float]:
        """{'ada_p', 'ada_rt'} for the tick's log (every rank, in lockstep); folds the partial
        observations onto rank 0 so its checkpointed state carries them (exact resume)."""
        if self.adaptive is None:
            return {}
        self.adaptive.fold(reduce, keep=rank == 0)
        s = self.adaptive.stats(reduce)
        out = {"ada_p": s["p"]}
        if s["rt"] == s["rt"]:  # no real logits seen this tick: no r_t (nan would read as divergence)
            out["ada_rt"] = s["rt"]
        return out

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> Dict[str, Any]:
        return {"ada": self.adaptive.state_dict()} if self.adaptive is not None else {}

    def load_state_dict(self, state: Dict[str, Any], rank: int = 0) -> None:
        """A checkpoint without ADA state (ADA switched on at resume) leaves p at its config value."""
        if self.adaptive is not None and state.get("ada") is not None:
            self.adaptive.load_state_dict(state["ada"], keep_partial=rank == 0)

    # ------------------------------------------------------------------ reading back
    def describe(self) -> str:
        """What is applied, read from the built parts: 'diffaugment(translation,cutout)+ada(...)'."""
        out = []
        for name, fn in self.parts:
            if name == "ada":
                out.append(f"ada(ops={','.join(fn.ops)}, target={fn.target}, speed_kimg={fn.speed_kimg:g}, "
                           f"interval={fn.interval})")
            else:
                out.append(f"{name}({','.join(getattr(fn, 'ops', []))})")
        return "+".join(out)

    def __repr__(self) -> str:
        return f"DAugment({self.describe()!r})"


def build_d_augment(augment_cfg) -> Optional[DAugment]:
    """The D-step augmentation of an `augment` config section (DiffAugment's policy, then ADA
    when `augment.ada` is present and enabled); None when there is none."""
    parts: List[Tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = []
    da = D_AUGMENTATIONS.build("diffaugment", policy=augment_cfg.diffaugment)
    if da is not None:
        parts.append(("diffaugment", da))
    ada = getattr(augment_cfg, "ada", None)
    if ada is not None and ada.enabled:
        parts.append(("ada", D_AUGMENTATIONS.build("ada", **ada.model_dump(exclude={"enabled"}))))
    return DAugment(parts) if parts else None
