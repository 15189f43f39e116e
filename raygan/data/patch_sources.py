"""Which images patch training reads: a folder's photos whole, a prepared dataset's (streamed when
large), a built-in source fitted square, or a translate run's two domains.

    from raygan.data.patch_sources import load_patches
    images = load_patches("folder", root="photos", split="train", max_side=1024, channels=3)
    images.check(crop=128)                                    # DataError naming the smallest image

Folder images are read whole (no center square), grey or RGB as the folder source reads them, and
scaled down so that their longer side is at most `max_side` (raygan.data.crops.shrink). A prepared
dataset kept at native size (`raygan data prepare --native`) gives the same images from its PNGs;
one whose images exceed raygan.data.streamed.STREAM_THRESHOLD_BYTES is streamed, read by index
ahead of the step, and a smaller one read whole into memory (`stream` overrides; raygan.data.patch_stream).
Other sources load as `load_dataset` fits them (square, `max_side` px). The images come as a
PatchImages (raygan.data.crops).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch

from raygan.data.crops import PatchImages, shrink
from raygan.data.dataset import fit_channels
from raygan.data.patch_stream import prepared_patches


def read_whole(files: Sequence, channels: Optional[int], max_side: int) -> List[torch.Tensor]:
    """Image files as uint8 (C, H, W) each, whole, longer side at most `max_side`."""
    from raygan.data.folder import _read_image

    mode = "L" if channels == 1 else "RGB"
    out = []
    for p in files:
        a = _read_image(p, mode, square=False)
        x = torch.from_numpy(np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1)))
        out.append(shrink(x, max_side))
    return out


def load_patches(name: str, *, root=None, split: str = "train", max_side: int, channels: Optional[int] = None,
                 limit: Optional[int] = None, download: bool = False, stream: Optional[bool] = None) -> PatchImages:
    """The images of a source for patch training (see the module doc). A prepared dataset is streamed
    when its images exceed raygan.data.streamed.STREAM_THRESHOLD_BYTES, or `stream` says so."""
    from raygan.data.prepared import is_prepared

    if name == "prepared" or (name == "folder" and is_prepared(root)):
        return prepared_patches(root, split, channels, max_side, limit, stream)
    if stream:
        from raygan.errors import ConfigError

        raise ConfigError(f"config: data.stream: only a prepared dataset streams (data.name: prepared); "
                          f"'{name}' is loaded into memory (raygan data prepare --native makes one from it)")
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
