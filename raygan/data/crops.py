"""Patch training: images of any size and the random crops a repair or translate step trains on.

    from raygan.data.crops import load_patches
    images = load_patches("folder", root="photos", split="train", max_side=1024, channels=3)
    images.check(crop=128)                                    # DataError naming the smallest image
    batch = images.crops(idx, 128, generator)                 # uint8 (n, C, 128, 128)

`PatchImages` holds either one uint8 (N, C, H, W) tensor (a built-in source, or any source
fitted square) or a list of uint8 (C, H_i, W_i) tensors of different sizes (a folder of photos,
each kept whole, its aspect kept). `crops(idx, size, generator)` is an operation on the images an
index batch selects: each one a size x size window at a uniformly random position, the positions
drawn from `generator` in one call (n x 2 uniforms: the same positions for the same generator state,
so a checkpointed generator resumes the same crops). The same operation applies to images a
prepared dataset reads for those indices (a list or a tensor).

Folder images are read whole (no center square), grey or RGB as the folder source reads them, and
scaled down so that their longer side is at most `max_side` (`data.resolution`; the resize rule of
raygan.data.dataset: bilinear with antialias, rounded; never scaled up). Other sources load as
`load_dataset` fits them (square, `max_side` px).

`center_crops(images, size)`: the fixed evaluation crop of each image (the same for every run).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from raygan.data.dataset import fit_channels
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
        if isinstance(self.images, list):
            sides = [min(x.shape[-2:]) for x in self.images]
            i = int(np.argmin(sides))
        else:
            sides, i = [min(self.images.shape[-2:])], 0
        if int(sides[i]) < crop:
            h, w = self.size(i)
            name = self.names[i] if self.names else f"the images of {where or 'the dataset'}"
            raise DataError(f"data.crop {crop} is larger than {name} ({w}x{h} px after data.resolution): "
                            f"use data.crop 8..{int(sides[i])}, or leave out the smaller images")
        return self

    def crops(self, idx: torch.Tensor, size: int, generator: Optional[torch.Generator]) -> torch.Tensor:
        """uint8 (n, C, size, size): one random window of each image `idx` selects."""
        idx = idx.tolist() if isinstance(idx, torch.Tensor) else list(idx)
        u = torch.rand(len(idx), 2, generator=generator, dtype=torch.float64)
        out = []
        for k, i in enumerate(idx):
            x = self.images[i]
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


def _shrink(x: torch.Tensor, max_side: int) -> torch.Tensor:
    """uint8 (C, H, W) with its longer side scaled down to max_side (aspect kept), else as is."""
    h, w = x.shape[-2:]
    if max(h, w) <= max_side:
        return x
    f = max_side / max(h, w)
    size = (max(1, round(h * f)), max(1, round(w * f)))
    y = F.interpolate(x[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8)[0]


def read_whole(files: Sequence, channels: Optional[int], max_side: int) -> List[torch.Tensor]:
    """Image files as uint8 (C, H, W) each, whole, longer side at most `max_side`."""
    from raygan.data.folder import _read_image

    mode = "L" if channels == 1 else "RGB"
    out = []
    for p in files:
        a = _read_image(p, mode, square=False)
        x = torch.from_numpy(np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1)))
        out.append(_shrink(x, max_side))
    return out


def load_patches(name: str, *, root=None, split: str = "train", max_side: int, channels: Optional[int] = None,
                 limit: Optional[int] = None, download: bool = False) -> PatchImages:
    """The images of a source for patch training (see the module doc)."""
    from raygan.data.prepared import is_prepared

    if name == "prepared" or (name == "folder" and is_prepared(root)):
        whole = _prepared_whole(root, split, channels, max_side, limit)
        if whole is not None:
            return whole
        name = "prepared"
    if name == "folder":
        from raygan.data.folder import folder_files

        files, labels, _, d = folder_files(root, split)
        files, labels = files[:limit] if limit else files, labels[:limit] if limit else labels
        imgs = read_whole(files, channels, max_side)
        return PatchImages(imgs, torch.tensor(labels, dtype=torch.int64), [str(f.relative_to(d)) for f in files])
    from raygan.data.sources import load_dataset

    ds = load_dataset(name, root=root, split=split, resolution=max_side, channels=channels, limit=limit,
                      download=download)
    return PatchImages(fit_channels(ds.images, channels), ds.labels)


def _prepared_whole(root, split: str, channels: Optional[int], max_side: int, limit: Optional[int]
                    ) -> Optional[PatchImages]:
    """A prepared dataset kept at native size (`raygan data prepare --native`) as whole images, like a
    folder's (longer side at most `max_side`); None for a fitted one (it loads like any source)."""
    from raygan.data.prepared import PreparedDataset

    ds = PreparedDataset.open(root if split == "train" else f"{str(root).rstrip('/')}/{split}")
    if ds.manifest["storage"] != "png":
        return None
    n = len(ds) if limit is None else min(limit, len(ds))
    imgs = [_shrink(fit_channels(torch.from_numpy(np.array(ds.image(i)))[None], channels)[0], max_side)
            for i in range(n)]
    return PatchImages(imgs, ds.labels[:n], None, class_names=ds.class_names)


def load_patch_domains(source: str, *, max_side: int, channels: Optional[int] = None, limit: Optional[int] = None,
                       **kw) -> tuple:
    """Domains (A, B) for patch training: a folder's {split}A/{split}B images whole (longer side at
    most `max_side`), or two classes of a labelled source as `load_domains` fits them."""
    from raygan.data.domains import FOLDER, domain_dirs, load_domains
    from raygan.data.sources import _images_under

    if source == FOLDER:
        dirs = domain_dirs(kw.get("root"), kw.get("split", "train"))
        out = []
        for label, d in enumerate(dirs):
            files = _images_under(d)[:limit] if limit else _images_under(d)
            out.append(PatchImages(read_whole(files, channels, max_side), torch.full((len(files),), label),
                                   [str(f.relative_to(d.parent)) for f in files], d.name, [x.name for x in dirs]))
        return out[0], out[1]
    a, b = load_domains(source, resolution=max_side, channels=channels, limit=limit, **kw)
    return tuple(PatchImages(x.images, x.labels, None, x.name, list(x.class_names)) for x in (a, b))
