"""An in-memory image dataset (one uint8 NCHW tensor + labels) and how it is fitted to a model.

Small datasets live as one uint8 tensor, on the GPU when training there, and are indexed by
the sampler rather than streamed through a DataLoader.

Fitting rules (deterministic, documented because metrics depend on them):

* resolution: a square image smaller than the target by at most 4 px is zero-padded
  symmetrically (28 -> 32 puts the original at [2:30, 2:30]; an odd difference puts the
  extra pixel at the bottom/right). This is what the `fmnist-cnn` extractor undoes by
  cropping 32 -> 28. Any other size change resizes in float32 with
  `torch.nn.functional.interpolate(mode="bilinear", antialias=True, align_corners=False)`
  and rounds back to uint8 (round half to even, clamped to 0..255).
* channels: 1 -> 3 repeats the plane; 3 -> 1 is the luminance 0.299 R + 0.587 G + 0.114 B,
  computed in float32 and rounded. Going to fewer channels happens before resizing, going to
  more after it, so the expensive step always runs on the smaller tensor.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List, Optional, Union

import torch
import torch.nn.functional as F

from raygan.errors import ConfigError, DataError

PAD_MAX = 4  # a size difference up to this many pixels is padded, not resized
LUMA = (0.299, 0.587, 0.114)
_CHUNK = 4096  # images per float conversion, to bound temporary memory


@dataclass(eq=False)
class ImageDataset:
    """Images as one uint8 tensor (N, C, H, W) with int64 labels (N,).

    `source` says where the pixels came from (a directory, a file, a library function).
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    class_names: List[str]
    name: str
    split: str
    source: str
    content_hash: Optional[str] = None  # a prepared dataset's (raygan.data.prepared): checked at resume

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be a uint8 (N, C, H, W) tensor, got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 of shape ({self.images.shape[0]},), got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{self.num_classes} classes but {len(self.class_names)} class names"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def resolution(self) -> int:
        """Side length of the (square) images; the height if they are not square."""
        return int(self.images.shape[2])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: Union[str, torch.device], non_blocking: bool = False) -> "ImageDataset":
        """A copy whose images and labels live on `device` (no copy if already there)."""
        return dataclasses.replace(
            self,
            images=self.images.to(device, non_blocking=non_blocking),
            labels=self.labels.to(device, non_blocking=non_blocking),
        )

    def head(self, n: Optional[int]) -> "ImageDataset":
        """The first `n` images (all of them when n is None or larger than the dataset)."""
        if n is None or n >= len(self):
            return self
        return dataclasses.replace(
            self, images=self.images[:n], labels=self.labels[:n]
        )

    def take(self, indices: torch.Tensor, what: str) -> "ImageDataset":
        """The dataset restricted to `indices` (in that order); `what` names the selection in `source`."""
        indices = indices.to(self.images.device)
        return dataclasses.replace(self, images=self.images[indices], labels=self.labels[indices],
                                   source=f"{self.source} [{what}: {len(indices)} of {len(self)}]")

    def fitted(
        self, resolution: Optional[int] = None, channels: Optional[int] = None
    ) -> "ImageDataset":
        """A copy with images fitted to `resolution` and `channels` (None keeps them)."""
        images = fit(self.images, resolution=resolution, channels=channels)
        if images is self.images:
            return self
        return dataclasses.replace(self, images=images)


def _check_positive(what: str, value: Optional[int]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")


def fit_resolution(images: torch.Tensor, resolution: Optional[int]) -> torch.Tensor:
    """Pad (<= 4 px smaller, square) or resize uint8 NCHW images to resolution x resolution."""
    _check_positive("resolution", resolution)
    if resolution is None:
        return images
    h, w = int(images.shape[2]), int(images.shape[3])
    if h == w == resolution:
        return images
    if h == w and 0 < resolution - h <= PAD_MAX:
        d = resolution - h
        a, b = d // 2, d - d // 2
        return F.pad(images, (a, b, a, b), value=0)
    out = torch.empty(
        (images.shape[0], images.shape[1], resolution, resolution),
        dtype=torch.uint8,
        device=images.device,
    )
    for i in range(0, images.shape[0], _CHUNK):
        x = images[i : i + _CHUNK].float()
        y = F.interpolate(
            x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
        )
        out[i : i + _CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def fit_channels(images: torch.Tensor, channels: Optional[int]) -> torch.Tensor:
    """Convert uint8 NCHW images to 1 or 3 channels (repeat, or luminance rounded)."""
    if channels is None:
        return images
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels!r}")
    c = int(images.shape[1])
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return images.repeat(1, 3, 1, 1)
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
        out = torch.empty(
            (images.shape[0], 1, images.shape[2], images.shape[3]),
            dtype=torch.uint8,
            device=images.device,
        )
        for i in range(0, images.shape[0], _CHUNK):
            y = (images[i : i + _CHUNK].float() * w).sum(dim=1, keepdim=True)
            out[i : i + _CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8)
        return out
    raise DataError(f"cannot convert images with {c} channels to {channels}")


def fit(
    images: torch.Tensor, resolution: Optional[int] = None, channels: Optional[int] = None
) -> torch.Tensor:
    """Fit channels and resolution; reduce channels first, add them last (cheaper, same rule)."""
    _check_positive("resolution", resolution)
    if channels is not None and channels < images.shape[1]:
        return fit_resolution(fit_channels(images, channels), resolution)
    return fit_channels(fit_resolution(images, resolution), channels)
