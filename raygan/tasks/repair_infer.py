"""Repairing image files with a trained repair network: the core of `raygan repair`.

    from raygan.tasks.loading import load_model
    from raygan.tasks.repair_infer import repair_path
    loaded = load_model(ckpt, expect_task="repair")
    written = repair_path(loaded.module, "damaged.png", "restored.png", mask="mask.png")

Inputs: one PNG/JPEG (or BMP/WebP) file, or a folder of them (not recursive; outputs keep the
file names, as PNG). Any size the network handles: the U-Net pads internally, SRResNet takes
any size; a super-resolution model returns `scale` times the input size. Colour: a 1-channel
model takes greyscale images, a 3-channel model colour ones (an alpha channel is dropped; a
palette image is read as RGB); anything else is refused. Inpainting models need a mask (a
greyscale image of the input's size, white = missing; for a folder, a folder of masks with the
same file names); holes are filled with the training fill value (`module.fill`) before repair.

Everything is read and checked before anything is written, and existing outputs are not
replaced unless `overwrite=True`: a bad input raises one-line RayganError and leaves the disk
as it was.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from raygan.errors import RayganError
from raygan.tasks.repair_net import fill_value  # noqa: F401 (re-exported for callers holding a config)

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
PathLike = Union[str, Path]


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _images_in(folder: Path) -> List[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS
                   and not p.name.startswith("."))
    if not files:
        raise RayganError(f"{folder} holds no images ({', '.join(e.lstrip('.') for e in EXTENSIONS)})")
    return files


def read_image(path: Path, channels: int) -> torch.Tensor:
    """(1, C, H, W) float in [0, 1]; refuses an image whose channel count does not fit."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                mode = im.mode
            bands = len(im.getbands()) - (1 if mode in ("LA", "RGBA", "PA") else 0)
            if mode in ("I", "I;16", "F", "1"):
                im, bands = im.convert("L") if mode == "1" else im, 1
            if bands != channels:
                kind = {1: "1-channel (greyscale)", 3: "3-channel (RGB)"}
                raise RayganError(f"{path} has {bands} channel{'s' if bands != 1 else ''} ({mode}); this model repairs "
                                  f"{kind.get(channels, f'{channels}-channel')} images")
            if mode in ("I", "I;16", "F"):
                a = np.asarray(im, dtype=np.float64)
                a = a / (65535.0 if a.max() > 255 else 255.0)
            else:
                a = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.float64) / 255.0
    except RayganError:
        raise
    except (OSError, ValueError) as e:
        raise RayganError(f"cannot read image {path}: {_first_line(e)}") from None
    a = a[:, :, None] if a.ndim == 2 else a
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().clamp(0, 1)[None]


def read_mask(path: Path, size: Tuple[int, int], image: Path) -> torch.Tensor:
    """(1, 1, H, W) float, 1 = missing (pixels >= 50% grey), checked against the image's size."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L"), dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise RayganError(f"cannot read mask {path}: {_first_line(e)}") from None
    if a.shape != tuple(size):
        raise RayganError(f"mask {path} is {a.shape[1]}x{a.shape[0]} px but image {image} is "
                          f"{size[1]}x{size[0]} px; they must be the same size")
    return torch.from_numpy((a >= 128).astype(np.float32))[None, None]


def write_image(y: torch.Tensor, path: Path) -> None:
    """(C, H, W) in [-1, 1] -> an 8-bit greyscale or RGB file (format from the extension)."""
    from PIL import Image

    a = ((y.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(path)


def _plan(src: Path, out: Path, mask: Optional[Path]) -> List[Tuple[Path, Path, Optional[Path]]]:
    """(input, output, mask) triples."""
    if not src.exists():
        raise RayganError(f"input {src} does not exist")
    if src.is_dir():
        if out.exists() and not out.is_dir():
            raise RayganError(f"input {src} is a folder, so the output must be a folder; {out} is a file")
        if mask is not None and not mask.is_dir():
            raise RayganError(f"input {src} is a folder, so --mask must be a folder of masks with the same names")
        plan = []
        for f in _images_in(src):
            m = None
            if mask is not None:
                cands = [mask / f.name] + [mask / (f.stem + e) for e in EXTENSIONS]
                m = next((c for c in cands if c.is_file()), None)
                if m is None:
                    raise RayganError(f"no mask for {f.name} in {mask}")
            plan.append((f, out / (f.stem + ".png"), m))
        return plan
    if src.suffix.lower() not in EXTENSIONS:
        raise RayganError(f"{src} is not a PNG/JPEG/BMP/WebP image")
    if mask is not None and not mask.is_file():
        raise RayganError(f"mask {mask} is not a file")
    if out.is_dir():
        out = out / (src.stem + ".png")
    elif out.suffix.lower() not in EXTENSIONS:
        raise RayganError(f"output {out} needs an image extension (.png, .jpg, ...)")
    return [(src, out, mask)]


@torch.no_grad()
def repair_path(module: nn.Module, src: PathLike, out: PathLike, mask: Optional[PathLike] = None,
                fill: Optional[float] = None, overwrite: bool = False, device: Optional[torch.device] = None
                ) -> List[Path]:
    """Repair `src` (a file or a folder) into `out`; returns the files written. Holes are filled
    with `fill` (default: the network's training fill value) before repair."""
    channels = int(getattr(module, "channels", 0))
    fill = float(getattr(module, "fill", 0.5) if fill is None else fill)
    needs_mask = bool(getattr(module, "needs_mask", False))
    if getattr(module, "task", None) != "repair" or channels not in (1, 3):
        raise RayganError("this model is not a repair network")
    src, out = Path(src), Path(out)
    mask_p = Path(mask) if mask is not None else None
    if needs_mask and mask_p is None:
        raise RayganError("this model inpaints: pass a mask (white = missing pixels) of the input's size")
    if not needs_mask and mask_p is not None:
        raise RayganError("this model takes no mask (it was not trained for inpainting)")
    plan = _plan(src, out, mask_p)
    if not overwrite:
        exists = [o for _, o, _ in plan if o.exists()]
        if exists:
            more = f" (and {len(exists) - 1} more)" if len(exists) > 1 else ""
            raise RayganError(f"{exists[0]} exists{more}; choose another output or allow overwriting")
    loaded = []
    for f, o, m in plan:  # read and check everything first: nothing is written on a bad input
        x = read_image(f, channels)
        mk = read_mask(m, tuple(x.shape[-2:]), f) if m is not None else None
        loaded.append((x, mk, o))
    device = device or next(module.parameters()).device
    was_training = module.training
    module.eval()
    written = []
    try:
        for x, mk, o in loaded:
            if mk is not None:
                x = torch.where(mk > 0.5, torch.full_like(x, float(fill)), x)
                mk = mk.to(device)
            try:
                y = module(x.to(device) * 2 - 1, mk).float()
            except RuntimeError as e:  # e.g. out of memory on a huge image
                raise RayganError(f"repairing {o.name} failed: {str(e).splitlines()[0][:160]}") from None
            o.parent.mkdir(parents=True, exist_ok=True)
            write_image(y[0], o)
            written.append(o)
    finally:
        module.train(was_training)
    return written
