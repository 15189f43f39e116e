"""pix2pix U-Net generators (Isola et al. 2017, junyanz `UnetGenerator`), at any size.

Encoder: `depth` 4x4 stride-2 convs (LeakyReLU 0.2, norm except on the first and the
innermost); decoder: mirrored 4x4 stride-2 transposed convs (ReLU, norm) fed the matching
encoder activation through a skip connection (channel concat); dropout 0.5 after the up-conv
of the 3 innermost levels (all but the outermost up to depth 4) is pix2pix's noise source
(active in train mode only here, so evaluation is deterministic); tanh output. Widths
ngf * min(2^i, 8).

Size rule (fully convolutional): depth defaults to floor(log2(resolution / 2)), i.e. a 2-4 px
bottleneck (28 px: 3, 32: 4, 64: 5, 96: 5, 128: 6, 160: 6, 256: 7; pix2pix uses 8 at 256 px,
a 1 px bottleneck: set model.g.depth). Any input size works: an input whose sides are not
multiples of 2^depth is replicate-padded up to the next multiple inside the network and the
output cropped back (28 px -> 32 internally), so `raygan repair` runs on larger images too.

`residual=True` adds a global skip (DnCNN/VDSR's residual learning): the network predicts the
correction to its input image (the first `out_channels` input channels), output = input +
correction, clamped to [-1, 1] with a straight-through gradient (as SRResNet). For denoising
and super-resolution from an upsampled input this converges much faster than mapping the image
from scratch; pix2pix's U-Net has no such skip (the default, False).

`inpaint-unet` takes the image plus the mask (last channel, 1 = missing, values 0/1) and
returns the input's known pixels bit-for-bit, generating only the holes.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import ConfigError
from raygan.models.i2i_parts import check_norm, init_pix2pix, make_norm, positive_int
from raygan.models.networks import GENERATORS

def default_depth(resolution: int) -> int:
    """floor(log2(resolution / 2)), between 1 and 8: a 2-4 px bottleneck."""
    return max(1, min(8, int(math.floor(math.log2(max(resolution, 2) / 2)))))


class _Block(nn.Module):
    """One U-Net level: down -> inner level -> up, concatenated with its (activated) input.

    The skip carries LeakyReLU(x), which is what pix2pix's in-place LeakyReLU effectively
    concatenates; written out here instead of relying on in-place mutation.
    """

    def __init__(self, outer: int, inner: int, sub: Optional[nn.Module], *, norm: str, dropout: float,
                 outermost: bool = False, in_channels: int = 0, out_channels: int = 0):
        super().__init__()
        bias = norm != "batch"  # a conv bias before BN is redundant (as pix2pix)
        innermost = sub is None
        self.outermost = outermost
        self.down = nn.Conv2d(in_channels if outermost else outer, inner, 4, 2, 1, bias=bias)
        self.down_norm = make_norm(norm, inner) if not (outermost or innermost) else nn.Identity()
        self.sub = sub if sub is not None else nn.Identity()
        up_in = inner if innermost else inner * 2
        if outermost:
            self.up = nn.ConvTranspose2d(up_in, out_channels, 4, 2, 1)
            self.up_norm: nn.Module = nn.Tanh()
        else:
            self.up = nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=bias)
            self.up_norm = make_norm(norm, outer)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x if self.outermost else F.leaky_relu(x, 0.2)
        h = self.sub(self.down_norm(self.down(a)))
        y = self.drop(self.up_norm(self.up(F.relu(h))))
        return y if self.outermost else torch.cat([a, y], dim=1)


@GENERATORS.register("unet")
class UNet(nn.Module):
    """pix2pix U-Net: (N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W) in [-1, 1]."""

    who = "generator 'unet'"

    def __init__(self, *, in_channels: int, out_channels: int, resolution: int, ngf: int = 32,
                 depth: Optional[int] = None, norm: str = "batch", dropout: float = 0.5, residual: bool = False):
        super().__init__()
        positive_int(self.who, "in_channels", in_channels)
        positive_int(self.who, "out_channels", out_channels)
        positive_int(self.who, "resolution", resolution)
        ngf = positive_int(self.who, "ngf", ngf)
        depth = default_depth(resolution) if depth is None else positive_int(self.who, "depth", depth)
        if depth > 8:
            raise ConfigError(f"{self.who}: depth must be <= 8, got {depth}")
        check_norm(self.who, norm)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ConfigError(f"{self.who}: dropout must be in [0, 1), got {dropout!r}")
        if not isinstance(residual, bool):
            raise ConfigError(f"{self.who}: residual must be true or false, got {residual!r}")
        if residual and in_channels < out_channels:
            raise ConfigError(f"{self.who}: residual needs in_channels >= out_channels, got {in_channels} < {out_channels}")
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        self.residual = residual
        widths = [ngf * min(2**i, 8) for i in range(depth)]  # output width of each encoder level
        block: Optional[nn.Module] = None
        for i in reversed(range(1, depth)):  # innermost first; dropout in the 3 innermost levels
            block = _Block(widths[i - 1], widths[i], block, norm=norm, dropout=dropout if depth - i <= 3 else 0.0)
        self.net = _Block(0, widths[0], block, norm=norm, dropout=0.0, outermost=True,
                          in_channels=in_channels, out_channels=out_channels)
        self.apply(init_pix2pix)

    @property
    def multiple(self) -> int:
        """Input sides that are multiples of this run without internal padding."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self.who} expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:  # pad symmetrically (extra pixel at the bottom/right), crop back after
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
        y = self.net(x)
        if ph or pw:
            y = y[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
            x = x[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
        if self.residual:
            y = x[:, : self.out_channels] + y
            y = y + (y.clamp(-1, 1) - y).detach()
        return y


@GENERATORS.register("inpaint-unet")
class InpaintUNet(UNet):
    """U-Net that sees image + mask (last input channel, 1 = missing) and keeps known pixels:
    output = input image where mask == 0, generated where mask == 1 (exact, `torch.where`)."""

    who = "generator 'inpaint-unet'"

    def __init__(self, *, in_channels: int, out_channels: int, resolution: int, ngf: int = 32,
                 depth: Optional[int] = None, norm: str = "batch", dropout: float = 0.5, residual: bool = False):
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels != out_channels + 1:
            raise ConfigError(
                f"{self.who}: in_channels must be out_channels + 1 (image + mask), got {in_channels} and {out_channels}"
            )
        super().__init__(in_channels=in_channels, out_channels=out_channels, resolution=resolution,
                         ngf=ngf, depth=depth, norm=norm, dropout=dropout, residual=residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        generated = super().forward(x)
        return torch.where(x[:, -1:] > 0.5, generated, x[:, :-1])
