"""Adaptive discriminator augmentation (ADA; Karras et al. 2020, NVlabs/stylegan2-ada-pytorch).

Like DiffAugment (raygan.augment), an `AdaptiveAugment` is called on the real and the fake
batch inside the D step (NCHW in [-1, 1], any channel count) and is differentiable, so G
learns through it. Unlike DiffAugment, each op fires per image with a probability p that
the overfitting heuristic tunes while training:

    d_step:  D(ada(reals)), D(ada(fakes)); ada.observe(real_logits); ada.step(images_in_batch)

`observe` accumulates sum(sign(D(real))) and the count on the device (no host sync);
every `interval` D steps, `adjust` sets r_t = E[sign(D(real))] and moves
p += sign(r_t - target) * images / (speed_kimg * 1000), clamped to [0, 1], still on the
device: p crosses 0 -> 1 in `speed_kimg` thousand images when D keeps overfitting.
`target=None` keeps p fixed (ADA's "fixed p" mode).

The pipeline (ops in this order; StyleGAN2-ADA's defaults for magnitudes):
  blit   xflip (mirror with prob 1/2), rotate90 (k * 90 deg, k uniform in 0..3),
         xint (integer shift, uniform within +-12.5% of the size per axis)
  geom   scale (isotropic, 2^N(0, 0.2^2)), rotate (uniform angle in [-180, 180) deg)
  color  brightness (+N(0, 0.2^2)), contrast (x 2^N(0, 0.5^2)),
         saturation (about the channel mean, x 2^N(0, 1)); the identity for 1 channel
An op that fires for an image with its random draw is "applied" (an x-flip may still
draw "no mirror", as in the reference, which keeps the augmentation non-leaking). Each op
draws its value and its Bernoulli(p) from torch's global RNG in a fixed order and shape,
whatever p and the channel count are, so checkpointed RNG state gives exact resume.
Images where no op fired are returned bitwise unchanged (so p == 0 is the identity).

Where this differs from StyleGAN2-ADA (documented, deliberate):
* Geometric ops are one per-image 3x3 matrix applied once with `affine_grid` +
  `grid_sample` (bilinear, padding_mode="reflection", align_corners=False) at native
  resolution. The reference pads by reflection, upsamples 2x with a sym6 wavelet filter
  (upfirdn2d), samples bilinearly and low-passes back down, which suppresses aliasing when
  scaling/rotating. Ours aliases slightly more at small scales and reflects about the pixel
  edge rather than the edge pixel; blit ops (flip, 90-degree, integer shift) land on pixel
  centres and match up to float rounding (~1e-6).
* One rotation with probability p instead of pre- and post-rotations with
  1 - sqrt(1 - p) each: without anisotropic scaling between them the distribution is the
  same (uniform angles compose to a uniform angle).
* Not implemented: aniso, xfrac, lumaflip, hue, image-space filtering, noise, cutout.
* Colour ops act on any channel count (mean over channels as the luma axis; the reference
  has luma weights 1/3 each for RGB too, so RGB is identical); the saturation draw is made
  even for one channel (the reference skips it).
* p is clamped to [0, 1] (the reference clamps only at 0).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from raygan.errors import ConfigError

OPS: Tuple[str, ...] = ("xflip", "rotate90", "xint", "scale", "rotate", "brightness", "contrast", "saturation")
PIPELINES: Dict[str, Tuple[str, ...]] = {
    "blit": OPS[:3],
    "geom": OPS[3:5],
    "color": OPS[5:],
    "bg": OPS[:5],
    "bgc": OPS,
}
GEOMETRIC = frozenset(OPS[:5])
XINT_MAX = 0.125  # integer translation range, fraction of the size
SCALE_STD = 0.2  # log2 std of isotropic scaling
ROTATE_MAX = 1.0  # rotation range, 1 = full circle
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2
SATURATION_STD = 1.0  # log2

Reduce = Optional[Callable[[torch.Tensor], torch.Tensor]]  # e.g. raygan.engine.dist.all_reduce_sum


def parse_ops(ops: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """'bgc' / 'bg' / 'blit' / 'geom' / 'color', or op names ('xflip,rotate90' or a list)
    -> op names in pipeline order (the order of application is fixed, not the given one)."""
    if isinstance(ops, str):
        if ops.strip() in PIPELINES:
            return PIPELINES[ops.strip()]
        ops = [o.strip() for o in ops.split(",") if o.strip()]
    names = list(ops)
    unknown = [o for o in names if o not in OPS]
    if unknown or not names:
        raise ConfigError(
            f"augment.ada.ops: unknown or empty {unknown or names!r}; use one of "
            f"{', '.join(PIPELINES)} or a comma list of {', '.join(OPS)}"
        )
    return tuple(o for o in OPS if o in names)


def _check(name: str, ok: bool, value: object, want: str) -> None:
    if not ok:
        raise ConfigError(f"augment.ada.{name} must be {want}, got {value!r}")


def _acc_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


class AdaptiveAugment:
    """ADA: the differentiable pipeline at probability `p` plus the r_t heuristic that tunes p.

    A plain object of tensors and numbers, so it pickles into Ray workers. Its tensors follow
    the device of the images/logits they are first given.
    """

    def __init__(
        self,
        target: Optional[float] = 0.6,
        speed_kimg: float = 500.0,
        interval: int = 4,
        p: float = 0.0,
        ops: Union[str, Sequence[str]] = "bgc",
    ):
        num = (int, float)
        _check("target", target is None or (isinstance(target, num) and not isinstance(target, bool)
                                            and -1 < target < 1), target, "in (-1, 1) or null (fixed p)")
        _check("speed_kimg", isinstance(speed_kimg, num) and not isinstance(speed_kimg, bool)
               and 0 < speed_kimg < math.inf, speed_kimg, "a positive number")
        _check("interval", isinstance(interval, int) and not isinstance(interval, bool) and interval >= 1,
               interval, "a positive integer")
        _check("p", isinstance(p, num) and not isinstance(p, bool) and 0 <= p <= 1, p, "in [0, 1]")
        self.target = None if target is None else float(target)
        self.speed_kimg = float(speed_kimg)
        self.interval = int(interval)
        self.ops = parse_ops(ops)
        self.p = torch.tensor(float(p), dtype=torch.float32)
        self._acc = torch.zeros(2, dtype=torch.float64)  # [sum sign(D(real)), count] since the last adjust
        self._tick = torch.zeros(2, dtype=torch.float64)  # the same since the last stats()
        self._d_steps = 0
        self._images = 0  # real images shown since the last adjust

    # ------------------------------------------------------------------ device
    def _follow(self, device: torch.device) -> None:
        if self.p.device != device:
            dt = _acc_dtype(device)
            self.p = self.p.to(device)
            self._acc, self._tick = self._acc.to(device, dt), self._tick.to(device, dt)

    # ------------------------------------------------------------------ pipeline
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._follow(x.device)
        n, c, h, w = x.shape
        dev, ops = x.device, self.ops
        fired = torch.zeros(n, dtype=torch.bool, device=dev)

        def bernoulli() -> torch.Tensor:
            nonlocal fired
            on = torch.rand(n, device=dev) < self.p
            fired = fired | on
            return on

        # inverse homogeneous transform in centred pixel units: G_inv @ pixel_out -> pixel_in
        G = torch.eye(3, device=dev).expand(n, 3, 3)
        if "xflip" in ops:
            i = torch.floor(torch.rand(n, device=dev) * 2)
            i = torch.where(bernoulli(), i, torch.zeros_like(i))
            G = G @ _scale(1 - 2 * i, torch.ones_like(i))
        if "rotate90" in ops:
            i = torch.floor(torch.rand(n, device=dev) * 4)
            i = torch.where(bernoulli(), i, torch.zeros_like(i))
            cos = (i == 0).float() - (i == 2).float()  # exact, unlike cos(pi / 2)
            sin = (i == 1).float() - (i == 3).float()
            G = G @ _rotation(cos, sin)
        if "xint" in ops:
            t = (torch.rand(n, 2, device=dev) * 2 - 1) * XINT_MAX
            t = torch.where(bernoulli().unsqueeze(1), t, torch.zeros_like(t))
            G = G @ _translate(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h))
        if "scale" in ops:
            s = torch.exp2(torch.randn(n, device=dev) * SCALE_STD)
            s = torch.where(bernoulli(), s, torch.ones_like(s))
            G = G @ _scale(1 / s, 1 / s)
        if "rotate" in ops:
            theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * ROTATE_MAX
            theta = torch.where(bernoulli(), theta, torch.zeros_like(theta))
            G = G @ _rotation(torch.cos(theta), torch.sin(theta))
        y = x
        if GEOMETRIC.intersection(ops):
            y = _warp(y, G)

        if "brightness" in ops:
            b = torch.randn(n, device=dev) * BRIGHTNESS_STD
            b = torch.where(bernoulli(), b, torch.zeros_like(b))
            y = y + b.to(y.dtype).view(n, 1, 1, 1)
        if "contrast" in ops:
            k = torch.exp2(torch.randn(n, device=dev) * CONTRAST_STD)
            k = torch.where(bernoulli(), k, torch.ones_like(k))
            y = y * k.to(y.dtype).view(n, 1, 1, 1)
        if "saturation" in ops:  # drawn for any channel count; the identity for one channel
            s = torch.exp2(torch.randn(n, device=dev) * SATURATION_STD)
            s = torch.where(bernoulli(), s, torch.ones_like(s))
            if c > 1:
                mean = y.mean(dim=1, keepdim=True)
                y = mean + (y - mean) * s.to(y.dtype).view(n, 1, 1, 1)
        return torch.where(fired.view(n, 1, 1, 1), y, x)

    # ------------------------------------------------------------------ heuristic
    def observe(self, real_logits: torch.Tensor) -> None:
        """Accumulate sign(D(real)) on the device (no host sync); call once per D step."""
        t = real_logits.detach()
        self._follow(t.device)
        s = t.sign().sum().to(self._acc.dtype)
        for acc in (self._acc, self._tick):
            acc[0].add_(s)
            acc[1].add_(t.numel())

    def step(self, images: int, reduce: Reduce = None) -> bool:
        """Count one D step that showed `images` real images (global batch); every `interval`
        steps, adjust p with the images shown since the last adjust. Returns whether it did."""
        self._d_steps += 1
        self._images += int(images)
        if self._d_steps % self.interval:
            return False
        self.adjust(self._images, reduce)
        self._images = 0
        return True

    def adjust(self, images: int, reduce: Reduce = None) -> None:
        """p += sign(r_t - target) * images / (speed_kimg * 1000), clamped to [0, 1], from the
        observations since the last adjust (summed over ranks by `reduce`); then reset them.
        No observation (or target None) leaves p unchanged. Runs on the device, no host sync."""
        acc = reduce(self._acc) if reduce is not None else self._acc
        if self.target is not None:
            rt = acc[0] / acc[1].clamp(min=1)
            delta = torch.sign(rt - self.target) * (float(images) / (self.speed_kimg * 1000))
            delta = torch.where(acc[1] > 0, delta, torch.zeros_like(delta))
            self.p.copy_((self.p + delta.to(self.p.dtype)).clamp(0, 1))
        self._acc.zero_()

    def fold(self, reduce: Reduce = None, keep: bool = True) -> None:
        """Gather the observations since the last adjust onto one rank: `keep` (rank 0) holds the
        sum over ranks, the others zero. The next `adjust` sums the same total (exact: integer
        counts in float64), and rank 0's state alone, as checkpointed, then carries it all, so
        a resume loses nothing. Call on every rank at once (a tick end)."""
        if reduce is None:
            return
        total = reduce(self._acc)
        if keep:
            self._acc.copy_(total)
        else:
            self._acc.zero_()

    def stats(self, reduce: Reduce = None) -> Dict[str, float]:
        """{'p', 'rt'} for the per-tick log: p now and r_t over the reals observed since the
        last stats() call (nan if none). One host sync; resets the tick accumulators."""
        tick = reduce(self._tick) if reduce is not None else self._tick
        rt = (tick[0] / tick[1]) if float(tick[1]) > 0 else torch.tensor(float("nan"))
        out = {"p": float(self.p), "rt": float(rt)}
        self._tick.zero_()
        return out

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> Dict[str, Union[torch.Tensor, int]]:
        """Tensors and ints only (loads with torch.load(weights_only=True))."""
        return {
            "p": self.p.detach().cpu().clone(),
            "acc": self._acc.detach().cpu().double().clone(),
            "tick": self._tick.detach().cpu().double().clone(),
            "d_steps": self._d_steps,
            "images": self._images,
        }

    def load_state_dict(self, state: Dict[str, Union[torch.Tensor, int]], keep_partial: bool = True) -> None:
        """`keep_partial=False` (ranks > 0 loading rank 0's checkpoint after `fold`) drops the
        observations since the last adjust, which rank 0 carries for everyone."""
        missing = {"p", "acc", "tick", "d_steps", "images"} - set(state)
        if missing:
            raise ConfigError(f"ADA state lacks {', '.join(sorted(missing))}")
        dev = self.p.device
        self.p = torch.as_tensor(state["p"], dtype=torch.float32).to(dev).clone()
        self._acc = torch.as_tensor(state["acc"]).to(dev, _acc_dtype(dev)).clone()
        if not keep_partial:
            self._acc.zero_()
        self._tick = torch.as_tensor(state["tick"]).to(dev, _acc_dtype(dev)).clone()
        self._d_steps, self._images = int(state["d_steps"]), int(state["images"])

    def __repr__(self) -> str:
        return (f"AdaptiveAugment(ops={','.join(self.ops)!r}, target={self.target}, "
                f"speed_kimg={self.speed_kimg}, interval={self.interval})")


# ---------------------------------------------------------------------- matrices
def _mat(rows) -> torch.Tensor:
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    z, o = torch.zeros_like(sx), torch.ones_like(sx)
    return _mat([[sx, z, z], [z, sy, z], [z, z, o]])


def _rotation(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    z, o = torch.zeros_like(cos), torch.ones_like(cos)
    return _mat([[cos, -sin, z], [sin, cos, z], [z, z, o]])


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    z, o = torch.zeros_like(tx), torch.ones_like(tx)
    return _mat([[o, z, tx], [z, o, ty], [z, z, o]])


def _warp(x: torch.Tensor, G_inv: torch.Tensor) -> torch.Tensor:
    """Resample each image through its centred-pixel inverse matrix once. affine_grid's
    normalised coordinates (align_corners=False) are centred pixels times 2/size, so
    theta = D @ G_inv @ D^-1 with D = diag(2/W, 2/H, 1)."""
    n, c, h, w = x.shape
    d = (2.0 / w, 2.0 / h, 1.0)  # python scalars: no host-to-device copy per call
    theta = torch.stack([torch.stack([G_inv[:, i, j] * (d[i] / d[j]) for j in range(3)], -1) for i in range(2)], 1)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    grid = F.affine_grid(theta.to(dtype), [n, c, h, w], align_corners=False)
    out = F.grid_sample(x.to(dtype), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.to(x.dtype)
