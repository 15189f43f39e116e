"""Dataset sources: where the pixels come from, found offline first.

Every source is one registered function taking the same keyword arguments
(root, split, resolution, channels, limit, download) and returning an ImageDataset at its
native size; `load_dataset` then takes the first `limit` images and fits resolution and
channels (see raygan.data.dataset for the rules). A new source is one more
`@SOURCES.register("name")` function.

Where each source looks, in order:

* fashion-mnist / mnist: IDX files `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
  `t10k-...` in `root`, `root/<name>`, `$RAYGAN_DATA/<name>`, `$RAYGAN_DATA`, then (Fashion-MNIST
  only) `/usr/share/datasets/fashion-mnist` from Debian's `dataset-fashion-mnist`, then
  `~/.cache/raygan/data/<name>`; each of these also in torchvision's layout
  (`FashionMNIST/raw`, `MNIST/raw`). Only with `download=True` does torchvision fetch them
  (into `root`, else `$RAYGAN_DATA/<name>`, else the cache directory).
* cifar10: the python pickle batches (`data_batch_1..5`, `test_batch`, `batches.meta`) in the same
  places, directly or in `cifar-10-batches-py/`. They are read with a restricted unpickler that
  only builds numpy arrays, lists, dicts and bytes.
* digits: scikit-learn's bundled 8x8 digits, always offline; "train" is the first 80% (1438),
  "test" the remaining 359; values 0..16 become round(v * 255 / 16).
* folder: `root` is a directory of images (png/jpg/jpeg/bmp/webp); one class per subfolder
  (sorted names), or a single class when the images lie directly in it. A folder has no splits
  unless it holds both `train/` and `test/`. Each image is read as RGB (grey when channels=1),
  16-bit grey scaled to 8 bits as round(v / 257), transparency composited over black,
  center-cropped to a square at its native size and fitted to the resolution by the same rule
  as every source (28 -> 32 is padded, not resized); mixed sizes need a resolution.

Missing data raises DataError with one line: every place looked and how to get the data.
"""
from __future__ import annotations

import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np
import torch

from raygan.data.dataset import ImageDataset, _check_positive, fit_resolution
from raygan.data.idx import read_idx
from raygan.errors import ConfigError, DataError
from raygan.paths import cache_root
from raygan.registry import Registry

SOURCES = Registry("dataset")
SPLITS = ("train", "test")
ENV_VAR = "RAYGAN_DATA"
# Debian/Ubuntu package `dataset-fashion-mnist` installs the IDX .gz files here.
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
MNIST_CLASSES = [str(i) for i in range(10)]
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]

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


# ----------------------------------------------------------------------------- IDX (MNIST-like)


def _find_file(d: Path, stem: str) -> Optional[Path]:
    for cand in (d / f"{stem}.gz", d / stem):
        if cand.is_file():
            return cand
    return None


def _load_idx_source(
    name: str,
    tv_name: str,
    class_names: List[str],
    how: str,
    extra_dirs: Sequence[str],
    *,
    root: PathArg,
    split: str,
    limit: Optional[int],
    download: bool,
) -> ImageDataset:
    prefix = {"train": "train", "test": "t10k"}[split]
    img_stem, lab_stem = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    notes: List[str] = []

    def probe(d: Path) -> Optional[Tuple[Path, Path]]:
        ip, lp = _find_file(d, img_stem), _find_file(d, lab_stem)
        if ip and lp:
            return ip, lp
        if ip or lp:
            notes.append(f"{d} has {(ip or lp).name} but not its {'labels' if ip else 'images'}")
        return None

    rootp = _as_path(root)
    subdirs = [f"{tv_name}/raw"]
    hit, shown = _search(_bases(name, rootp, extra_dirs), subdirs, probe)
    if hit is None and download:
        dest = _download_root(name, rootp)
        _torchvision_download(tv_name, dest, name)
        hit = probe(dest / tv_name / "raw")
    if hit is None:
        raise _not_found(
            f"{name} ({split} split)", f"{img_stem}[.gz] and {lab_stem}[.gz]", shown, subdirs, how,
            notes,
        )
    ip, lp = hit
    images, labels = read_idx(ip), read_idx(lp)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"IDX file {ip} should hold uint8 images (N, rows, cols), got {images.dtype} "
            f"{images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"IDX file {lp} should hold uint8 labels (N,), got {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise DataError(f"{ip} has {len(images)} images but {lp} has {len(labels)} labels")
    if len(labels) and int(labels.max()) >= len(class_names):
        raise DataError(
            f"IDX file {lp} has label {int(labels.max())}, expected 0..{len(class_names) - 1}"
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageDataset(
        images=torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=len(class_names),
        class_names=list(class_names),
        name=name,
        split=split,
        source=str(ip.parent),
    )


@SOURCES.register("fashion-mnist")
def fashion_mnist(
    *, root: PathArg = None, split: str = "train", resolution: Optional[int] = None,
    channels: Optional[int] = None, limit: Optional[int] = None, download: bool = False,
) -> ImageDataset:
    """Fashion-MNIST, 28x28 grey, 60000 train / 10000 test, 10 classes."""
    return _load_idx_source(
        "fashion-mnist", "FashionMNIST", FASHION_MNIST_CLASSES,
        "apt-get install dataset-fashion-mnist, or put the IDX files in "
        f"${ENV_VAR}/fashion-mnist, or allow a download (config: data.download=true; raygan data info NAME --download)",
        [DEBIAN_FASHION_MNIST],
        root=root, split=split, limit=limit, download=download,
    )


@SOURCES.register("mnist")
def mnist(
    *, root: PathArg = None, split: str = "train", resolution: Optional[int] = None,
    channels: Optional[int] = None, limit: Optional[int] = None, download: bool = False,
) -> ImageDataset:
    """MNIST handwritten digits, 28x28 grey, 60000 train / 10000 test."""
    return _load_idx_source(
        "mnist", "MNIST", MNIST_CLASSES,
        f"put the IDX files in ${ENV_VAR}/mnist, or allow a download (config: data.download=true; raygan data info NAME --download)",
        [],
        root=root, split=split, limit=limit, download=download,
    )


# ----------------------------------------------------------------------------- CIFAR-10

_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = ["test_batch"]


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, lists, dicts, bytes and str; refuses any other global."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("numpy.core"):  # pickles from numpy 1.x (the original CIFAR files)
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> Dict[Any, Any]:
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnlyUnpickler(f, encoding="bytes").load()
    except Exception as e:  # corrupt, truncated, or not a CIFAR batch
        raise DataError(f"cannot read CIFAR batch {path}: {_one_line(e)}") from None
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR batch {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def _key(d: Dict[Any, Any], key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DataError(f"CIFAR batch {path} has no '{key}' entry")


@SOURCES.register("cifar10")
def cifar10(
    *, root: PathArg = None, split: str = "train", resolution: Optional[int] = None,
    channels: Optional[int] = None, limit: Optional[int] = None, download: bool = False,
) -> ImageDataset:
    """CIFAR-10 python pickle batches, 32x32 RGB, 50000 train / 10000 test."""
    wanted = _CIFAR_TRAIN if split == "train" else _CIFAR_TEST
    notes: List[str] = []

    def probe(d: Path) -> Optional[Path]:
        present = [b for b in wanted if (d / b).is_file()]
        if len(present) == len(wanted):
            return d
        if present:
            notes.append(f"{d} lacks {', '.join(b for b in wanted if b not in present)}")
        return None

    rootp = _as_path(root)
    subdirs = ["cifar-10-batches-py"]
    hit, shown = _search(_bases("cifar10", rootp), subdirs, probe)
    if hit is None and download:
        dest = _download_root("cifar10", rootp)
        _torchvision_download("CIFAR10", dest, "cifar10")
        hit = probe(dest / "cifar-10-batches-py")
    if hit is None:
        raise _not_found(
            f"cifar10 ({split} split)", ", ".join(wanted), shown, subdirs,
            "download and unpack https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz into "
            f"${ENV_VAR}/cifar10, or allow a download (config: data.download=true; raygan data info NAME --download)",
            notes,
        )
    images, labels = [], []
    have = 0
    for b in wanted:
        if limit is not None and have >= limit:
            break
        path = hit / b
        d = _unpickle(path)
        data = np.asarray(_key(d, "data", path))
        lab = np.asarray(_key(d, "labels", path), dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(
                f"CIFAR batch {path}: data should be uint8 (N, 3072), got {data.dtype} {data.shape}"
            )
        if lab.shape != (data.shape[0],):
            raise DataError(f"CIFAR batch {path}: {data.shape[0]} images but {lab.size} labels")
        images.append(data.reshape(-1, 3, 32, 32))  # rows are R, G, B planes, each row-major
        labels.append(lab)
        have += data.shape[0]
    class_names = list(CIFAR10_CLASSES)
    meta = hit / "batches.meta"
    if meta.is_file():
        names = _key(_unpickle(meta), "label_names", meta)
        class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    x = np.concatenate(images)[:limit]
    y = np.concatenate(labels)[:limit]
    if y.size and (y.min() < 0 or y.max() >= len(class_names)):
        raise DataError(f"CIFAR batches in {hit} have labels outside 0..{len(class_names) - 1}")
    return ImageDataset(
        images=torch.from_numpy(np.ascontiguousarray(x)),
        labels=torch.from_numpy(y),
        num_classes=len(class_names),
        class_names=class_names,
        name="cifar10",
        split=split,
        source=str(hit),
    )


# ----------------------------------------------------------------------------- digits

DIGITS_TRAIN_FRACTION = 0.8


@SOURCES.register("digits")
def digits(
    *, root: PathArg = None, split: str = "train", resolution: Optional[int] = None,
    channels: Optional[int] = None, limit: Optional[int] = None, download: bool = False,
) -> ImageDataset:
    """scikit-learn's 1797 8x8 digits (bundled, offline); first 80% train, rest test."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    x = np.rint(np.asarray(bunch.images, dtype=np.float64) * 255.0 / 16.0)
    x = x.clip(0, 255).astype(np.uint8)[:, None]
    y = np.asarray(bunch.target, dtype=np.int64)
    n_train = int(round(DIGITS_TRAIN_FRACTION * len(x)))  # 1438 of 1797
    sl = slice(0, n_train) if split == "train" else slice(n_train, None)
    x, y = x[sl][:limit], y[sl][:limit]
    return ImageDataset(
        images=torch.from_numpy(np.ascontiguousarray(x)),
        labels=torch.from_numpy(y),
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        name="digits",
        split=split,
        source="sklearn.datasets.load_digits",
    )


# ----------------------------------------------------------------------------- folder


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _images_under(d: Path) -> List[Path]:
    out: List[Path] = []
    for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if _is_image(Path(f))]
    return sorted(out, key=lambda p: p.relative_to(d).parts)


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


def _read_image(path: Path, mode: str) -> np.ndarray:
    """One image file as uint8 (see _pixels), center-cropped to a square at its native size."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            s = min(w, h)
            if w != h:  # center crop to a square
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
