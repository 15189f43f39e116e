"""The repair task's networks, built from the registries by name and the degradation pipeline.

`RepairNet` is the generator as a run delivers it (trained, checkpointed, exported, loaded by
`load_model`): degraded image in [-1, 1] (the low-resolution one for super-resolution) and, for
inpainting, the mask (1 = missing) -> repaired image in [-1, 1] at full resolution. It wraps a
registered image-to-image generator and does the glue the generator does not:

* a super-resolution generator (one that takes `scale`, e.g. srresnet) gets the small image;
  any other generator (unet) gets it bicubic-upsampled to full size first;
* with masks, the mask is the generator's last input channel (upsampled by nearest when the
  masks were drawn on the small image).

`condition(x, mask)` is what the conditional discriminator sees beside the image: the degraded
image at full resolution (bicubic for SR) plus the mask channel when there is one.

The model spec (`{"channels", "scale", "mask"}`) and the config rebuild all of it without data.
"""
from __future__ import annotations

import inspect
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import ConfigError
from raygan.models.limits import build_network
from raygan.models.networks import DISCRIMINATORS, GENERATORS

DEFAULT_D = "patchgan"


def upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling on the [-1, 1] scale (no antialias), clipped; identity at scale 1."""
    if scale == 1:
        return x
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)


def upsample_mask(mask: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    return mask if tuple(mask.shape[-2:]) == tuple(size) else F.interpolate(mask, size=size, mode="nearest")


def takes_scale(arch: str) -> bool:
    """A super-resolution generator: its constructor takes `scale` and it upsamples itself."""
    return "scale" in inspect.signature(GENERATORS.get(arch)).parameters


class RepairNet(nn.Module):
    """degraded (N, C, h, w) [+ mask (N, 1, h, w)] in [-1, 1] -> repaired (N, C, h*scale, w*scale)."""

    task = "repair"

    def __init__(self, net: nn.Module, *, channels: int, scale: int, mask: bool, upsample_input: bool,
                 fill: float = 0.5):
        super().__init__()
        self.net = net
        self.channels, self.scale, self.needs_mask = int(channels), int(scale), bool(mask)
        self.fill = float(fill)  # what training put into holes, on [0, 1] (repair_infer does the same)
        self.upsample_input = bool(upsample_input)
        self.registry_name = getattr(net, "registry_name", type(net).__name__)

    @property
    def in_channels(self) -> int:
        """Channels of the single-tensor input form: the image, plus the mask when needed."""
        return self.channels + int(self.needs_mask)

    def split(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(image, mask) from `x` and `mask`, or from one tensor whose last channel is the mask."""
        if x.dim() != 4:
            raise ValueError(f"repair network expects (N, C, H, W) images, got shape {tuple(x.shape)}")
        if self.needs_mask and mask is None:
            if x.shape[1] != self.channels + 1:
                raise ValueError(f"repair network needs a mask: pass mask=, or {self.channels} image channels "
                                 f"+ 1 mask channel; got {x.shape[1]} channels")
            x, mask = x[:, : self.channels], x[:, self.channels:]
        if x.shape[1] != self.channels:
            raise ValueError(f"repair network takes {self.channels}-channel images, got {x.shape[1]}")
        if not self.needs_mask:
            mask = None
        elif mask.shape[0] != x.shape[0] or mask.shape[1] != 1 or mask.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"mask {tuple(mask.shape)} does not fit images {tuple(x.shape)}")
        return x, mask

    def condition(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """What the conditional D sees beside an image: the degraded image at full size (+ mask)."""
        x, mask = self.split(x, mask)
        up = upsample(x, self.scale)
        if mask is None:
            return up
        return torch.cat([up, upsample_mask(mask, tuple(up.shape[-2:])).to(up.dtype)], 1)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x, mask = self.split(x, mask)
        if self.upsample_input:
            x = upsample(x, self.scale)
        if mask is not None:
            x = torch.cat([x, upsample_mask(mask, tuple(x.shape[-2:])).to(x.dtype)], 1)
        return self.net(x)


class ConditionedD:
    """`D(image, condition)` for the registered regularisers (which call `D(x, y)` and take
    gradients w.r.t. x only): the condition goes first on the channel axis, as pix2pix."""

    def __init__(self, D: nn.Module):
        self.D = D

    def __call__(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.D(torch.cat([cond.to(x.dtype), x], 1))


# ------------------------------------------------------------------------------ building


def fill_value(cfg) -> float:
    """The value training put into holes (the first mask op's `fill`; 0.5 without mask ops)."""
    from raygan.degradations import build_degradations

    for op in build_degradations(cfg.repair.degradations).ops:
        if op.makes_mask:
            return float(op.fill)
    return 0.5


def spec_from_pipeline(pipeline, channels: int) -> Dict[str, Any]:
    return {"channels": int(channels), "scale": int(pipeline.scale), "mask": bool(pipeline.has_mask)}


def check_networks(cfg, spec: Dict[str, Any]) -> None:
    """Names and option names of G and D (values are checked when they are built)."""
    m = cfg.model
    g_cls = GENERATORS.get(m.arch)
    d_cls = DISCRIMINATORS.get(m.d_arch or DEFAULT_D)
    sr = takes_scale(m.arch)
    if sr and spec["scale"] == 1:
        raise ConfigError(f"config: model.arch: '{m.arch}' is a super-resolution generator, but "
                          f"repair.degradations has no downsample op")
    if "scale" in m.g:
        raise ConfigError("config: model.g.scale: the scale comes from the downsample degradation; remove it")
    if m.arch == "inpaint-unet" and not spec["mask"]:
        raise ConfigError("config: model.arch: 'inpaint-unet' needs a mask degradation (box or strokes) in "
                          "repair.degradations")
    for who, cls, kwargs, fixed in (("model.g", g_cls, m.g, ("in_channels", "out_channels", "resolution")),
                                    ("model.d", d_cls, m.d, ("in_channels", "resolution", "spectral_norm"))):
        allowed = [p for p in inspect.signature(cls).parameters if p not in fixed and p != "scale"]
        bad = sorted(set(kwargs) - set(allowed))
        if bad:
            raise ConfigError(f"config: {who}: unknown option(s) {', '.join(bad)} for '{cls.registry_name}'; "
                              f"valid: {', '.join(allowed)}")
        taken = sorted(set(kwargs) & set(fixed))
        if taken:
            raise ConfigError(f"config: {who}: {', '.join(taken)} is set by the task; remove it")


def build_generator(cfg, spec: Dict[str, Any]) -> RepairNet:
    m = cfg.model
    channels, scale, mask = int(spec["channels"]), int(spec["scale"]), bool(spec["mask"])
    sr = takes_scale(m.arch)
    kwargs = dict(m.g)
    if sr:
        kwargs["scale"] = scale
    net = build_network(GENERATORS, m.arch, "model.g", "generator", in_channels=channels + int(mask),
                        out_channels=channels, resolution=cfg.data.train_size, **kwargs)
    return RepairNet(net, channels=channels, scale=scale, mask=mask, upsample_input=scale > 1 and not sr,
                     fill=fill_value(cfg))


def build_discriminator(cfg, spec: Dict[str, Any]) -> nn.Module:
    m = cfg.model
    channels = int(spec["channels"])
    cond = channels + int(bool(spec["mask"]))
    name = m.d_arch or DEFAULT_D
    D = build_network(DISCRIMINATORS, name, "model.d", "discriminator", in_channels=cond + channels,
                      resolution=cfg.data.train_size, spectral_norm=m.spectral_norm, **dict(m.d))
    D.registry_name = name
    return D
