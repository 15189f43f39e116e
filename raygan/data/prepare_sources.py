"""What `raygan data prepare` reads: a folder, a zip/tar of images, or a built-in source; and how
one image file becomes pixels there (the folder source's rules, raygan.data.folder).

    spec, items, class_names = list_source("photos/")         # items: (name, label) in order
    pixels = decode(spec, open_item(spec, "cat/1.png"), fitting)  # uint8 (C, H, W), or DataError

A folder: class subfolders (sorted) or loose images, as the folder source (with train/ and test/,
`split` picks one). An archive (.zip, .tar, .tar.gz, .tgz): the same layout inside it; a single
top-level directory holding everything is looked through. Decoding: 16-bit grey scaled to 8 bits,
transparency composited over black, CMYK and palettes converted, grey when channels=1 else RGB;
Pillow's decompression-bomb limit refuses an image (its warning included); a zero-byte,
truncated or unreadable file is a DataError naming it, which prepare counts and lists as skipped.
Fitted: center-cropped to a square, then `fit_resolution` (<= 4 px smaller padded, else resized).
Native: kept at its size (no crop), for patch training.
"""
from __future__ import annotations

import io
import os
import tarfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from raygan.data.dataset import fit_resolution
from raygan.data.folder import _pixels, _scan_folder
from raygan.data.sources import IMAGE_EXTENSIONS, SOURCES, _one_line
from raygan.errors import DataError

ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")
Item = Tuple[str, int]


def source_kind(src: str) -> str:
    """"folder", "zip", "tar" or "builtin" (a registered source name), or DataError."""
    p = Path(src).expanduser()
    if p.is_dir():
        return "folder"
    low = p.name.lower()
    if p.is_file() and low.endswith(".zip"):
        return "zip"
    if p.is_file() and low.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    if src in SOURCES.names() and src not in ("folder", "prepared"):
        return "builtin"
    if p.exists():
        raise DataError(f"cannot prepare {src}: not a folder, nor a {', '.join(ARCHIVES)} archive")
    raise DataError(f"cannot prepare {src}: no such folder or archive, and not a built-in dataset "
                    f"({', '.join(n for n in SOURCES.names() if n not in ('folder', 'prepared'))})")


def _clean(name: str) -> str:
    while name.startswith(("./", "/")):
        name = name[2:] if name.startswith("./") else name[1:]
    return name


def _layout(names: List[str], where: str) -> Tuple[List[Item], List[str]]:
    """Archive member names -> (items, class names) by the folder source's layout rule; items keep the
    member names as stored (`./a/1.png`), the layout reads them without a leading `./`."""
    member = {_clean(n): n for n in names}
    images = sorted(n for n in member if n.lower().endswith(IMAGE_EXTENSIONS)
                    and not any(part.startswith(".") for part in n.split("/")) and not n.startswith("__MACOSX/"))
    if not images:
        raise DataError(f"{where} holds no images ({', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)})")
    tops = {n.split("/", 1)[0] for n in images}
    prefix = ""
    if len(tops) == 1 and all("/" in n for n in images):  # one folder that holds everything: look inside
        prefix = tops.pop() + "/"
    rel = [n[len(prefix):] for n in images]
    loose = [n for n in rel if "/" not in n]
    if loose and len(loose) != len(rel):
        raise DataError(f"{where} mixes {len(loose)} loose images with class subfolders; move the loose images "
                        "into a subfolder")
    if loose:
        return [(member[prefix + n], 0) for n in rel], [Path(where).name.split(".")[0]]
    classes = sorted({n.split("/", 1)[0] for n in rel})
    index = {c: i for i, c in enumerate(classes)}
    items = sorted(((prefix + n, index[n.split("/", 1)[0]]) for n in rel), key=lambda t: (t[1], t[0]))
    return [(member[n], y) for n, y in items], classes


def list_source(src: str, split: str = "train") -> Tuple[Dict[str, Any], List[Item], List[str]]:
    """(spec, items, class names): `spec` is what a worker process needs to open an item."""
    kind = source_kind(src)
    p = Path(src).expanduser().resolve()
    if kind == "folder":
        base = p
        if (p / "train").is_dir() and (p / "test").is_dir():
            base = p / split
        elif split != "train":
            raise DataError(f"folder {p} has no {split} split (it would need train/ and test/ subfolders)")
        files, labels, names = _scan_folder(base)
        return ({"kind": kind, "root": str(base)},
                [(str(f.relative_to(base)), int(y)) for f, y in zip(files, labels)], names)
    if kind == "zip":
        try:
            with zipfile.ZipFile(p) as z:
                names = [i.filename for i in z.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"cannot read the zip archive {p}: {_one_line(e)}") from None
    elif kind == "tar":
        try:
            with tarfile.open(p) as t:
                names = [m.name for m in t.getmembers() if m.isfile()]
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"cannot read the tar archive {p}: {_one_line(e)}") from None
    else:
        return {"kind": kind, "name": src, "split": split}, [], []
    items, classes = _layout(names, str(p))
    return {"kind": kind, "root": str(p)}, items, classes


class Opener:
    """Opens items of one source in one process (an archive is opened once, not per image)."""

    def __init__(self, spec: Dict[str, Any]):
        self.spec = spec
        self._archive: Any = None

    def read(self, name: str) -> bytes:
        kind, root = self.spec["kind"], self.spec["root"]
        try:
            if kind == "folder":
                return Path(root, name).read_bytes()
            if kind == "zip":
                if self._archive is None:
                    self._archive = zipfile.ZipFile(root)
                return self._archive.read(name)
            if self._archive is None:
                self._archive = tarfile.open(root)
            f = self._archive.extractfile(name)
            if f is None:
                raise OSError("not a regular file")
            return f.read()
        except (OSError, KeyError, zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
            raise DataError(f"cannot read {name}: {_one_line(e)}") from None

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None


def decode(data: bytes, name: str, resolution: Optional[int], channels: Optional[int]) -> np.ndarray:
    """One encoded image -> uint8 (C, H, W) by the folder rules; fitted when `resolution` is set
    (center square crop, then fit_resolution), else at its native size. DataError names the file."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    if not data:
        raise DataError(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if resolution is not None:
                    w, h = im.size
                    s = min(w, h)
                    if w != h:
                        left, top = (w - s) // 2, (h - s) // 2
                        im = im.crop((left, top, left + s, top + s))
                a = _pixels(im, mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{name}: refused as a possible decompression bomb ({_one_line(e)})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise DataError(f"{name}: not a readable image ({_one_line(e)})") from None
    x = np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    if resolution is not None:
        x = fit_resolution(torch.from_numpy(x)[None], resolution)[0].numpy()
    return x


def builtin_images(spec: Dict[str, Any], resolution: Optional[int], channels: Optional[int],
                   root: Optional[str] = None):
    """A built-in source loaded and fitted in memory (it is small): an ImageDataset."""
    from raygan.data.sources import load_dataset

    return load_dataset(spec["name"], root=root or os.environ.get("RAYGAN_DATA") or None, split=spec["split"],
                        resolution=resolution, channels=channels)
