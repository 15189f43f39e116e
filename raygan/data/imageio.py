"""Reading one image file for inference, and writing one output image: the pixels half of the
image files that `raygan repair` and `raygan translate` read and write (which files, and how
outputs are written safely, is raygan.data.imagefiles). Core: PIL, numpy and torch only.

    pic = read_picture(Path("scan.png"), channels=1)        # (1, 1, H, W) float on [0, 1]
    image, fmt, save_kw, note = encode(y01, Path("out.png"), pic.depth, pic.scale)

Reading (`read_picture`) is the same for every command:
* 8-bit files (L, RGB, palette, 1-bit) are read on [0, 1] as v / 255; 16-bit grey PNG/TIFF
  ("I;16*", and "I") as v / 65535 (depth 16); float TIFF ("F") keeps its own scale: [0, 1] when
  its largest value is at most 1, else 0..255, else 0..65535 (depth "float", written back on the
  same scale). Pillow reads 16-bit colour PNGs as 8-bit; raygan cannot do better there.
* Channels are reported as the file has them (RGBA is 4 channels). What converts without loss is
  accepted: an alpha channel that is fully opaque is dropped, RGB whose three channels are equal
  is read as grey (lossy WebP, which always decodes to RGB, within one level), and grey is
  repeated into RGB for a colour model. Real transparency, or colour for a greyscale model,
  is refused with the reason.
* Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS) refuses an image instead of
  decoding it, its warning included; an image smaller than `min_side` is refused.
Every problem is a one-line DataError that names the file.

Writing (`encode`) keeps the input's depth where the output format can hold it: 16-bit grey in
PNG/TIFF stays 16-bit, float grey in TIFF stays float (PNG gets 16 bits); JPEG (quality 95),
BMP and WebP (lossless) hold 8 bits, and then `note` says the depth was reduced.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

from raygan.errors import DataError

#: what repair and translate read (a folder: these files, hidden names skipped)
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF",
           ".tiff": "TIFF"}
HIGH_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
Depth = Union[int, str]  # 8, 16 or "float"


@dataclass
class Picture:
    pixels: torch.Tensor  # (1, C, H, W) float32 on [0, 1]
    depth: Depth  # 8, 16 or "float": what the file held
    scale: float  # the file's full-scale value (255, 65535, or 1.0/255/65535 for float)
    path: Path


def _one_line(e: BaseException) -> str:
    return (str(e).splitlines()[0][:160] if str(e) else type(e).__name__)


def _kind(c: int) -> str:
    return {1: "1-channel (greyscale)", 3: "3-channel (RGB)"}.get(c, f"{c}-channel")


def _array(im: Any, path: Path) -> Tuple[np.ndarray, str, Depth, float]:
    """(H, W, C) float64 samples, the mode named to the user, depth and full-scale value."""
    mode = im.mode
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("La", "RGBa"):
        im = im.convert({"La": "LA", "RGBa": "RGBA"}[mode])
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    elif mode in ("L", "LA", "RGB", "RGBA") and "transparency" in im.info:
        im = im.convert("LA" if mode.startswith("L") else "RGBA")  # a tRNS colour key is alpha
    if im.mode in HIGH_BIT:
        a = np.asarray(im).astype(np.float64)
        key = im.info.get("transparency")
        if isinstance(key, int) and (a == key).any():
            raise DataError(f"{path} has transparent pixels (a 16-bit grey colour key); flatten it first")
        return np.clip(a, 0, 65535)[..., None], mode, 16, 65535.0
    if im.mode == "F":
        a = np.asarray(im).astype(np.float64)
        if not np.isfinite(a).all():
            raise DataError(f"{path} holds non-finite (NaN or infinite) float pixels")
        top = float(a.max()) if a.size else 0.0
        scale = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0
        return np.clip(a, 0, scale)[..., None], mode, "float", scale
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        raise DataError(f"{path}: image mode {im.mode} is not supported (use 8/16-bit grey, RGB or RGBA)")
    a = np.asarray(im).astype(np.float64)
    return (a[..., None] if a.ndim == 2 else a), mode, 8, 255.0


def read_picture(path: Path, channels: int, verb: str = "takes", min_side: int = 1) -> Picture:
    """One image file as (1, channels, H, W) float on [0, 1] (see the module doc)."""
    from PIL import Image

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt = im.format
                im.load()
                a, mode, depth, scale = _array(im, path)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: refused as a possible decompression bomb ({_one_line(e)}; "
                        f"Pillow's limit is {Image.MAX_IMAGE_PIXELS} pixels)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise DataError(f"{path}: not a readable image ({_one_line(e)})") from None
    has = a.shape[2]
    if has in (2, 4):  # the last band is alpha
        if (a[..., -1] < scale).any():
            raise DataError(f"{path} has {has} channels ({mode}) with transparent pixels; flatten it onto a "
                            f"background first (this model {verb} {_kind(channels)} images)")
        a = a[..., :-1]
    c = a.shape[2]
    if c == 3 and channels == 1:
        spread = np.abs(a[..., 0] - a[..., 1]).max(initial=0) + np.abs(a[..., 1] - a[..., 2]).max(initial=0)
        if spread == 0:
            a = a[..., :1]
        elif fmt == "WEBP" and max(np.abs(a[..., 0] - a[..., 1]).max(), np.abs(a[..., 1] - a[..., 2]).max(),
                                   np.abs(a[..., 0] - a[..., 2]).max()) <= 1:
            a = (a @ np.array([0.299, 0.587, 0.114]))[..., None]  # a grey picture in lossy WebP
    if c == 1 and channels == 3:
        a = np.repeat(a, 3, axis=2)
    if a.shape[2] != channels:
        raise DataError(f"{path} has {has} channel{'s' * (has != 1)} ({mode}, in colour); this model {verb} "
                        f"{_kind(channels)} images")
    h, w = a.shape[:2]
    if min(h, w) < min_side:
        raise DataError(f"{path} is {w}x{h} px; this model {verb} images of at least {min_side}x{min_side} px")
    x = torch.from_numpy(np.ascontiguousarray((a / scale).transpose(2, 0, 1))).float().clamp(0, 1)[None]
    return Picture(x, depth, scale, path)


def encode(y: torch.Tensor, path: Path, depth: Depth = 8, scale: float = 255.0
           ) -> Tuple[Any, str, Dict[str, Any], Optional[str]]:
    """(PIL image, format, save kwargs, note) for (C, H, W) float on [0, 1] written as `path`
    (format from its extension). `note` says when the input's depth could not be kept."""
    from PIL import Image

    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"output {path}: name an image file ({', '.join(EXTENSIONS)})")
    a = y.detach().float().cpu().clamp(0, 1).numpy()
    grey = a.shape[0] == 1
    note = None
    kw: Dict[str, Any] = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}.get(fmt, {})
    if depth == "float" and grey and fmt == "TIFF":
        return Image.fromarray((a[0] * scale).astype(np.float32)), fmt, kw, None  # mode F
    if depth in (16, "float") and grey and fmt in ("PNG", "TIFF"):
        img = Image.fromarray(np.round(a[0] * 65535).astype(np.uint16))  # I;16
        if depth == "float":
            note = f"{path} holds 16-bit samples (its input was float)"
        return img, fmt, kw, note
    if depth != 8:
        d = "float" if depth == "float" else f"{depth}-bit"
        note = f"{path} holds 8-bit samples, its input {d} ones (only greyscale PNG or TIFF output holds more)"
    u8 = np.round(a * 255).astype(np.uint8)
    return Image.fromarray(u8[0] if grey else u8.transpose(1, 2, 0)), fmt, kw, note
