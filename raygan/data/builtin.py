"""The built-in datasets: Fashion-MNIST and MNIST (IDX files), CIFAR-10 (pickles), digits.

Each is one `@SOURCES.register` function; importing this module (raygan.data does) registers
them. Where they look and what the errors say come from raygan.data.sources.

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
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from raygan.data import sources
from raygan.data.dataset import ImageDataset
from raygan.data.idx import read_idx
from raygan.data.sources import (
    ENV_VAR,
    SOURCES,
    PathArg,
    _as_path,
    _bases,
    _download_root,
    _not_found,
    _one_line,
    _search,
    _torchvision_download,
)
from raygan.errors import DataError

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
MNIST_CLASSES = [str(i) for i in range(10)]
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]


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
        [sources.DEBIAN_FASHION_MNIST],  # looked up at call time (tests patch it)
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
