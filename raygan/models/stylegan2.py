"""StyleGAN2 (`model.arch: stylegan2`, Karras et al. 2020) as in NVlabs' stylegan2-ada-pytorch
`training/networks.py`: a mapping network z (+ label embedding) -> w with its lr multiplier and a
tracked w average; a skip-architecture synthesis network from a learned constant, with
modulated/demodulated 3x3 convolutions, per-layer noise (a fixed buffer for "const", fresh draws
for "random") and one toRGB per resolution; a residual discriminator with minibatch standard
deviation and, when conditional, the official label-mapping projection. Equalised learning
rate everywhere (raygan.models.stylegan2_layers). Parameter counts equal the official networks
for the same configuration (tests/test_stylegan2.py, bench/stylegan2_params.py).

Options (model.g): w_dim, mapping_layers, mapping_lr, fmaps (channel_base = fmaps * 32768),
channel_max, w_avg_beta, mixing_prob (style mixing in training forwards only) and the path-length
regulariser this architecture brings as G's lazy phase: pl_weight, pl_every, pl_decay,
pl_batch_shrink (raygan.regularizers.PathLength reads them). model.d: fmaps, channel_max,
mbstd_group, mbstd_channels, mapping_layers, cmap_dim.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import ConfigError
from raygan.models.architectures import ARCHITECTURES
from raygan.models.layers import CHANNELS, ClassHead, _options, require_labels
from raygan.models.stylegan2_layers import (Conv2dLayer, FullyConnected, MinibatchStd, fir_filter, lrelu,
                                            modulated_conv2d, normalize_2nd_moment, upsample2d)

RESOLUTIONS = (32, 64, 128, 256)


def channels_at(fmaps: float, channel_max: int, res: int) -> int:
    return max(1, min(int(fmaps * 32768) // res, channel_max))


def _check(name: str, value: Any, kind: type, low: float, high: Optional[float] = None) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else kind)
    if not ok or value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"architecture 'stylegan2': {name} must be {'a number' if kind is float else 'an int'} "
                          f"{rng}, got {value!r}")


class LabelEmbed(nn.Module):
    """The official `embed` FullyConnectedLayer(c_dim, features) applied to one-hot labels:
    an equalised-lr [features, classes] weight and a bias, looked up by class index."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.fc = FullyConnected(num_classes, features)
        self.num_classes = num_classes

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.fc(F.one_hot(y.long(), self.num_classes).float())


class MappingNetwork(nn.Module):
    """z (normalised) [+ normalised label embedding] -> `layers` lrelu FCs at lr * `lr_mul` -> w.
    In training mode every call moves `w_avg` toward the batch mean of w (decay `w_avg_beta`)."""

    def __init__(self, z_dim: int, num_classes: int, w_dim: int, num_ws: Optional[int], *, layers: int = 8,
                 lr_mul: float = 0.01, w_avg_beta: Optional[float] = 0.995):
        super().__init__()
        self.z_dim, self.num_classes, self.w_dim, self.num_ws = z_dim, num_classes, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        embed = w_dim if num_classes else 0
        self.embed = LabelEmbed(num_classes, embed) if num_classes else None
        dims = [z_dim + embed] + [w_dim] * layers
        self.fcs = nn.ModuleList(FullyConnected(a, b, activation="lrelu", lr_mul=lr_mul)
                                 for a, b in zip(dims, dims[1:]))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Optional[torch.Tensor], labels: Optional[torch.Tensor] = None, psi: float = 1.0,
                truncation_cutoff: Optional[int] = None, update_w_avg: bool = True) -> torch.Tensor:
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(z.float()))
        if self.embed is not None:
            require_labels(labels, self.num_classes, "stylegan2 mapping network")
            parts.append(normalize_2nd_moment(self.embed(labels)))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for fc in self.fcs:
            x = fc(x)
        if self.w_avg_beta is not None and self.num_ws is not None and self.training and update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if psi != 1:
            cut = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
            head = self.w_avg.to(x.dtype).lerp(x[:, :cut], float(psi))
            x = torch.cat([head, x[:, cut:]], dim=1)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling by 2), noise, bias, lrelu."""

    def __init__(self, cin: int, cout: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.affine = FullyConnected(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(cout))  # registered in the official order (weights copy 1:1)
        self.register_buffer("resample_filter", fir_filter(), persistent=False)
        self.up, self.resolution = up, resolution
        self.weight_gain = 1.0 / math.sqrt(cin * 9)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused: bool = False):
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight * self.weight_gain, styles, up=self.up,
                             resample_filter=self.resample_filter, fused=fused)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                                dtype=x.dtype) * self.noise_strength.to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        return lrelu(x + self.bias.to(x.dtype).view(1, -1, 1, 1))


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation, plus bias: the block's contribution to the image."""

    def __init__(self, cin: int, channels: int, w_dim: int):
        super().__init__()
        self.affine = FullyConnected(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_gain = 1.0 / math.sqrt(cin)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = False) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return x + self.bias.to(x.dtype).view(1, -1, 1, 1)


class SynthesisBlock(nn.Module):
    """One resolution: (const | up-conv) -> conv -> toRGB added to the upsampled image (skip G)."""

    def __init__(self, cin: int, cout: int, w_dim: int, resolution: int, channels: int):
        super().__init__()
        self.cin = cin
        if cin == 0:
            self.const = nn.Parameter(torch.randn(cout, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(cin, cout, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(cout, cout, w_dim, resolution)
        self.torgb = ToRGB(cout, channels, w_dim)
        self.num_conv = 1 if cin == 0 else 2
        self.register_buffer("resample_filter", fir_filter(), persistent=False)

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str, fused: bool):
        i = 0
        if self.cin == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, fused)
            i = 1
        x = self.conv1(x, ws[:, i], noise_mode, fused)
        y = self.torgb(x, ws[:, i + 1], fused).float()
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, resolution: int, channels: int, fmaps: float = 0.5, channel_max: int = 512):
        super().__init__()
        self.w_dim, self.resolution = w_dim, resolution
        self.resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
        ch = {r: channels_at(fmaps, channel_max, r) for r in self.resolutions}
        self.blocks = nn.ModuleList(SynthesisBlock(ch[r // 2] if r > 4 else 0, ch[r], w_dim, r, channels)
                                    for r in self.resolutions)
        # each block reads num_conv ws and its toRGB the next one (shared with the next block's first conv)
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", fused: Optional[bool] = None) -> torch.Tensor:
        if noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise_mode must be const, random or none, got {noise_mode!r}")
        if fused is None:  # the official choice: per-sample weights at inference, shared conv in training
            fused = not self.training
        x = img = None
        i = 0
        for block in self.blocks:
            x, img = block(x, img, ws.narrow(1, i, block.num_conv + 1), noise_mode, fused)
            i += block.num_conv
        return img


class Generator(nn.Module):
    """G(z, labels) -> images in [-1, 1] (the raw synthesis output, as the official G; not clamped).

    `mapping(z, labels, psi, truncation_cutoff)` -> ws [N, num_ws, w_dim];
    `synthesis(ws, noise_mode)` -> images. In training mode G's forward draws random noise and,
    with probability `mixing_prob`, mixes the styles of a second latent from a random layer on
    (style-mixing regularisation); in eval mode neither. `forward(..., return_ws=True)` also
    returns the ws it synthesised from (the path-length regulariser's input).
    """

    style_based = True

    def __init__(self, *, resolution: int, channels: int, z_dim: int, num_classes: int = 0, w_dim: int = 512,
                 mapping_layers: int = 8, mapping_lr: float = 0.01, fmaps: float = 0.5, channel_max: int = 512,
                 w_avg_beta: float = 0.995, mixing_prob: float = 0.9, pl_weight: float = 2.0, pl_every: int = 4,
                 pl_decay: float = 0.01, pl_batch_shrink: int = 2):
        super().__init__()
        _check("w_dim", w_dim, int, 1)
        _check("mapping_layers", mapping_layers, int, 1, 64)
        _check("mapping_lr", mapping_lr, float, 1e-6, 1.0)
        _check("fmaps", fmaps, float, 1e-4, 64.0)
        _check("channel_max", channel_max, int, 1)
        _check("w_avg_beta", w_avg_beta, float, 0.0, 1.0)
        _check("mixing_prob", mixing_prob, float, 0.0, 1.0)
        _check("pl_weight", pl_weight, float, 0.0)
        _check("pl_every", pl_every, int, 1, 10_000)
        _check("pl_decay", pl_decay, float, 0.0, 1.0)
        _check("pl_batch_shrink", pl_batch_shrink, int, 1, 1024)
        self.z_dim, self.w_dim, self.num_classes = z_dim, w_dim, num_classes
        self.resolution, self.channels = resolution, channels
        self.mixing_prob = float(mixing_prob)
        #: G's lazy regulariser phase (raygan.regularizers.PathLength reads it)
        self.path_length = {"weight": float(pl_weight), "every": int(pl_every), "decay": float(pl_decay),
                            "batch_shrink": int(pl_batch_shrink)}
        self.synthesis = SynthesisNetwork(w_dim, resolution, channels, fmaps, channel_max)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, num_classes, w_dim, self.num_ws, layers=mapping_layers,
                                      lr_mul=mapping_lr, w_avg_beta=w_avg_beta)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def _mix(self, z: torch.Tensor, y: Optional[torch.Tensor], ws: torch.Tensor) -> torch.Tensor:
        """Official style mixing: one cutoff in [1, num_ws) per batch; the second latent's ws from it on."""
        cutoff = torch.randint(1, self.num_ws, (), device=ws.device)
        cutoff = torch.where(torch.rand((), device=ws.device) < self.mixing_prob, cutoff,
                             torch.full_like(cutoff, self.num_ws))
        other = self.mapping(torch.randn_like(z), y, update_w_avg=False)
        keep = (torch.arange(self.num_ws, device=ws.device) < cutoff).view(1, -1, 1)
        return torch.where(keep, ws, other)

    def forward(self, z: torch.Tensor, labels: Optional[torch.Tensor] = None, return_ws: bool = False,
                psi: float = 1.0, truncation_cutoff: Optional[int] = None, noise_mode: Optional[str] = None):
        require_labels(labels, self.num_classes, "stylegan2 generator")
        ws = self.mapping(z, labels, psi=psi, truncation_cutoff=truncation_cutoff)
        if self.training and self.mixing_prob > 0 and self.num_ws > 1:
            ws = self._mix(z, labels, ws)
        img = self.synthesis(ws, noise_mode=noise_mode or ("random" if self.training else "const"))
        return (img, ws) if return_ws else img


class DiscriminatorBlock(nn.Module):
    """Residual D block: [fromRGB], conv3x3, conv3x3 down, plus a 1x1 down skip; sum * sqrt(1/2)."""

    def __init__(self, cin: int, tmp: int, cout: int, channels: int):
        super().__init__()
        self.fromrgb = Conv2dLayer(channels, tmp, 1) if cin == 0 else None
        self.conv0 = Conv2dLayer(tmp, tmp, 3)
        self.conv1 = Conv2dLayer(tmp, cout, 3, down=True)
        self.skip = Conv2dLayer(tmp, cout, 1, bias=False, activation="linear", down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x, gain=math.sqrt(0.5))
        return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class Discriminator(nn.Module):
    """Residual blocks down to 4x4, then minibatch std, conv, fc, out; conditional: out is
    cmap_dim wide and projected on the label's mapped embedding, scaled by 1/sqrt(cmap_dim)."""

    def __init__(self, *, resolution: int, channels: int, num_classes: int = 0, fmaps: float = 0.5,
                 channel_max: int = 512, mbstd_group: int = 4, mbstd_channels: int = 1, mapping_layers: int = 8,
                 cmap_dim: Optional[int] = None, class_head: bool = False):
        super().__init__()
        _check("fmaps", fmaps, float, 1e-4, 64.0)
        _check("channel_max", channel_max, int, 1)
        _check("mbstd_group", mbstd_group, int, 1, 1024)
        _check("mbstd_channels", mbstd_channels, int, 0, 64)
        _check("mapping_layers", mapping_layers, int, 1, 64)
        self.num_classes, self.resolution, self.channels = num_classes, resolution, channels
        res = [2 ** i for i in range(int(math.log2(resolution)), 2, -1)]
        ch = {r: channels_at(fmaps, channel_max, r) for r in res + [4]}
        if cmap_dim is not None:
            _check("cmap_dim", cmap_dim, int, 1)
        self.cmap_dim = 0 if not num_classes else (ch[4] if cmap_dim is None else int(cmap_dim))
        self.blocks = nn.ModuleList(DiscriminatorBlock(ch[r] if r < resolution else 0, ch[r], ch[r // 2], channels)
                                    for r in res)
        self.mapping = (MappingNetwork(0, num_classes, self.cmap_dim, None, layers=mapping_layers, w_avg_beta=None)
                        if num_classes else None)
        c4 = ch[4]
        if mbstd_channels and c4 % mbstd_channels:
            raise ConfigError(f"architecture 'stylegan2': mbstd_channels {mbstd_channels} must divide D's 4x4 "
                              f"width {c4}")
        self.mbstd = MinibatchStd(mbstd_group, mbstd_channels) if mbstd_channels else None
        self.conv = Conv2dLayer(c4 + mbstd_channels, c4, 3)
        self.fc = FullyConnected(c4 * 16, c4, activation="lrelu")
        self.out = FullyConnected(c4, self.cmap_dim or 1)
        self.classifier = ClassHead(num_classes, c4, "stylegan2") if class_head else None

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, classes: bool = False):
        require_labels(y, self.num_classes, "stylegan2 discriminator")
        for block in self.blocks:
            x = block(x)
        if self.mbstd is not None:
            x = self.mbstd(x)
        h = self.fc(self.conv(x).flatten(1))
        out = self.out(h)
        if self.mapping is not None:
            cmap = self.mapping(None, y)
            out = (out * cmap.to(out.dtype)).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        out = out.squeeze(1).float()
        if not classes:
            return out
        if self.classifier is None:
            raise ValueError("this discriminator has no class head (build it with class_head=True)")
        return out, self.classifier(h).float()


@ARCHITECTURES.register("stylegan2")
def make(*, resolution: int, channels: int, z_dim: int, num_classes: int = 0, spectral_norm: bool = False,
         class_head: bool = False, g: Optional[Dict[str, Any]] = None,
         d: Optional[Dict[str, Any]] = None) -> Tuple[nn.Module, nn.Module]:
    """The StyleGAN2 generator and discriminator; g/d are extra constructor kwargs."""
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"architecture 'stylegan2': resolution {resolution} not supported; "
                          f"choose one of: {', '.join(map(str, RESOLUTIONS))}")
    if channels not in CHANNELS:
        raise ConfigError(f"architecture 'stylegan2': {channels} channels not supported; choose 1 or 3")
    if spectral_norm:
        raise ConfigError("architecture 'stylegan2': spectral norm is not used with its equalised learning rate "
                          "(set model.spectral_norm: false)")
    if z_dim < 1 or num_classes < 0:
        raise ConfigError(f"architecture 'stylegan2': z_dim must be >= 1 and num_classes >= 0 "
                          f"(got {z_dim}, {num_classes})")
    common = dict(resolution=resolution, channels=channels, num_classes=num_classes)
    G = Generator(z_dim=z_dim, **common, **_options("stylegan2", "generator", Generator, g, set(common) | {"z_dim"}))
    D = Discriminator(**common, class_head=class_head,
                      **_options("stylegan2", "discriminator", Discriminator, d, set(common) | {"class_head"}))
    return G, D


make.search_space = "stylegan2"  # raygan tune's default space for this architecture (its own knobs)

__all__: List[str] = ["Discriminator", "Generator", "MappingNetwork", "RESOLUTIONS", "SynthesisNetwork", "make"]
