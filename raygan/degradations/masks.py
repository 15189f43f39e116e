"""Inpainting masks: one random box, or free-form brush strokes as in DeepFill v2.

Each op draws a mask per image whose covered fraction lies in the requested `area` range
[lo, hi] (guaranteed, not just on average), fills the holes with `fill` (default 0.5:
mid-grey, i.e. 0 on the networks' [-1, 1] scale, so a hole carries no signal) and returns the
mask as (N, 1, H, W) float with 1 = missing pixel. Several mask ops combine by union; `area`
refers to each op's own mask. Geometry is drawn on the CPU from each image's generator.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from raygan.degradations.base import DEGRADATIONS, Degradation, Draws, Range, Stream, Value


class MaskOp(Degradation):
    makes_mask = True

    def __init__(self, area: Value, fill: float):
        self.area = Range(self.name, "area", area, 0.0, 1.0)
        if self.area.lo <= 0 or self.area.hi >= 1:
            raise self.fail(f"area must lie strictly inside (0, 1), got {area!r}")
        if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not 0 <= fill <= 1:
            raise self.fail(f"fill must be a number in [0, 1], got {fill!r}")
        self.fill = float(fill)

    def draw_mask(self, h: int, w: int, s: Stream) -> np.ndarray:
        """(h, w) bool, True = missing, covering a fraction in [area.lo, area.hi]."""
        raise NotImplementedError

    def apply(
        self, x: torch.Tensor, mask: Optional[torch.Tensor], draws: Draws
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        n, _, h, w = x.shape
        if draws.shared and draws.gens:  # one stream, consumed image after image
            s = Stream(draws.gens[0])
            streams = [s] * n
        else:
            streams = [Stream(g) for g in draws.gens]
        m = np.stack([self.draw_mask(h, w, st) for st in streams]) if n else np.zeros((0, h, w), bool)
        new = torch.from_numpy(m).to(device=x.device, dtype=x.dtype)[:, None]
        y = torch.where(new > 0, torch.full_like(x, self.fill), x)
        return y, (new if mask is None else torch.maximum(mask, new))


@DEGRADATIONS.register("box")
class BoxMask(MaskOp):
    """One axis-aligned rectangle per image: covered fraction drawn from U[area], aspect
    ratio (height / width) log-uniform in `aspect`, position uniform; its integer height and
    width are then chosen nearest to that draw with the area exactly in range (when no integer
    box has such an area, e.g. a fixed 0.1 of 32x32 = 102.4 px, the nearest area instead)."""

    name = "box"

    def __init__(self, area: Value = (0.1, 0.3), aspect: Value = (0.5, 2.0), fill: float = 0.5):
        super().__init__(area, fill)
        self.aspect = Range(self.name, "aspect", aspect, 1e-3, 1e3)

    def draw_mask(self, h: int, w: int, s: Stream) -> np.ndarray:
        total = h * w
        t = s.uniform(self.area.lo, self.area.hi)
        r = math.exp(s.uniform(math.log(self.aspect.lo), math.log(self.aspect.hi)))
        sizes = _box_sizes(h, w, self.area.lo, self.area.hi) or [(bh, (1, w)) for bh in range(1, h + 1)]
        bh0 = math.sqrt(t * total * r)
        bh, (wlo, whi) = min(sizes, key=lambda hw: (abs(hw[0] - bh0), hw[0]))
        bw = min(max(round(t * total / bh), wlo), whi)
        y0, x0 = s.randint(0, h - bh), s.randint(0, w - bw)
        m = np.zeros((h, w), bool)
        m[y0 : y0 + bh, x0 : x0 + bw] = True
        return m

    def params(self) -> Dict[str, Any]:
        return {"area": self.area.to_json(), "aspect": self.aspect.to_json(), "fill": self.fill}


def _box_sizes(h: int, w: int, lo: float, hi: float) -> List[Tuple[int, Tuple[int, int]]]:
    """Every box height with its feasible width range [wlo, whi] (area fraction in [lo, hi])."""
    total, out = h * w, []
    for bh in range(1, h + 1):
        wlo = max(1, math.ceil(lo * total / bh - 1e-9))
        whi = min(w, math.floor(hi * total / bh + 1e-9))
        if wlo <= whi:
            out.append((bh, (wlo, whi)))
    return out


@DEGRADATIONS.register("strokes")
class StrokeMask(MaskOp):
    """Free-form brush strokes after DeepFill v2's `brush_stroke_mask` (Yu et al. 2019):
    strokes of `vertices` random zig-zag vertices (angles around 2*pi/5 +- 2*pi/15, lengths
    N(r, r/2) clipped to [0, 2r], r = image diagonal / 8), brush `width` as a fraction of the
    image side (DeepFill's 12..40 px at 256 px), round joints. Strokes are added segment by
    segment until a target coverage drawn from U[area] is reached; a segment that would
    pass the upper bound is shortened (bisection), so the coverage always lies in `area`
    (the range must be at least 0.02 wide)."""

    name = "strokes"
    MEAN_ANGLE, ANGLE_RANGE = 2 * math.pi / 5, 2 * math.pi / 15

    def __init__(
        self,
        area: Value = (0.1, 0.4),
        vertices: Value = (4, 12),
        width: Value = (12 / 256, 40 / 256),
        fill: float = 0.5,
    ):
        super().__init__(area, fill)
        if self.area.hi - self.area.lo < 0.02:
            raise self.fail(f"area range must be at least 0.02 wide, got {area!r}")
        self.vertices = Range(self.name, "vertices", vertices, 1, 100, integer=True)
        self.width = Range(self.name, "width", width, 1e-3, 1.0)

    def out_size(self, size: int, channels: int) -> int:
        if size < 8:
            raise self.fail(f"a {size}-px image is too small for stroke masks (need >= 8)")
        return size

    def draw_mask(self, h: int, w: int, s: Stream) -> np.ndarray:
        canvas = _Canvas(h, w)
        lo, hi = self.area.lo * canvas.total, self.area.hi * canvas.total
        target = s.uniform(lo, hi)
        radius = math.hypot(h, w) / 8
        for _ in range(1000):  # strokes; ends long before in practice
            nv = s.randint(int(self.vertices.lo), int(self.vertices.hi))
            a_min = self.MEAN_ANGLE - s.uniform(0, self.ANGLE_RANGE)
            a_max = self.MEAN_ANGLE + s.uniform(0, self.ANGLE_RANGE)
            half = max(0.5, s.uniform(self.width.lo, self.width.hi) * min(h, w) / 2)
            p = (s.uniform(0, w), s.uniform(0, h))
            shortened = not canvas.add(p, p, half, hi)
            for i in range(nv):
                if canvas.count >= target or (shortened and canvas.count >= lo):
                    return canvas.mask
                a = s.uniform(a_min, a_max)
                a = 2 * math.pi - a if i % 2 == 0 else a
                length = min(max(radius + radius / 2 * _normal(s), 0.0), 2 * radius)
                q = (min(max(p[0] + length * math.cos(a), 0.0), float(w)),
                     min(max(p[1] + length * math.sin(a), 0.0), float(h)))
                shortened = not canvas.add(p, q, half, hi) or shortened
                p = q
            if canvas.count >= target or (shortened and canvas.count >= lo):
                return canvas.mask
        raise RuntimeError(f"stroke mask: coverage {canvas.count / canvas.total:.3f} never reached {self.area.lo}")

    def params(self) -> Dict[str, Any]:
        return {"area": self.area.to_json(), "vertices": self.vertices.to_json(), "width": self.width.to_json(),
                "fill": self.fill}


def _normal(s: Stream) -> float:
    """Standard normal from two uniforms (Box-Muller), so the stream stays the only source."""
    u1, u2 = s.uniform(), s.uniform()
    return math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2)


class _Canvas:
    """A boolean mask with a running count; thick segments (capsules) drawn inside their bbox."""

    def __init__(self, h: int, w: int):
        self.h, self.w, self.total = h, w, h * w
        self.mask = np.zeros((h, w), bool)
        self.count = 0

    def _capsule(self, p: Tuple[float, float], q: Tuple[float, float], r: float):
        x0, x1 = max(0, int(math.floor(min(p[0], q[0]) - r))), min(self.w, int(math.ceil(max(p[0], q[0]) + r)) + 1)
        y0, y1 = max(0, int(math.floor(min(p[1], q[1]) - r))), min(self.h, int(math.ceil(max(p[1], q[1]) + r)) + 1)
        if x0 >= x1 or y0 >= y1:
            return (slice(0, 0), slice(0, 0)), np.zeros((0, 0), bool)
        px = np.arange(x0, x1)[None, :] + (0.5 - p[0])  # pixel centres relative to p
        py = np.arange(y0, y1)[:, None] + (0.5 - p[1])
        dx, dy = q[0] - p[0], q[1] - p[1]
        dd = dx * dx + dy * dy
        t = np.clip((px * dx + py * dy) / dd, 0, 1) if dd > 0 else 0.0
        inside = (px - t * dx) ** 2 + (py - t * dy) ** 2 <= r * r
        return (slice(y0, y1), slice(x0, x1)), inside

    def _gain(self, p, q, r) -> Tuple[Tuple[slice, slice], np.ndarray, int]:
        box, inside = self._capsule(p, q, r)
        new = inside & ~self.mask[box]
        return box, new, int(new.sum())

    def add(self, p, q, r: float, limit: float) -> bool:
        """Draw the segment p->q; if the count would pass `limit`, draw the longest prefix
        that keeps it within (possibly none). Returns False when it had to shorten."""
        box, new, gain = self._gain(p, q, r)
        if self.count + gain <= limit:
            self.mask[box] |= new
            self.count += gain
            return True
        lo, hi, best = 0.0, 1.0, None
        for _ in range(12):
            mid = (lo + hi) / 2
            qm = (p[0] + mid * (q[0] - p[0]), p[1] + mid * (q[1] - p[1]))
            cand = self._gain(p, qm, r)
            if self.count + cand[2] <= limit:
                lo, best = mid, cand
            else:
                hi = mid
        if best is None:
            cand = self._gain(p, p, r)
            best = cand if self.count + cand[2] <= limit else None
        if best is not None:
            self.mask[best[0]] |= best[1]
            self.count += best[2]
        return False
