"""Starting networks from another run's weights (transfer learning) and FreezeD.

`transfer_state(target, source_sd, what)` loads a trained network into a freshly built one:

* every tensor whose name and shape match is copied;
* an unconditional source into a class-conditional target (model.conditional: true, the few-labels
  recipe): each per-class BatchNorm (ConditionalBatchNorm) gets the source's single gamma/beta for
  every class; the label input (LabelInput, concatenated after z) keeps its fresh embedding, and
  the layer reading [z, label] gets the source's z weights with zero label weights; the projection
  discriminator's class embedding starts at zero (kept fresh under spectral norm, which cannot
  normalise a zero matrix); AC-GAN's class head starts fresh. So the conditional G first draws
  exactly what the source drew, for every class, and D first scores exactly as the source did;
* style-based (stylegan2): G's mapping keeps its fresh label embedding and its first layer gets the
  source's z weights with zero label weights, rescaled for the wider input's equalised-lr gain, so
  G first draws the source's image for every class; D's label mapping and its cmap-wide output
  start fresh (a projection on a fresh mapped embedding has no exact equivalent of a scalar
  output), its backbone is the source's;
* anything else that differs is refused in one line naming the tensors (missing, extra, shape).

FreezeD (Mo et al. 2020): `freeze_blocks(D, k)` stops the first k of D's blocks (input side)
from training. An architecture names its blocks as `D.blocks`, ordered input -> output.
"""
from __future__ import annotations

import math
from typing import Dict, List

import torch
from torch import nn
from torch.nn.utils import parametrize

from raygan.errors import ConfigError
from raygan.models.layers import ClassHead, ConditionalBatchNorm, LabelInput, Projection
from raygan.models.stylegan2 import Discriminator as StyleDiscriminator
from raygan.models.stylegan2 import MappingNetwork


def _names(keys: List[str], show: int = 2) -> str:
    return ", ".join(keys[:show]) + (f" (+{len(keys) - show} more)" if len(keys) > show else "")


def transfer_state(target: nn.Module, source: Dict[str, torch.Tensor], what: str) -> int:
    """Load `source` (a state dict of the same architecture, possibly unconditional) into
    `target`; returns how many tensors were not copied 1:1 (class parts started fresh or
    grown). Raises ConfigError naming what does not fit."""
    own = target.state_dict()
    new: Dict[str, torch.Tensor] = {}
    used = set()
    for k, v in own.items():
        s = source.get(k)
        if isinstance(s, torch.Tensor) and tuple(s.shape) == tuple(v.shape):
            new[k], _ = s, used.add(k)
    grown = False
    gains: Dict[str, float] = {}  # equalised-lr layers whose input grew: the copied weights keep their effect
    for name, m in target.named_modules():
        pre = f"{name}." if name else ""
        if isinstance(m, ConditionalBatchNorm) and m.num_classes and f"{pre}gamma.weight" not in source:
            w, b = source.get(f"{pre}bn.weight"), source.get(f"{pre}bn.bias")
            if isinstance(w, torch.Tensor) and isinstance(b, torch.Tensor) and w.shape == b.shape == \
                    own[f"{pre}gamma.weight"].shape[1:]:
                new[f"{pre}gamma.weight"] = w.expand(m.num_classes, -1).clone()
                new[f"{pre}beta.weight"] = b.expand(m.num_classes, -1).clone()
                used.update((f"{pre}bn.weight", f"{pre}bn.bias"))
        elif isinstance(m, LabelInput) and m.num_classes and f"{pre}embed.weight" not in source:
            new[f"{pre}embed.weight"] = own[f"{pre}embed.weight"]
            grown = True
        elif isinstance(m, (Projection, ClassHead)) and not any(k.startswith(pre) for k in source):
            for k in own:
                if k.startswith(pre):
                    new[k] = own[k]
            if isinstance(m, Projection) and not parametrize.is_parametrized(m.embed):
                new[f"{pre}embed.weight"] = torch.zeros_like(own[f"{pre}embed.weight"])
        elif isinstance(m, MappingNetwork) and m.embed is not None and not any(
                k.startswith(f"{pre}embed.") for k in source):
            if m.z_dim:  # G's: z and the label embedding feed the first layer
                for k in own:
                    if k.startswith(f"{pre}embed."):
                        new[k] = own[k]
                grown = True
                gains[f"{pre}fcs.0.weight"] = math.sqrt((m.z_dim + m.w_dim) / m.z_dim)
            else:  # D's: the label alone -> cmap; nothing of the source's to start from
                for k in own:
                    if k.startswith(pre):
                        new[k] = own[k]
        elif isinstance(m, StyleDiscriminator) and m.mapping is not None and not any(
                k.startswith(f"{pre}mapping.") for k in source):
            new[f"{pre}out.weight"], new[f"{pre}out.bias"] = own[f"{pre}out.weight"], own[f"{pre}out.bias"]
            used.update((f"{pre}out.weight", f"{pre}out.bias"))
    shapes = []
    for k, v in own.items():
        s = source.get(k)
        if k in new or not isinstance(s, torch.Tensor):
            continue
        differ = [i for i, (a, b) in enumerate(zip(s.shape, v.shape)) if a != b] if s.dim() == v.dim() else None
        if grown and differ is not None and len(differ) == 1 and s.shape[differ[0]] < v.shape[differ[0]]:
            # the layer reading [z, label]: z's weights from the source, the label's start at zero
            t = torch.zeros_like(v)
            t.narrow(differ[0], 0, s.shape[differ[0]]).copy_(s * gains.get(k, 1.0))
            new[k], _ = t, used.add(k)
        else:
            shapes.append(f"{k} {tuple(s.shape)} there, {tuple(v.shape)} here")
    missing = [k for k in own if k not in new and k not in source]
    extra = [k for k in source if k not in used and k not in own]
    parts = [f"{label} {_names(keys)}" for label, keys in
             (("shape", shapes), ("not in the source:", missing), ("only in the source:", extra)) if keys]
    if parts:
        raise ConfigError(f"{what} does not fit: {'; '.join(parts)}")
    target.load_state_dict(new)
    return sum(1 for k in own if k not in source or tuple(source[k].shape) != tuple(own[k].shape))


def discriminator_blocks(D: nn.Module) -> List[nn.Module]:
    """D's blocks, input side first (`D.blocks`, which every architecture that supports FreezeD defines)."""
    blocks = getattr(D, "blocks", None)
    if blocks is None:
        raise ConfigError(f"config: model.freeze_d: architecture '{getattr(D, 'registry_name', type(D).__name__)}' "
                          f"does not name its discriminator blocks (D.blocks)")
    return list(blocks)


def freeze_blocks(D: nn.Module, k: int) -> None:
    """FreezeD: the first `k` blocks of D keep their weights (requires_grad off)."""
    if not k:
        return
    blocks = discriminator_blocks(D)
    if k > len(blocks):
        raise ConfigError(f"config: model.freeze_d {k}: the '{getattr(D, 'registry_name', type(D).__name__)}' "
                          f"discriminator has {len(blocks)} blocks")
    for b in blocks[:k]:
        b.requires_grad_(False)
