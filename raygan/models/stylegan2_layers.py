"""StyleGAN2's building blocks in plain PyTorch ops (Karras et al. 2020, as in NVlabs'
stylegan2-ada-pytorch `training/networks.py`, written anew here without its custom CUDA ops).

* Equalised learning rate: weights are stored N(0, 1) (/ lr multiplier) and scaled at run time by
  lr_mul / sqrt(fan_in), so Adam's per-parameter steps mean the same in every layer.
* Resampling with the [1, 3, 3, 1] low-pass filter: `upsample2d` (zero insertion + filter, gain 4)
  and `blur_down` (filter + stride 2) as depthwise (transposed) convolutions, the same sums as
  the official upfirdn2d with the same padding.
* `modulated_conv2d`: styles scale the input channels, weight demodulation rescales each output
  channel to unit expected variance; either fused (one grouped convolution with per-sample
  weights) or by scaling activations before and after one shared convolution (same result).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
_FIR = (1.0, 3.0, 3.0, 1.0)


def lrelu(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Leaky ReLU (0.2) scaled by sqrt(2) * gain: keeps unit variance through the layer."""
    return F.leaky_relu(x, 0.2) * (SQRT2 * gain)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * x.square().mean(dim=1, keepdim=True).add(eps).rsqrt()


def fir_filter() -> torch.Tensor:
    """The 2-D low-pass filter (outer product of [1, 3, 3, 1]), summing to 1."""
    f = torch.tensor(_FIR)
    f = torch.outer(f, f)
    return f / f.sum()


def _depthwise(f: torch.Tensor, x: torch.Tensor, gain: float) -> torch.Tensor:
    c = x.shape[1]
    return (f * gain).to(dtype=x.dtype, device=x.device).view(1, 1, 4, 4).expand(c, 1, 4, 4)


def upsample2d(x: torch.Tensor, f: torch.Tensor, border: int = 0) -> torch.Tensor:
    """2x upsampling: zeros inserted between pixels, then the filter (gain 4): upfirdn2d(up=2, pad 2/1).
    `border` 1 keeps one more filtered pixel on every side (2H + 2): what a following valid 3x3
    convolution needs to equal the official transposed convolution + filter at the edges too."""
    return F.conv_transpose2d(x, _depthwise(f, x, 4.0), stride=2, padding=1 - border, groups=x.shape[1])


def blur(x: torch.Tensor, f: torch.Tensor, pad: int) -> torch.Tensor:
    """The filter with `pad` zeros on every side (before a strided convolution)."""
    return F.conv2d(x, _depthwise(f, x, 1.0), padding=pad, groups=x.shape[1])


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Filter then keep every other pixel: upfirdn2d(down=2, pad 1/1)."""
    return F.conv2d(x, _depthwise(f, x, 1.0), stride=2, padding=1, groups=x.shape[1])


class FullyConnected(nn.Module):
    """Equalised-lr linear layer: y = act(x W^T * lr_mul/sqrt(in) + b * lr_mul)."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "linear",
                 lr_mul: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return lrelu(x) if self.activation == "lrelu" else x


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution (D's), optionally downsampling by 2 (filter, then stride 2),
    with lrelu (gain sqrt(2) * `gain`) or linear output."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 activation: str = "lrelu", down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.activation, self.down, self.k = activation, down, kernel_size
        self.register_buffer("resample_filter", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        if self.down and self.k == 1:
            x = F.conv2d(downsample2d(x, self.resample_filter), w)
        elif self.down:  # filter (pad 2: upfirdn2d's padding for a 3x3 conv with down=2), conv stride 2
            x = F.conv2d(blur(x, self.resample_filter, self.k // 2 + 1), w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.k // 2)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).view(1, -1, 1, 1)
        return lrelu(x, gain) if self.activation == "lrelu" else x * gain


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     up: bool = False, resample_filter: Optional[torch.Tensor] = None,
                     fused: bool = True) -> torch.Tensor:
    """x [N, I, H, W], weight [O, I, k, k] (already gain-scaled), styles [N, I] -> [N, O, H', W'].

    Modulation w'_nois = s_ni * w_ois; demodulation divides each output channel by
    sqrt(sum_ik w'^2 + 1e-8), so for unit-variance i.i.d. inputs the output has unit expected
    variance. `fused`: one grouped convolution over the batch (the formulation of the paper);
    otherwise the input is scaled by the styles and the output by the demodulation coefficients
    around one ordinary convolution, which computes the same thing.
    """
    n, cin = styles.shape
    cout, _, kh, kw = weight.shape
    if up:  # the official up-conv is a transposed convolution: the kernel acts spatially flipped
        weight = weight.flip([2, 3])
    styles = styles.float()
    # sum_ik (s_ni w_oik)^2 = sum_i s_ni^2 sum_k w_oik^2: one [N, I] x [I, O] product, no per-sample weights
    dcoefs = (styles.square() @ weight.float().square().sum(dim=(2, 3)).t()).add(1e-8).rsqrt() \
        if demodulate else None  # [N, O]
    pad = kh // 2
    if fused:
        w = weight.float().unsqueeze(0) * styles.view(n, 1, cin, 1, 1)  # [N, O, I, k, k]
        if dcoefs is not None:
            w = w * dcoefs.view(n, cout, 1, 1, 1)
        xg = x.reshape(1, n * cin, *x.shape[2:])
        if up:
            xg, pad = upsample2d(xg, resample_filter, border=pad), 0
        out = F.conv2d(xg, w.reshape(n * cout, cin, kh, kw).to(x.dtype), padding=pad, groups=n)
        return out.reshape(n, cout, *out.shape[2:])
    x = x * styles.to(x.dtype).view(n, cin, 1, 1)
    if up:
        x, pad = upsample2d(x, resample_filter, border=pad), 0
    x = F.conv2d(x, weight.to(x.dtype), padding=pad)
    if dcoefs is not None:
        x = x * dcoefs.to(x.dtype).view(n, cout, 1, 1)
    return x


class MinibatchStd(nn.Module):
    """Appends the standard deviation over groups of `group_size` samples (averaged over
    channel groups and pixels) as `num_channels` extra feature maps. A batch the group size does
    not divide uses the largest group size that does."""

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        f = self.num_channels
        y = x.float().reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # [n/g, F, c/F, H, W]
        y = y.mean(dim=(2, 3, 4)).reshape(-1, f, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)
