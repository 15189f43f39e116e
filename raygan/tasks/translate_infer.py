"""Translating image files with a trained translation model: the core of `raygan translate`.

    loaded = load_model(run_checkpoint, expect_task="translate")
    written = translate_path(loaded.module, "photo.png", "styled.png", "a2b")
    written = translate_path(loaded.module, "photos/", "styled/", "b2a")     # a folder, recursively

`module` is the exported `CycleTranslator` (`forward(x, direction)`). An image keeps its own
size: it is padded (replicate) to a multiple the generator's strides divide, translated, and
cropped back, so images larger than the training resolution work with a fully convolutional
generator. Its channels must be the model's (grey 1, colour 3; an alpha channel is dropped):
a mismatch is an error, not a silent conversion. Outputs are PNG (a single file may name another
extension PIL writes); a folder's outputs mirror its subfolders as `<stem>.png`.

Every user mistake raises one line: ConfigError for a direction not in {a2b, b2a}, DataError for
a missing input, an empty folder, an unreadable image, a wrong channel count, or an output that
would overwrite its input.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raygan.data.sources import IMAGE_EXTENSIONS, _images_under
from raygan.errors import DataError
from raygan.tasks.translate_net import check_direction

PathArg = Union[str, "os.PathLike[str]"]
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def model_channels(module: nn.Module) -> int:
    g = getattr(module, "G_AB", module)
    return int(getattr(g, "in_channels"))


def _multiple(module: nn.Module, direction: str) -> int:
    g = getattr(module, "G_AB" if direction == "a2b" else "G_BA", module)
    return int(getattr(g, "multiple", 1))


def read_image(path: Path, channels: int, decode: bool = True) -> Optional[torch.Tensor]:
    """(1, C, H, W) uint8 of an image file; its channel count must be `channels`.
    `decode=False` only checks the header (mode) and returns None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            has = 1 if im.mode in GREY_MODES else 3
            if has != channels:
                what, to = ("grey", "RGB") if has == 1 else (f"colour ({im.mode})", "greyscale")
                raise DataError(f"{path}: a {what} image with {has} channel{'s' * (has > 1)}; this model "
                                f"translates {channels}-channel images (convert it to {to} first)")
            if not decode:
                return None
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable image ({why})") from None
    x = torch.from_numpy(np.array(arr))  # a writable copy
    return (x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]).contiguous()


def write_image(x: torch.Tensor, path: Path) -> None:
    """Save (1, C, H, W) uint8 as an image file (format from the extension)."""
    from PIL import Image

    arr = x[0].permute(1, 2, 0).cpu().numpy()
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        img.save(path)
    except (ValueError, OSError) as e:
        raise DataError(f"cannot write {path}: {str(e).splitlines()[0][:120]}") from None


@torch.no_grad()
def translate_tensor(module: nn.Module, x8: torch.Tensor, direction: str,
                     device: Optional[torch.device] = None) -> torch.Tensor:
    """uint8 (N, C, H, W) -> translated uint8 (N, C, H, W), padding to the generator's multiple."""
    from raygan.metrics import to_uint8

    check_direction(direction)
    device = device or next(module.parameters()).device
    h, w = x8.shape[-2:]
    m = _multiple(module, direction)
    ph, pw = (-h) % m, (-w) % m
    x = x8.to(device).float().div(127.5).sub(1.0)
    if ph or pw:
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
    was_training = module.training
    module.eval()
    try:
        y = module(x, direction)
    finally:
        module.train(was_training)
    return to_uint8(y[..., ph // 2: ph // 2 + h, pw // 2: pw // 2 + w]).cpu()


def plan(src: PathArg, dst: PathArg) -> List[Tuple[Path, Path]]:
    """(input, output) pairs: one file -> `dst` (a file, or `dst/<stem>.png` when dst is a
    directory); a folder -> every image under it, mirrored under `dst` as `<stem>.png`."""
    src, dst = Path(os.fspath(src)).expanduser(), Path(os.fspath(dst)).expanduser()
    if src.is_file():
        out = dst / f"{src.stem}.png" if dst.is_dir() or str(dst).endswith(os.sep) else dst
        if out.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(f"output {out}: name an image file ({', '.join(IMAGE_EXTENSIONS)}) or a directory")
        pairs = [(src, out)]
    elif src.is_dir():
        if dst.is_file():
            raise DataError(f"output {dst} is a file; translating the folder {src} needs an output directory")
        files = _images_under(src)
        if not files:
            raise DataError(f"{src} holds no {'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} images")
        pairs = [(p, (dst / p.relative_to(src)).with_suffix(".png")) for p in files]
    else:
        raise DataError(f"input not found: {src}")
    for p, q in pairs:
        if q.resolve() == p.resolve():
            raise DataError(f"output {q} would overwrite its input; choose another output path")
    return pairs


def translate_path(module: nn.Module, src: PathArg, dst: PathArg, direction: str,
                   device: Optional[torch.device] = None) -> List[Path]:
    """Translate an image file or a folder of images with `direction` (a2b | b2a); returns the
    written files. Checks the direction and every input's channels before writing anything."""
    check_direction(direction)
    channels = model_channels(module)
    pairs = plan(src, dst)
    for p, _ in pairs:  # every input's header checked before any output is written
        read_image(p, channels, decode=False)
    if device is not None:
        module = module.to(device)
    written = []
    for p, out in pairs:
        write_image(translate_tensor(module, read_image(p, channels), direction, device), out)
        written.append(out)
    return written
