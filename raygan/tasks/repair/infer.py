"""Repairing image files with a trained repair network: the core of `raygan repair`.

    from raygan.tasks.loading import load_model
    from raygan.tasks.repair.infer import repair_path
    loaded = load_model(ckpt, expect_task="repair")
    written = repair_path(loaded.module, "damaged.png", "restored.png", mask="mask.png")

Inputs, outputs and their checks are the ones `raygan translate` has (raygan.data.imageio reads
the pixels, raygan.data.imagefiles plans and writes the files): one image file, or a folder of
them, subfolders mirrored and each output keeping its input's file name and format; 16-bit input
stays 16-bit where the output format holds it. Any size the network handles: the U-Net pads
internally, SRResNet takes any size; a super-resolution model returns `scale` times the input
size. Inpainting models need a mask (a greyscale image of the input's size, white = missing; for
a folder, a folder of masks with the same relative names, any image extension); holes are filled
with the training fill value (`module.fill`) before repair.

Existing outputs are not replaced unless `overwrite=True` (`--force`), and an input is never an
output. A single bad input file is a one-line RayganError with nothing written; in a folder, a
file that cannot be repaired is skipped with its reason (`written.skipped`) and the rest are.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch
from torch import nn

from raygan.data.imagefiles import Written, check_outputs, plan_pairs, write_each
from raygan.data.imageio import EXTENSIONS, read_picture
from raygan.errors import DataError, RayganError
from raygan.models.tiling import TilePolicy, grid_multiple, receptive_radius, run_tiled
from raygan.tasks.repair.net import fill_value  # noqa: F401 (re-exported for callers holding a config)

PathLike = Union[str, Path]


def read_mask(path: Path, size: Tuple[int, int], image: Path) -> torch.Tensor:
    """(1, 1, H, W) float, 1 = missing (pixels >= 50% grey), checked against the image's size."""
    rgb = read_picture(path, 3, verb="takes as a mask").pixels  # grey or colour, read as luma
    m = (rgb * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if tuple(m.shape[-2:]) != tuple(size):
        raise DataError(f"mask {path} is {m.shape[-1]}x{m.shape[-2]} px but image {image} is "
                        f"{size[1]}x{size[0]} px; they must be the same size")
    return (m >= 0.5).float()


def _masks(pairs, src: Path, mask: Optional[Path]) -> Dict[Path, Optional[Path]]:
    """Each input's mask: the file itself for one input; for a folder the same relative name
    under `mask`, or the same stem with any image extension (None when there is none)."""
    if mask is None:
        return {p: None for p, _ in pairs}
    if not src.is_dir():
        if not mask.is_file():
            raise DataError(f"--mask {mask} is not a file")
        return {pairs[0][0]: mask}
    if not mask.is_dir():
        raise DataError(f"input {src} is a folder, so --mask must be a folder of masks with the same names")
    found = {}
    for p, _ in pairs:
        rel = p.relative_to(src)
        cands = [mask / rel] + [(mask / rel).with_suffix(e) for e in EXTENSIONS]
        found[p] = next((c for c in cands if c.is_file()), None)
    return found


def grid(module: nn.Module) -> int:
    """The stride grid of a RepairNet's input (the U-Net's 2**depth, seen through the SR upsampling)."""
    net = getattr(module, "net", module)
    return grid_multiple(int(getattr(net, "multiple", 1)), int(getattr(module, "scale", 1))
                         if getattr(module, "upsample_input", False) else 1)


def context(module: nn.Module) -> int:
    """The repair network's receptive radius in input pixels (measured once per module)."""
    if getattr(module, "_tile_context", None) is None:
        channels, needs_mask = int(module.channels), bool(module.needs_mask)
        ins, vals = ([channels, 1], [1e-3, 1.0]) if needs_mask else ([channels], [1e-3])
        if needs_mask:
            fn_of = lambda m: (lambda x, k: m(x, k))  # noqa: E731
        else:
            fn_of = lambda m: (lambda x: m(x))  # noqa: E731
        module._tile_context = receptive_radius(fn_of, module, ins, vals, scale=int(module.scale),
                                                multiple=grid(module))
    return int(module._tile_context)


@torch.no_grad()
def repair_path(module: nn.Module, src: PathLike, out: PathLike, mask: Optional[PathLike] = None,
                fill: Optional[float] = None, overwrite: bool = False, device: Optional[torch.device] = None,
                tile: Optional[int] = None, tile_overlap: Optional[int] = None,
                max_pixels: Optional[int] = None) -> Written:
    """Repair `src` (a file or a folder) into `out`; returns the files written (a list, with
    `.skipped` [(input, reason)] and `.notes`). Holes are filled with `fill` (default: the
    network's training fill value) before repair. Large images run in overlapping tiles
    (raygan.models.tiling): every image wider or taller than `tile` input px; with `tile` None,
    only images of more than `max_pixels` pixels; with 0, none."""
    channels = int(getattr(module, "channels", 0))
    fill = float(getattr(module, "fill", 0.5) if fill is None else fill)
    needs_mask = bool(getattr(module, "needs_mask", False))
    if getattr(module, "task", None) != "repair" or channels not in (1, 3):
        raise RayganError("this model is not a repair network")
    src, out = Path(src), Path(out)
    mask_p = Path(mask) if mask is not None else None
    if needs_mask and mask_p is None:
        raise RayganError("this model inpaints: pass --mask (white = missing pixels, the input's size)")
    if not needs_mask and mask_p is not None:
        raise RayganError("this model takes no mask (it was not trained for inpainting): leave out --mask")
    pairs = plan_pairs(src, out)
    masks = _masks(pairs, src, mask_p)
    check_outputs(pairs, overwrite)
    single = not src.is_dir()
    device = device or next(module.parameters()).device
    was_training = module.training
    module.eval()
    policy = TilePolicy(tile, tile_overlap, max_pixels, lambda: context(module), grid(module))

    def repair(f: Path):
        if mask_p is not None and masks[f] is None:
            raise DataError(f"no mask for {f.relative_to(src)} in {mask_p}")
        pic = read_picture(f, channels, verb="repairs")
        x = pic.pixels
        mk = read_mask(masks[f], tuple(x.shape[-2:]), f) if masks[f] is not None else None
        if mk is not None:
            x = torch.where(mk > 0.5, torch.full_like(x, fill), x)
            mk = mk.to(device)
        plan = policy.plan(*x.shape[-2:])
        try:
            if plan is None:
                y = module(x.to(device) * 2 - 1, mk).float()
            elif mk is None:
                y = run_tiled(lambda t: module(t), [x * 2 - 1], plan, scale=module.scale, device=device)
            else:
                y = run_tiled(lambda t, k: module(t, k), [x * 2 - 1, mk.cpu()], plan, scale=module.scale,
                              device=device)
        except (RuntimeError, ValueError) as e:  # e.g. out of memory on a huge image
            raise DataError(f"repairing {f} failed: {str(e).splitlines()[0][:160]}") from None
        return ((y[0].cpu() + 1) / 2).clamp(0, 1), pic

    try:
        written = write_each(pairs, single, repair)
        note = policy.note(module)  # in eval mode: train-mode BatchNorm would count as image-wide
    finally:
        module.train(was_training)
    if note:
        written.notes.append(note)
    return written
