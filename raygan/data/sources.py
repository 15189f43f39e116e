"""Dataset sources: the registry, where the pixels are looked for (offline first), and loading.

Every source is one registered function taking the same keyword arguments
(root, split, resolution, channels, limit, download) and returning an ImageDataset at its
native size; `load_dataset` then takes the first `limit` images and fits resolution and
channels (see raygan.data.dataset for the rules). A new source is one more
`@SOURCES.register("name")` function in any module of raygan.data (the package imports them all): the built-in
datasets are in raygan.data.builtin (fashion-mnist, mnist, cifar10, digits), the folder
source in raygan.data.folder; their docstrings say where each looks.

Lookup order for a dataset NAME: `root`, `root/NAME`, `$RAYGAN_DATA/NAME`, `$RAYGAN_DATA`, any
source-specific places (Debian's fashion-mnist package), then `~/.cache/raygan/data/NAME`.
Missing data raises DataError with one line: every place looked and how to get the data.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

import torch

from raygan.data.dataset import ImageDataset, _check_positive
from raygan.errors import ConfigError, DataError
from raygan.paths import cache_root
from raygan.registry import Registry

SOURCES = Registry("dataset")
SPLITS = ("train", "test")
ENV_VAR = "RAYGAN_DATA"
# Debian/Ubuntu package `dataset-fashion-mnist` installs the IDX .gz files here.
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

PathArg = Union[str, "os.PathLike[str]", None]
T = TypeVar("T")


# ----------------------------------------------------------------------------- where to look


def data_home() -> Optional[Path]:
    """$RAYGAN_DATA, or None when unset/empty."""
    v = os.environ.get(ENV_VAR, "").strip()
    return Path(v).expanduser() if v else None


def cache_dir() -> Path:
    """Where downloads go when neither root nor $RAYGAN_DATA is given: <cache root>/data."""
    return cache_root() / "data"


def _as_path(root: PathArg) -> Optional[Path]:
    return None if root is None else Path(os.fspath(root)).expanduser()


def _bases(
    name: str, root: Optional[Path], extra: Sequence[str] = ()
) -> List[Tuple[Optional[Path], str]]:
    """Candidate base directories with how to show them in errors, in lookup order."""
    out: List[Tuple[Optional[Path], str]] = []
    if root is not None:
        out += [(root, str(root)), (root / name, str(root / name))]
    home = data_home()
    if home is not None:
        out += [(home / name, f"${ENV_VAR}/{name}={home / name}"), (home, f"${ENV_VAR}={home}")]
    else:
        out.append((None, f"${ENV_VAR} (unset)"))
    out += [(Path(p), p) for p in extra]
    out.append((cache_dir() / name, str(cache_dir() / name)))
    return out


def _download_root(name: str, root: Optional[Path]) -> Path:
    if root is not None:
        return root
    home = data_home()
    return home / name if home is not None else cache_dir() / name


def _search(
    bases: List[Tuple[Optional[Path], str]],
    subdirs: Sequence[str],
    probe: Callable[[Path], Optional[T]],
) -> Tuple[Optional[T], List[str]]:
    """First probe(dir) that is not None over each base and base/subdir; also what was shown."""
    shown: List[str] = []
    for base, label in bases:
        shown.append(label)
        if base is None:
            continue
        for d in [base, *(base / s for s in subdirs)]:
            if d.is_dir():
                hit = probe(d)
                if hit is not None:
                    return hit, shown
    return None, shown


def _not_found(
    what: str, looked_for: str, shown: List[str], subdirs: Sequence[str], how: str, notes: List[str]
) -> DataError:
    also = f" (each also under {' and '.join(s + '/' for s in subdirs)})" if subdirs else ""
    note = f" [{'; '.join(notes)}]" if notes else ""
    return DataError(
        f"{what} not found: looked for {looked_for} in {', '.join(shown)}{also}{note}; "
        f"to get it: {how}"
    )


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _torchvision_download(cls_name: str, dest: Path, what: str) -> None:
    try:
        import torchvision.datasets as tvd
    except ImportError:
        raise DataError(f"downloading {what} needs torchvision (pip install torchvision)") from None
    try:
        dest.mkdir(parents=True, exist_ok=True)
        getattr(tvd, cls_name)(root=str(dest), train=True, download=True)
    except Exception as e:  # network, disk, checksum: all user-environment problems
        raise DataError(f"downloading {what} into {dest} failed: {_one_line(e)}") from None


# ----------------------------------------------------------------------------- image files


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _images_under(d: Path) -> List[Path]:
    """Every image file below `d` (hidden names skipped), in sorted path order."""
    out: List[Path] = []
    for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if _is_image(Path(f))]
    return sorted(out, key=lambda p: p.relative_to(d).parts)


# ----------------------------------------------------------------------------- public entry points


def load_dataset(
    name: str,
    *,
    root: PathArg = None,
    split: str = "train",
    resolution: Optional[int] = None,
    channels: Optional[int] = None,
    limit: Optional[int] = None,
    download: bool = False,
) -> ImageDataset:
    """Load a registered dataset as uint8 NCHW, fitted to `resolution` and `channels`.

    `limit` keeps the first N images (deterministic). `download=True` lets torchvision fetch
    fashion-mnist/mnist/cifar10 when no local copy is found; nothing downloads otherwise.
    """
    source = SOURCES.get(name)  # unknown name -> ConfigError listing the valid ones
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    _check_positive("resolution", resolution)
    _check_positive("limit", limit)
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels!r}")
    ds = source(
        root=root, split=split, resolution=resolution, channels=channels, limit=limit,
        download=bool(download),
    )
    return ds.head(limit).fitted(resolution=resolution, channels=channels)


def _pixel_stats(images: torch.Tensor) -> Tuple[List[float], List[float]]:
    """Per-channel mean and std of pixels scaled to [0, 1], accumulated in float64."""
    c = images.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    ss = torch.zeros(c, dtype=torch.float64)
    for i in range(0, images.shape[0], 1024):
        x = images[i : i + 1024].to(torch.float64) / 255.0
        s += x.sum(dim=(0, 2, 3))
        ss += (x * x).sum(dim=(0, 2, 3))
    n = max(1, images.shape[0] * images.shape[2] * images.shape[3])
    mean = s / n
    std = (ss / n - mean * mean).clamp_min(0).sqrt()
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


def describe(name: str, root: PathArg = None, download: bool = False) -> Dict[str, Any]:
    """What `raygan data info NAME` shows: location, splits and counts, shape, classes, pixels.

    Raises the same DataError as load_dataset when the train split is missing; a missing
    test split is reported under "unavailable".
    """
    train = load_dataset(name, root=root, split="train", download=download)
    splits: Dict[str, int] = {"train": len(train)}
    sources: Dict[str, str] = {"train": train.source}
    unavailable: Dict[str, str] = {}
    try:
        test = load_dataset(name, root=root, split="test", download=download)
        splits["test"] = len(test)
        sources["test"] = test.source
    except DataError as e:
        unavailable["test"] = str(e)
    mean, std = _pixel_stats(train.images)
    counts = torch.bincount(train.labels, minlength=train.num_classes).tolist()
    return {
        "name": name,
        "source": train.source,
        "sources": sources,
        "splits": splits,
        "unavailable": unavailable,
        "image_shape": [train.channels, int(train.images.shape[2]), int(train.images.shape[3])],
        "num_classes": train.num_classes,
        "class_names": list(train.class_names),
        "class_counts": counts,
        "pixel_mean": mean,  # per channel, train split, pixels / 255
        "pixel_std": std,
    }
