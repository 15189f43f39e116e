"""CycleGAN's ResNet generator (Johnson et al. 2016, as in junyanz/pytorch-CycleGAN-and-pix2pix
`ResnetGenerator`), registered as GENERATORS["resnet-translator"].

Layout, with ``ngf`` = base width: c7s1-ngf, d(2 ngf), d(4 ngf), ``n_blocks`` x R(4 ngf),
u(2 ngf), u(ngf), c7s1-out, tanh. Reflection padding keeps borders free of zero-padding
artefacts; instance norm by default (the reference's choice for translation, batch 1); a conv
bias only where no affine norm follows, as in the reference. Weights N(0, 0.02), biases 0
(the reference's ``init_type='normal'``), so its known behaviour carries over.

Defaults are sized for 28-64 px on a laptop CPU (``ngf`` 32, 6 blocks); the reference uses
``ngf`` 64 with 9 blocks at 256 px and 6 at 128 px (set ``model.g``). Fully convolutional: any
input whose height and width are divisible by 4 (the two stride-2 steps), e.g. 28 -> 14 -> 7 ->
14 -> 28, 96, 160, 256; the training resolution must be such a size (>= 8), and a refused one is
named with the nearest valid sizes.
"""
from __future__ import annotations

from typing import Callable, List

import torch
from torch import nn

from raygan.errors import ConfigError
from raygan.models.i2i_parts import nearest_multiples
from raygan.models.networks import GENERATORS

NAME = "resnet-translator"
NORMS = ("instance", "batch", "none")
DOWNSAMPLINGS = 2  # two stride-2 steps: inputs must be divisible by 2**2


def _norm_layer(norm: str) -> Callable[[int], nn.Module]:
    if norm == "instance":  # affine=False, track_running_stats=False as in the reference
        return lambda c: nn.InstanceNorm2d(c)
    if norm == "batch":
        return lambda c: nn.BatchNorm2d(c)
    return lambda c: nn.Identity()


def init_weights(m: nn.Module) -> None:
    """The reference's normal init: conv weights N(0, 0.02), biases 0; BN weights N(1, 0.02)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class ResidualBlock(nn.Module):
    """x + (pad, conv3, norm, ReLU, [dropout 0.5], pad, conv3, norm)(x): no ReLU after the sum."""

    def __init__(self, width: int, norm: Callable[[int], nn.Module], bias: bool, dropout: bool):
        super().__init__()
        layers: List[nn.Module] = [
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=bias), norm(width), nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=bias), norm(width)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetTranslator(nn.Module):
    """Image (N, in_channels, h, w) in [-1, 1] -> image (N, out_channels, h, w) in [-1, 1]."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        ngf: int = 32,
        n_blocks: int = 6,
        norm: str = "instance",
        dropout: bool = False,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        make_norm = _norm_layer(norm)
        bias = norm != "batch"  # instance norm here is not affine, so the conv keeps its bias
        layers: List[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), make_norm(ngf), nn.ReLU(True),
        ]
        for i in range(DOWNSAMPLINGS):
            a, b = ngf * 2**i, ngf * 2 ** (i + 1)
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1, bias=bias), make_norm(b), nn.ReLU(True)]
        width = ngf * 2**DOWNSAMPLINGS
        layers += [ResidualBlock(width, make_norm, bias, dropout) for _ in range(n_blocks)]
        for i in range(DOWNSAMPLINGS):
            a, b = ngf * 2 ** (DOWNSAMPLINGS - i), ngf * 2 ** (DOWNSAMPLINGS - i - 1)
            layers += [
                nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1, bias=bias),
                make_norm(b),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.apply(init_weights)

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this (the two stride-2 steps)."""
        return 2**DOWNSAMPLINGS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        step = 2**DOWNSAMPLINGS
        if h % step or w % step:
            raise ValueError(f"{NAME}: input size {h}x{w} is not divisible by {step}")
        return self.model(x)


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"generator '{NAME}': {name} must be an int >= {minimum}, got {value!r}")
    return value


@GENERATORS.register(NAME)
def build(
    *,
    in_channels: int,
    out_channels: int,
    resolution: int,
    ngf: int = 32,
    n_blocks: int = 6,
    norm: str = "instance",
    dropout: bool = False,
) -> ResnetTranslator:
    """The registry's constructor: validates options (one-line ConfigError), then builds."""
    _positive_int("in_channels", in_channels)
    _positive_int("out_channels", out_channels)
    _positive_int("ngf", ngf)
    _positive_int("n_blocks", n_blocks, minimum=0)
    _positive_int("resolution", resolution)
    step = 2**DOWNSAMPLINGS
    if resolution % step or resolution < 2 * step:
        raise ConfigError(
            f"generator '{NAME}': resolution must be a multiple of {step} and >= {2 * step} "
            f"(two stride-2 steps, 7x7 reflection padding), got {resolution} "
            f"(nearest: {nearest_multiples(resolution, step, 2 * step)})"
        )
    if norm not in NORMS:
        raise ConfigError(f"generator '{NAME}': norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if not isinstance(dropout, bool):
        raise ConfigError(f"generator '{NAME}': dropout must be true or false, got {dropout!r}")
    return ResnetTranslator(
        in_channels=in_channels, out_channels=out_channels, ngf=ngf, n_blocks=n_blocks,
        norm=norm, dropout=dropout,
    )
