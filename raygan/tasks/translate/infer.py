"""Translating image files with a trained translation model: the core of `raygan translate`.

    loaded = load_model(run_checkpoint, expect_task="translate")
    written = translate_path(loaded.module, "photo.png", "styled.png", "a2b")
    written = translate_path(loaded.module, "photos/", "styled/", "B2A")     # a folder, recursively

`module` is the exported `CycleTranslator` (`forward(x, direction)`). An image keeps its own
size: it is padded (replicate) to a multiple the generator's strides divide, translated, and
cropped back, so images larger than the training resolution work with a fully convolutional
generator; a side shorter than twice that multiple is refused (the bottleneck would hold one
pixel). Inputs, outputs and their checks are the ones `raygan repair` has (raygan.data.imageio
reads the pixels, 16-bit and float included; raygan.data.imagefiles plans and writes the files):
a folder's outputs mirror its subfolders and keep each input's file name and format.

Every user mistake raises one line: ConfigError for a direction not in {a2b, b2a} (any case),
DataError for a missing input, an empty folder, an output that is an input or exists (without
`overwrite`, `--force`); for one input file also an unreadable image or a wrong channel count. In
a folder such a file is skipped with its reason (`written.skipped`) and the others are written.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from raygan.data.imagefiles import Written, check_outputs, plan_pairs, write_each
from raygan.data.imageio import read_picture
from raygan.errors import DataError
from raygan.models.tiling import TilePolicy, receptive_radius, run_tiled
from raygan.tasks.translate.net import check_direction as _check_direction

PathArg = Union[str, "os.PathLike[str]"]


def check_direction(direction: str) -> str:
    """The direction in lower case (a2b | b2a; `A2B` is accepted)."""
    return _check_direction(str(direction).lower())


def model_channels(module: nn.Module) -> int:
    g = getattr(module, "G_AB", module)
    return int(getattr(g, "in_channels"))


def _multiple(module: nn.Module, direction: str) -> int:
    g = getattr(module, "G_AB" if direction == "a2b" else "G_BA", module)
    return int(getattr(g, "multiple", 1))


def _generator(module: nn.Module, direction: str) -> nn.Module:
    return getattr(module, "G_AB" if direction == "a2b" else "G_BA", module)


def context(module: nn.Module, direction: str) -> int:
    """The generator's receptive radius in input pixels (measured once per generator; an
    InstanceNorm counts as local here: see raygan.models.tiling on what it does to tiles)."""
    g = _generator(module, direction)
    if getattr(g, "_tile_context", None) is None:
        g._tile_context = receptive_radius(lambda m: m, g, [model_channels(module)], [1e-3],
                                           multiple=_multiple(module, direction))
    return int(g._tile_context)


def tile_policy(module: nn.Module, direction: str, tile: Optional[int] = None, overlap: Optional[int] = None,
                max_pixels: Optional[int] = None) -> TilePolicy:
    """When and how to tile (raygan.models.tiling.TilePolicy; None: its defaults)."""
    return TilePolicy(tile, overlap, max_pixels, lambda: context(module, direction), _multiple(module, direction))


@torch.no_grad()
def translate_pixels(module: nn.Module, x: torch.Tensor, direction: str,
                     device: Optional[torch.device] = None, policy: Optional[TilePolicy] = None) -> torch.Tensor:
    """(N, C, H, W) on [0, 1] -> translated (N, C, H, W) on [0, 1], padding to the generator's multiple;
    in overlapping tiles when `policy` says so (raygan.models.tiling)."""
    direction = check_direction(direction)
    device = device or next(module.parameters()).device
    h, w = x.shape[-2:]
    m = _multiple(module, direction)
    ph, pw = (-h) % m, (-w) % m
    x = x.to(device).float().mul(2.0).sub(1.0)
    if ph or pw:
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
    was_training = module.training
    module.eval()
    plan = policy.plan(*x.shape[-2:]) if policy is not None else None
    try:
        if plan is None:
            y = module(x, direction)
        else:
            y = run_tiled(lambda t: module(t, direction), [x], plan, device=device)
    finally:
        module.train(was_training)
    return y[..., ph // 2: ph // 2 + h, pw // 2: pw // 2 + w].float().add(1.0).div(2.0).clamp(0, 1).cpu()


def translate_path(module: nn.Module, src: PathArg, dst: PathArg, direction: str,
                   device: Optional[torch.device] = None, overwrite: bool = False, tile: Optional[int] = None,
                   tile_overlap: Optional[int] = None, max_pixels: Optional[int] = None) -> Written:
    """Translate an image file or a folder of images with `direction` (a2b | b2a); returns the
    written files (a list, with `.skipped` [(input, reason)] and `.notes`). Checks the direction,
    the tile size and every output path before anything is written. Tiling as `raygan repair`:
    images wider or taller than `tile` px, or (`tile` None) of more than `max_pixels` pixels, run in
    overlapping tiles; 0 never tiles."""
    direction = check_direction(direction)
    channels = model_channels(module)
    src = Path(os.path.expanduser(os.fspath(src)))
    pairs = plan_pairs(src, Path(os.path.expanduser(os.fspath(dst))))
    check_outputs(pairs, overwrite)
    single = not src.is_dir()
    if device is not None:
        module = module.to(device)
    policy = tile_policy(module, direction, tile, tile_overlap, max_pixels)
    min_side = 2 * _multiple(module, direction)
    def translate(p: Path):
        pic = read_picture(p, channels, verb="translates", min_side=min_side)
        try:
            y = translate_pixels(module, pic.pixels, direction, device, policy)
        except (RuntimeError, ValueError) as e:  # e.g. out of memory on a huge image
            raise DataError(f"translating {p} failed: {str(e).splitlines()[0][:160]}") from None
        return y[0], pic

    written = write_each(pairs, single, translate)
    note = policy.note(_generator(module, direction))
    if note:
        written.notes.append(note)
    return written
