"""The extractor table and base class; the extractors register themselves in their own modules.

An extractor is an eval-mode nn.Module called on uint8 images (N, C, H, W) — the same
bytes a PNG of the sample would hold — returning
`dict(features=(N, D) float32, logits=(N, K) float32)`. It converts channels and size
itself and runs under no_grad. Attributes: `name`, `feature_dim`, `num_classes`,
`weights_hash` (sha256 hex of the weights file, "random" for random weights),
`weights_path`, `resize` (a string naming the input transform, logged with every metric).
"""
from __future__ import annotations

import hashlib
from typing import Dict, Optional, Union

import torch
from torch import nn

from raygan.registry import Registry

EXTRACTORS = Registry("extractor")


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class Extractor(nn.Module):
    """Base class: subclasses set the attributes and implement `preprocess` and `embed`."""

    name: str = ""
    feature_dim: int = 0
    num_classes: int = 0
    resize: str = ""
    weights_hash: str = "random"
    weights_path: Optional[str] = None

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:  # uint8 -> float network input
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:  # network input -> features, logits
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(
                f"{self.name} extractor takes uint8 images (N, C, H, W); got {got}. "
                "Round generator output first: ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)"
            )
        if images.shape[1] not in (1, 3):
            raise ValueError(f"{self.name} extractor takes 1 or 3 channels, got {images.shape[1]}")
        with torch.no_grad():
            out = self.embed(self.preprocess(images.to(self.device)))
        return {k: v.float() for k, v in out.items()}

    def train(self, mode: bool = True) -> "Extractor":  # an extractor stays in eval mode
        return super().train(False)

    def describe(self) -> Dict[str, Union[str, int]]:
        return {
            "extractor": self.name,
            "weights_hash": self.weights_hash,
            "resize": self.resize,
            "feature_dim": self.feature_dim,
        }


def build_extractor(name: str, weights: Optional[str] = None, device: Union[str, torch.device] = "cpu") -> Extractor:
    """Build a registered extractor: weights None -> its default lookup, "random" -> random weights."""
    ext = EXTRACTORS.build(name, weights=weights)
    ext = ext.to(device).eval()
    for p in ext.parameters():
        p.requires_grad_(False)
    return ext

