"""The folder source and the image readers it shares with raygan.data.domains.

`root` is a directory of images (png/jpg/jpeg/bmp/webp); one class per subfolder (sorted
names), or a single class when the images lie directly in it. A folder has no splits unless it
holds both `train/` and `test/`. Each image is read as RGB (grey when channels=1), 16-bit grey
scaled to 8 bits as round(v / 257), transparency composited over black, center-cropped to a
square at its native size and fitted to the resolution by the same rule as every source
(28 -> 32 is padded, not resized); mixed sizes need a resolution. Registered on import
(raygan.data imports this module); finding the image files is raygan.data.sources' job.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch

from raygan.data.dataset import ImageDataset, fit_resolution
from raygan.data.sources import (
    IMAGE_EXTENSIONS,
    SOURCES,
    PathArg,
    _as_path,
    _images_under,
    _is_image,
    _one_line,
)
from raygan.errors import DataError


def _scan_folder(d: Path) -> Tuple[List[Path], List[int], List[str]]:
    entries = sorted(d.iterdir(), key=lambda p: p.name)
    loose = [p for p in entries if p.is_file() and _is_image(p)]
    classes = []
    for sub in entries:
        if sub.is_dir() and not sub.name.startswith("."):
            files = _images_under(sub)
            if files:
                classes.append((sub.name, files))
    if classes and loose:
        raise DataError(
            f"folder {d} mixes {len(loose)} loose images with class subfolders "
            f"({', '.join(c for c, _ in classes)}); move the loose images into a subfolder"
        )
    if classes:
        files = [f for _, fs in classes for f in fs]
        labels = [i for i, (_, fs) in enumerate(classes) for _ in fs]
        return files, labels, [c for c, _ in classes]
    if loose:
        return loose, [0] * len(loose), [d.name or str(d)]
    raise DataError(
        f"folder {d} has no images ({', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)}), "
        "neither directly nor in class subfolders"
    )


# 16-bit grey PNGs open as "I;16" (or "I;16B"/"I;16L"/"I;16N"; older Pillow: "I", 32-bit).
_HIGH_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
FOLDER_BACKGROUND = 0  # transparent pixels are composited over black (see _pixels)


def _pixels(im: Any, mode: str) -> np.ndarray:
    """A PIL image as uint8 (H, W) for mode "L" or (H, W, 3) for "RGB".

    * 16-bit grey ("I;16*", and "I" read as 0..65535, clipped) -> 8 bits as round(v / 257) =
      (v + 128) // 257: the nearest 8-bit level, 0 -> 0 and 65535 -> 255, monotone, and the exact
      inverse of the usual 8 -> 16 bit widening v * 257 (v >> 8 would bias every level down).
      PIL's own convert clips such values at 255 instead.
    * Transparency (RGBA, LA, PA, premultiplied RGBa/La, P or L/RGB with a tRNS colour key) is
      composited over black: c * alpha / 255, rounded. Black is the value the resolution rule pads
      with (raygan.data.dataset), so a transparent border and a padded one are the same pixels,
      and it is premultiplied alpha: a fully transparent pixel keeps none of the colour stored
      under it.
    * Then PIL converts to `mode` (ITU-R 601-2 luma for "L").
    """
    from PIL import Image

    alpha: Optional[np.ndarray] = None
    if im.mode in _HIGH_BIT_GREY:
        raw = np.asarray(im).astype(np.int64)
        key = im.info.get("transparency")
        if isinstance(key, int):  # a tRNS grey key, in 16-bit units
            alpha = np.where(raw == key, 0, 255)
        im = Image.fromarray(((np.clip(raw, 0, 65535) + 128) // 257).astype(np.uint8), "L")
    elif im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"))
        alpha = rgba[..., 3]
        im = Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB")
    if alpha is not None:
        c = np.asarray(im).astype(np.int64)
        a = alpha.astype(np.int64)
        a = a[..., None] if c.ndim == 3 else a
        c = (c * a + FOLDER_BACKGROUND * (255 - a) + 127) // 255  # round((c a + bg (255 - a)) / 255)
        im = Image.fromarray(c.astype(np.uint8), im.mode)
    return np.array(im.convert(mode), dtype=np.uint8)  # a writable copy


def _read_image(path: Path, mode: str, square: bool = True) -> np.ndarray:
    """One image file as uint8 (see _pixels), center-cropped to a square at its native size
    (`square=False`: the whole picture, for patch training: raygan.data.crops)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            s = min(w, h)
            if w != h and square:  # center crop to a square
                left, top = (w - s) // 2, (h - s) // 2
                im = im.crop((left, top, left + s, top + s))
            return _pixels(im, mode)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {_one_line(e)}") from None


def read_images(
    files: Sequence[Path], where: Path, channels: Optional[int], resolution: Optional[int]
) -> torch.Tensor:
    """Image files as one uint8 NCHW tensor (grey when channels=1, else RGB), in file order.

    Each image is read at its native size, center-cropped to a square, and fitted to
    `resolution` by the rule every source follows (`fit_resolution`: <= 4 px smaller is
    zero-padded, anything else resized), one image at a time so that memory stays bounded and
    mixed sizes work. Without a resolution all images must have the same size (DataError).
    """
    mode = "L" if channels == 1 else "RGB"

    def read(p: Path) -> torch.Tensor:
        a = _read_image(p, mode)
        x = torch.from_numpy(np.ascontiguousarray(a[None, None] if a.ndim == 2 else a.transpose(2, 0, 1)[None]))
        return fit_resolution(x, resolution)[0]

    if len(files) > 64:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as ex:
            images = list(ex.map(read, files))  # PIL decodes without the GIL; order is kept
    else:
        images = [read(p) for p in files]
    first = int(images[0].shape[-1])
    odd = next((i for i, x in enumerate(images) if int(x.shape[-1]) != first), None)
    if odd is not None:
        raise DataError(
            f"images in {where} have different sizes ({files[0].name} is {first}px square "
            f"after cropping, {files[odd].name} is {int(images[odd].shape[-1])}px); "
            "pass a resolution, e.g. --set data.resolution=64"
        )
    return torch.stack(images)


@SOURCES.register("folder")
def folder(
    *, root: PathArg = None, split: str = "train", resolution: Optional[int] = None,
    channels: Optional[int] = None, limit: Optional[int] = None, download: bool = False,
) -> ImageDataset:
    """Images on disk: RGB (L when channels=1), center-cropped square, fitted like every source."""
    files, labels, class_names, d = folder_files(root, split)
    if limit is not None:
        files, labels = files[:limit], labels[:limit]
    return ImageDataset(
        images=read_images(files, d, channels, resolution),
        labels=torch.tensor(labels, dtype=torch.int64),
        num_classes=len(class_names),
        class_names=class_names,
        name="folder",
        split=split,
        source=str(d),
    )


def folder_files(root: PathArg, split: str) -> Tuple[List[Path], List[int], List[str], Path]:
    """(image files, their class labels, the class names, the folder they are in) of a split."""
    base = _as_path(root)
    if base is None:
        raise DataError(
            "the folder dataset needs a directory: pass --set data.root=/path/to/images"
        )
    if not base.is_dir():
        raise DataError(f"folder dataset: {base} is not a directory")
    has_splits = (base / "train").is_dir() and (base / "test").is_dir()
    if split == "test" and not has_splits:
        raise DataError(
            f"folder {base} has no test split: a folder is all 'train' unless it holds both "
            "train/ and test/ subfolders (each with class subfolders or loose images)"
        )
    d = base / split if has_splits else base
    files, labels, class_names = _scan_folder(d)
    return files, labels, class_names, d
