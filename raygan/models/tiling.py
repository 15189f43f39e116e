"""Running a fully convolutional image network over overlapping tiles, blended without seams.

    from raygan.models.tiling import Tiling, receptive_radius, run_tiled
    plan = Tiling(tile=256, overlap=16, context=receptive_radius(net, [3]), multiple=16)
    y = run_tiled(lambda x: net(x), [x], plan, scale=1)

An image too large for one pass (memory) is cut into tiles of `tile` x `tile` input pixels.
Each tile is run on its own; of its output, a margin of `context` pixels along every side that
lies inside the image is given weight 0 (those pixels saw the tile's border, not the image), and
the next `overlap` pixels a linear ramp 0 -> 1; the weighted outputs are summed and divided by
the summed weights. Neighbouring tiles therefore share `2 * context + overlap` input pixels.

Exactness: with `context` >= the network's receptive radius (what `receptive_radius` measures)
and tiles placed on the network's stride grid (`multiple`: the image is first replicate-padded
to a multiple, as the U-Net and the translator do themselves, and every tile starts on a
multiple), every pixel that keeps a weight saw exactly the inputs it sees in one pass, so the
blend equals one-pass inference up to float rounding, for any network whose layers are local:
convolutions, eval-mode BatchNorm (running statistics), pixel shuffle, interpolation. A layer
that normalises over the whole image (InstanceNorm, train-mode BatchNorm) is not local: each tile
normalises with its own statistics, so tiles differ from one pass by how much a tile's mean and
variance differ from the whole image's (`uses_image_statistics` says whether a network has one).

Super-resolution: with `scale` s, a tile of T input pixels gives T*s output pixels; context and
ramps are scaled with it.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import ConfigError

#: images with more input pixels than this are tiled automatically (`raygan repair/translate`);
#: 2048 x 2048: one pass of the default repair/translate networks at this size stays within a few GiB
AUTO_TILE_PIXELS = 2048 * 2048
#: the tile side used when tiling is automatic (raised to the network's minimum when that is larger)
AUTO_TILE = 512
DEFAULT_OVERLAP = 16
PROBE_SIZES = (64, 128, 256, 512, 1024)  # probe images for the receptive field, smallest first

_IMAGE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm)


def round_up(v: int, m: int) -> int:
    return -(-int(v) // int(m)) * int(m)


@dataclass(frozen=True)
class Tiling:
    """How to cut an image: tile side, blend width, context margin (input px) and the stride grid."""

    tile: int
    overlap: int = DEFAULT_OVERLAP
    context: int = 0
    multiple: int = 1

    @property
    def minimum(self) -> int:
        """The smallest tile that leaves a stride of one grid step after context and overlap."""
        return round_up(2 * self.context + self.overlap + self.multiple, self.multiple)

    def check(self, what: str = "--tile") -> "Tiling":
        if isinstance(self.overlap, bool) or self.overlap < 0:
            raise ConfigError(f"--tile-overlap must be >= 0 pixels, got {self.overlap}")
        if self.tile < self.minimum:
            raise ConfigError(
                f"{what} {self.tile} is too small for this network: its receptive field needs {self.context} px "
                f"of context on each side, plus the {self.overlap} px blend (--tile-overlap), on a grid of "
                f"{self.multiple} px; use {what} >= {self.minimum} (or 0 for one pass)")
        return self

    def starts(self, length: int) -> List[int]:
        """Tile starts along an axis of `length` (already a multiple of the grid)."""
        t = self.side(length)
        if t >= length:
            return [0]
        stride = (t - 2 * self.context - self.overlap) // self.multiple * self.multiple
        out = list(range(0, length - t, stride))
        return out + [length - t]

    def side(self, length: int) -> int:
        """The tile's extent along an axis: the tile on the grid, or the whole axis when shorter."""
        return min(self.tile // self.multiple * self.multiple, length)


def _ramp(n: int, context: int, overlap: int, lead: bool, trail: bool) -> torch.Tensor:
    """1-D weights of one tile along an axis (output px): 0 over the context margin and a linear
    ramp over the overlap on each side that is inside the image (`lead`: the start side, `trail`: the end)."""
    t = torch.arange(n, dtype=torch.float64)
    w = torch.ones(n, dtype=torch.float64)

    def side(d: torch.Tensor) -> torch.Tensor:  # d: distance from the tile's edge
        if overlap <= 0:
            return (d >= context).double()
        return ((d - context + 0.5) / overlap).clamp(0, 1)

    if lead:
        w = w * side(t)
    if trail:
        w = w * side(n - 1 - t)
    return w


def _pad_to(x: torch.Tensor, multiple: int):
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
    return x, ph // 2, pw // 2


def needs_tiling(height: int, width: int, plan: Optional[Tiling]) -> bool:
    return plan is not None and (height > plan.tile or width > plan.tile)


@torch.no_grad()
def run_tiled(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], plan: Tiling, *, scale: int = 1,
              device: Optional[torch.device] = None) -> torch.Tensor:
    """`fn(*tiles)` over overlapping tiles of `inputs` ((N, C_i, H, W) each, same H, W), blended;
    returns float32 (N, C_out, H*scale, W*scale) on the CPU. One pass when the image fits one tile."""
    inputs = [x.float() for x in inputs]
    h, w = inputs[0].shape[-2:]
    device = device or inputs[0].device
    if not needs_tiling(h, w, plan):
        return fn(*[x.to(device) for x in inputs]).float().cpu()
    padded = [_pad_to(x, plan.multiple) for x in inputs]
    top, left = padded[0][1], padded[0][2]
    xs = [p[0] for p in padded]
    H, W = xs[0].shape[-2:]
    th, tw = plan.side(H), plan.side(W)
    s, c, b = int(scale), plan.context * int(scale), plan.overlap * int(scale)
    out: Optional[torch.Tensor] = None
    wsum = torch.zeros(1, 1, H * s, W * s)  # float32 accumulators: a blend of equal values stays equal
    for y0 in plan.starts(H):
        wy = _ramp(th * s, c, b, lead=y0 > 0, trail=y0 + th < H)
        for x0 in plan.starts(W):
            wx = _ramp(tw * s, c, b, lead=x0 > 0, trail=x0 + tw < W)
            y = fn(*[x[..., y0:y0 + th, x0:x0 + tw].to(device) for x in xs]).float().cpu()
            if out is None:
                out = torch.zeros(y.shape[0], y.shape[1], H * s, W * s)
            wt = (wy[:, None] * wx[None, :])[None, None].float()
            out[..., y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s] += y * wt
            wsum[..., y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s] += wt
    assert out is not None and bool((wsum > 0).all()), "tiles leave pixels uncovered"  # by construction
    out = out / wsum
    return out[..., top * s:(top + h) * s, left * s:(left + w) * s].contiguous()


# ------------------------------------------------------------------------------ the receptive field


def uses_image_statistics(net: nn.Module) -> bool:
    """True when a layer normalises over the whole image (InstanceNorm, GroupNorm, LayerNorm) or a
    BatchNorm is in train mode: then tiles cannot equal one pass exactly."""
    for m in net.modules():
        if isinstance(m, _IMAGE_NORMS):
            return True
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            return True
    return False


def _positive_copy(net: nn.Module) -> nn.Module:
    """A float32 eval copy in which every layer passes positive signals to every pixel it touches:
    conv weights 1/fan-in, biases 0, BatchNorm the identity, image-wide norms removed (their
    receptive field is the image; the local part is what tiles need as context)."""
    probe = copy.deepcopy(net).float().cpu().eval()
    for name, m in list(probe.named_modules()):
        if isinstance(m, _IMAGE_NORMS):
            parent = probe.get_submodule(name.rsplit(".", 1)[0]) if "." in name else probe
            setattr(parent, name.rsplit(".", 1)[-1], nn.Identity())
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.weight.fill_(1.0 / max(1, m.weight[0].numel()))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.running_mean is not None:
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0)
                if m.weight is not None:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
    for p in probe.parameters():
        p.requires_grad_(False)
    return probe


def receptive_radius(fn_of: Callable[[nn.Module], Callable[..., torch.Tensor]], net: nn.Module,
                     channels: Sequence[int], values: Sequence[float], *, scale: int = 1, multiple: int = 1,
                     sizes: Sequence[int] = PROBE_SIZES) -> int:
    """Input pixels an output pixel depends on, in each direction, measured: the support of the
    gradient of a block of `multiple` x `multiple` centre output pixels (every phase of a strided
    network's grid) on a positive copy of `net` (`fn_of(copy)` -> the function of its inputs;
    `channels`/`values`: each input's channels and probe value). Grows the probe image until the
    support stays inside it; ConfigError when even the largest probe is too small."""
    with torch.enable_grad():  # callers run under no_grad
        return _radius(fn_of(_positive_copy(net)), channels, values, scale, max(1, int(multiple)), sizes)


def _radius(fn, channels, values, scale, m, sizes) -> int:
    for size in sizes:
        size = round_up(size, m)
        lo, hi = size // 2 // m * m, size // 2 // m * m + m  # the centre block, on the grid
        xs = [torch.full((1, int(ch), size, size), float(v), requires_grad=True) for ch, v in zip(channels, values)]
        y = fn(*xs)
        grads = torch.autograd.grad(y[..., lo * scale:hi * scale, lo * scale:hi * scale].sum(), xs, allow_unused=True)
        hit = torch.zeros(size, size, dtype=torch.bool)
        for g in grads:
            if g is not None:
                hit |= (g[0].abs().sum(0) > 0)
        rows = hit.any(1).nonzero().flatten()
        cols = hit.any(0).nonzero().flatten()
        if rows.numel() == 0:
            return 0
        inside = min(int(rows.min()), int(cols.min())) > 0 and max(int(rows.max()), int(cols.max())) < size - 1
        if inside:
            return max(lo - int(rows.min()), int(rows.max()) - (hi - 1), lo - int(cols.min()), int(cols.max()) - (hi - 1))
    raise ConfigError(f"this network's receptive field is wider than {sizes[-1]} px: it cannot be tiled; "
                      "use --tile 0 (one pass)")


def plan_for(tile: int, overlap: int, context: int, multiple: int) -> Tiling:
    """A checked Tiling (one-line ConfigError naming the minimum tile when `tile` is too small)."""
    if isinstance(tile, bool) or int(tile) < 1:
        raise ConfigError(f"--tile must be a positive number of pixels (or 0 for one pass), got {tile}")
    return Tiling(int(tile), int(overlap), int(context), max(1, int(multiple))).check()


class TilePolicy:
    """Per image: tile or not, and with which checked plan. `tile` N (input px) tiles every image
    wider or taller than N; 0 never tiles; None tiles only images of more than `max_pixels` pixels
    (with AUTO_TILE, or the network's minimum when larger). An explicit tile is checked against the
    network's receptive field at once (`context()` measures it), before any file is read."""

    def __init__(self, tile: Optional[int], overlap: Optional[int], max_pixels: Optional[int],
                 context: Callable[[], int], multiple: int):
        overlap = DEFAULT_OVERLAP if overlap is None else overlap
        max_pixels = AUTO_TILE_PIXELS if max_pixels is None else max_pixels
        if isinstance(overlap, bool) or int(overlap) < 0:
            raise ConfigError(f"--tile-overlap must be >= 0 pixels, got {overlap}")
        if tile is not None and (isinstance(tile, bool) or int(tile) < 0):
            raise ConfigError(f"--tile must be a positive number of pixels (or 0 for one pass), got {tile}")
        if isinstance(max_pixels, bool) or int(max_pixels) < 1:
            raise ConfigError(f"--max-pixels must be a positive number of pixels, got {max_pixels}")
        self.tile, self.overlap, self.max_pixels = tile, int(overlap), int(max_pixels)
        self.context, self.multiple = context, max(1, int(multiple))
        self._plan: Optional[Tiling] = None
        self.tiled = 0  # images run in tiles so far
        if tile:
            self._plan = plan_for(int(tile), self.overlap, context(), self.multiple)

    def plan(self, height: int, width: int) -> Optional[Tiling]:
        if self.tile == 0 or (self.tile is None and height * width <= self.max_pixels):
            return None
        if self._plan is None:
            c = self.context()
            self._plan = Tiling(auto_tile(c, self.overlap, self.multiple), self.overlap, c, self.multiple)
        if not needs_tiling(height, width, self._plan):
            return None
        self.tiled += 1
        return self._plan

    def note(self, net: nn.Module) -> Optional[str]:
        """What the user should know about the tiles run (None when no image was tiled)."""
        if not self.tiled or self._plan is None:
            return None
        p = self._plan
        text = (f"{self.tiled} image(s) run in {p.tile} px tiles ({p.context} px receptive-field margin, "
                f"{p.overlap} px blend)")
        if uses_image_statistics(net):
            text += ("; this network normalises over the whole image (InstanceNorm), so each tile used its own "
                     "statistics and the result differs from one pass")
        return text


def auto_tile(context: int, overlap: int, multiple: int) -> int:
    """The automatic tile side: AUTO_TILE, or the network's minimum when that is larger."""
    return max(round_up(AUTO_TILE, max(1, multiple)), Tiling(AUTO_TILE, overlap, context, max(1, multiple)).minimum)


def grid_multiple(m: int, scale: int = 1) -> int:
    """The grid in input px when the network sees the input upsampled by `scale` first."""
    return max(1, m // math.gcd(m, scale)) if scale > 1 else max(1, m)
