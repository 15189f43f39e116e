"""Patch training: images of any size and the random crops a repair or translate step trains on.

    images = load_patches("folder", root="photos", split="train", max_side=1024, channels=3)  # patch_sources
    images.check(crop=128)                                    # DataError naming the smallest image
    batch = images.crops(idx, 128, generator)                 # uint8 (n, C, 128, 128)

`PatchImages` holds either one uint8 (N, C, H, W) tensor (a built-in source, or any source
fitted square) or a list of uint8 (C, H_i, W_i) tensors of different sizes (a folder of photos,
each kept whole, its aspect kept). `crops(idx, size, generator)` is an operation on the images an
index batch selects: each one a size x size window at a uniformly random position, the positions
drawn from `generator` in one call (n x 2 uniforms: the same positions for the same generator state,
so a checkpointed generator resumes the same crops). The same operation (`crop_batch`) applies to
the images a large prepared dataset streams for those indices (raygan.data.patch_stream: only
the images of the batches in flight are in memory). Which images a source gives, and how they are
read, is raygan.data.patch_sources.

`shrink(x, max_side)`: an image whole, scaled down so that its longer side is at most `max_side`
(`data.resolution`; the resize rule of raygan.data.dataset: bilinear with antialias, rounded; never
scaled up); `shrunk_size` says its size without the pixels.

`center_crops(images, size)`: the fixed evaluation crop of each image (the same for every run).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from raygan.errors import DataError

Images = Union[torch.Tensor, List[torch.Tensor]]


@dataclass(eq=False)
class PatchImages:
    """Images to crop from: a uint8 (N, C, H, W) tensor or a list of uint8 (C, H, W) tensors."""

    images: Images
    labels: torch.Tensor
    names: Optional[List[str]] = None  # file names (folder) for messages; None: "image i"
    name: str = ""  # a translate domain's name
    class_names: List[str] = field(default_factory=list)

    content_hash: Optional[str] = None  # a prepared dataset's (checked at resume)

    def __len__(self) -> int:
        return len(self.images) if isinstance(self.images, list) else int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0]) if isinstance(self.images, list) else int(self.images.shape[1])

    def size(self, i: int) -> tuple:
        return tuple(int(v) for v in self.images[i].shape[-2:])

    def to(self, device) -> "PatchImages":
        imgs = [x.to(device) for x in self.images] if isinstance(self.images, list) else self.images.to(device)
        return dataclasses.replace(self, images=imgs, labels=self.labels.to(device))

    def check(self, crop: int, where: str = "") -> "PatchImages":
        """DataError (one line) when an image is smaller than the crop, naming the valid crops."""
        i, side = self.smallest()
        if side < crop:
            h, w = self.size(i)
            name = self.names[i] if self.names else f"the images of {where or 'the dataset'}"
            raise DataError(f"data.crop {crop} is larger than {name} ({w}x{h} px after data.resolution): "
                            f"use data.crop 8..{side}, or leave out the smaller images")
        return self

    def smallest(self) -> Tuple[int, int]:
        """(index, shorter side) of the image with the shortest side (the first such one)."""
        if isinstance(self.images, list):
            sides = [min(x.shape[-2:]) for x in self.images]
            i = int(np.argmin(sides))
            return i, int(sides[i])
        return 0, int(min(self.images.shape[-2:]))

    def crops(self, idx: torch.Tensor, size: int, generator: Optional[torch.Generator]) -> torch.Tensor:
        """uint8 (n, C, size, size): one random window of each image `idx` selects."""
        return crop_batch([self.images[i] for i in index_list(idx)], size, generator)


def index_list(idx) -> List[int]:
    return idx.tolist() if isinstance(idx, torch.Tensor) else [int(i) for i in idx]


def crop_batch(images: Sequence[torch.Tensor], size: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """uint8 (n, C, size, size): one size x size window of each image, at positions from n x 2 uniforms
    drawn from `generator` in one call."""
    u = torch.rand(len(images), 2, generator=generator, dtype=torch.float64)
    out = []
    for k, x in enumerate(images):
        h, w = x.shape[-2:]
        top = min(int(u[k, 0] * (h - size + 1)), h - size)
        left = min(int(u[k, 1] * (w - size + 1)), w - size)
        out.append(x[..., top:top + size, left:left + size])
    return torch.stack(out)


def center_crops(images: torch.Tensor, size: int) -> torch.Tensor:
    """The centre size x size window of each image of a (N, C, H, W) tensor (top-left rounded down)."""
    h, w = images.shape[-2:]
    if size > min(h, w):
        raise DataError(f"data.crop {size} is larger than the test images ({w}x{h} px): use data.crop 8..{min(h, w)}")
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


def shrunk_size(h: int, w: int, max_side: int) -> Tuple[int, int]:
    """(H, W) of an h x w image once `shrink` has scaled it (its longer side at most max_side)."""
    if max(h, w) <= max_side:
        return int(h), int(w)
    f = max_side / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def shrink(x: torch.Tensor, max_side: int) -> torch.Tensor:
    """uint8 (C, H, W) with its longer side scaled down to max_side (aspect kept), else as is."""
    h, w = x.shape[-2:]
    if max(h, w) <= max_side:
        return x
    size = shrunk_size(h, w, max_side)
    y = F.interpolate(x[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8)[0]
