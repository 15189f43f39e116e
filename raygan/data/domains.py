"""Two unpaired image domains A and B for translation, behind one function.

    a, b = load_domains("fashion-mnist", domain_a="sneaker", domain_b="ankle boot", resolution=32)
    a, b = load_domains("folder", root="photos2paintings", split="test", resolution=64, channels=3)

* A labelled source (fashion-mnist, mnist, cifar10, digits): each domain is one class of the
  chosen split. A class is given by name, case-insensitive, ignoring spaces, hyphens,
  underscores and slashes ("ankle boot", "Ankle-Boot", "ankleboot"; "T-shirt/top" also answers
  to "tshirt" and "top"), or by index (7 or "7"; for mnist names and indices coincide).
  The two domains are different classes, so they share no image: the training set is unpaired
  by construction, and the task draws A and B batches with independent samplers.
* "folder": the reference project's layout, `root/trainA`, `root/trainB`, `root/testA`,
  `root/testB`, each holding images at any depth (a domain has no classes) of any size, RGB or
  grey, read as the folder source reads them (16-bit grey scaled, transparency over black,
  center crop to a square, fitted to `resolution` by the rule of every source, grey when
  channels=1, else RGB). Mixed sizes need a `resolution`.

Each domain is an ImageDataset fitted to `resolution`/`channels`, with labels all 0 (A) or all
1 (B) and `class_names` = [name of A, name of B], so a batch's labels say its domain. `name`
is "<source>:<domain>" (e.g. "fashion-mnist:Sneaker", "folder:trainA"), distinct per domain so
reference statistics cached by name never mix domains; `source` adds the original class,
e.g. "/usr/share/datasets/fashion-mnist [class 7 'Sneaker']" (also `resolve_class`).
`limit` keeps the first N images of each domain. User mistakes raise one line: ConfigError
for an unknown or repeated class, DataError for a missing folder or an empty domain.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch

from raygan.data.dataset import ImageDataset, _check_positive, fit
from raygan.data.builtin import CIFAR10_CLASSES, FASHION_MNIST_CLASSES, MNIST_CLASSES
from raygan.data.folder import read_images
from raygan.data.sources import (
    IMAGE_EXTENSIONS,
    SOURCES,
    SPLITS,
    PathArg,
    _images_under,
    load_dataset,
)
from raygan.errors import ConfigError, DataError

FOLDER = "folder"
FOLDER_DOMAINS = ("A", "B")  # subfolders are f"{split}{domain}": trainA, trainB, testA, testB
ClassArg = Union[str, int]
# class names known without reading data, so a config can be checked before anything loads
KNOWN_CLASSES: Dict[str, List[str]] = {
    "fashion-mnist": FASHION_MNIST_CLASSES, "mnist": MNIST_CLASSES,
    "cifar10": CIFAR10_CLASSES, "digits": MNIST_CLASSES,
}


def _is_image(p: Path) -> bool:  # the folder source's rule: known extension, not hidden
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _aliases(class_names: List[str]) -> Dict[str, int]:
    """Normalised name -> index; "T-shirt/top" also gives "tshirt" and "top" unless ambiguous."""
    full = {_key(n): i for i, n in enumerate(class_names)}
    parts: Dict[str, List[int]] = {}
    for i, n in enumerate(class_names):
        for p in n.split("/"):
            parts.setdefault(_key(p), []).append(i)
    out = {k: v[0] for k, v in parts.items() if k and len(set(v)) == 1}
    out.update(full)
    return out


def resolve_class(source: str, name: ClassArg, class_names: Optional[List[str]] = None) -> int:
    """Index of class `name` (a name in any spelling described above, or an index) among
    `class_names` (default: the source's KNOWN_CLASSES)."""
    if class_names is None:
        if source not in KNOWN_CLASSES:
            raise ConfigError(f"{source} has no known class names; choose one of: {', '.join(KNOWN_CLASSES)}")
        class_names = KNOWN_CLASSES[source]
    n = len(class_names)
    valid = f"choose one of: {', '.join(class_names)} (or an index 0-{n - 1})"
    if isinstance(name, bool) or not isinstance(name, (str, int)):
        raise ConfigError(f"{source} domain class must be a name or an index, got {name!r}; {valid}")
    hit = _aliases(class_names).get(_key(str(name)))
    if hit is not None:
        return hit
    text = str(name).strip()
    if isinstance(name, int) or text.isdigit():
        if 0 <= int(text) < n:
            return int(text)
    raise ConfigError(f"unknown {source} class {name!r}; {valid}")


def _as_domain(ds: ImageDataset, label: int, names: List[str], domain: str, source: str) -> ImageDataset:
    return dataclasses.replace(
        ds,
        labels=torch.full((len(ds),), label, dtype=torch.int64),
        num_classes=2,
        class_names=list(names),
        name=f"{ds.name}:{domain}",
        source=source,
    )


def _class_domains(
    source: str, a: Optional[ClassArg], b: Optional[ClassArg], *, root: PathArg, split: str,
    resolution: Optional[int], channels: Optional[int], limit: Optional[int], download: bool,
) -> Tuple[ImageDataset, ImageDataset]:
    if a is None or b is None:
        raise ConfigError(f"translation on {source} needs two classes: set translate.domain_a and translate.domain_b")
    full = load_dataset(source, root=root, split=split, download=download)  # native size; fit after filtering
    ia = resolve_class(source, a, full.class_names)
    ib = resolve_class(source, b, full.class_names)
    if ia == ib:
        raise ConfigError(
            f"domains A and B are the same {source} class '{full.class_names[ia]}'; "
            "choose two different classes"
        )
    names = [full.class_names[ia], full.class_names[ib]]
    out = []
    for label, idx in enumerate((ia, ib)):
        keep = (full.labels == idx).nonzero().flatten()
        if keep.numel() == 0:
            raise DataError(
                f"{source} ({split} split, {full.source}) has no images of class {idx} '{names[label]}'"
            )
        ds = dataclasses.replace(full, images=full.images[keep], labels=full.labels[keep]).head(limit)
        ds = ds.fitted(resolution=resolution, channels=channels)
        where = f"{full.source} [class {idx} '{names[label]}']"
        out.append(_as_domain(ds, label, names, names[label], where))
    return out[0], out[1]


def _folder_domains(
    root: PathArg, *, split: str, resolution: Optional[int], channels: Optional[int], limit: Optional[int],
) -> Tuple[ImageDataset, ImageDataset]:
    dirs = domain_dirs(root, split)
    names = [d.name for d in dirs]
    out = []
    for label, d in enumerate(dirs):
        images = _read_domain(d, resolution, channels, limit)
        ds = ImageDataset(
            images=images, labels=torch.zeros(len(images), dtype=torch.int64), num_classes=1,
            class_names=[d.name], name=FOLDER, split=split, source=str(d),
        )
        out.append(_as_domain(ds, label, names, names[label], ds.source))
    return out[0], out[1]


def domain_dirs(root: PathArg, split: str) -> List[Path]:
    """The folders of domains A and B of `split` (root/{split}A, root/{split}B), checked non-empty."""
    layout = "the layout is root/trainA, trainB, testA, testB"
    if root is None:
        raise DataError(f"folder domains need a directory: pass --set data.root=/path ({layout})")
    base = Path(os.fspath(root)).expanduser()
    if not base.is_dir():
        raise DataError(f"folder domains: {base} is not a directory ({layout})")
    dirs = [base / f"{split}{d}" for d in FOLDER_DOMAINS]
    missing = [d.name + "/" for d in dirs if not d.is_dir()]
    if missing:
        raise DataError(f"folder domains: {base} has no {' and no '.join(missing)} ({layout})")
    for label, d in enumerate(dirs):
        if not any(_is_image(p) for p in d.rglob("*")):
            raise DataError(
                f"folder domains: domain {FOLDER_DOMAINS[label]} is empty: no "
                f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} images in {d}"
            )
    return dirs


def _read_domain(
    d: Path, resolution: Optional[int], channels: Optional[int], limit: Optional[int]
) -> torch.Tensor:
    """Every image under `d`, at any depth (a domain has no classes), read as the folder source
    reads them (raygan.data.folder.read_images)."""
    return fit(read_images(_images_under(d)[:limit], d, channels, resolution), channels=channels)


def load_domains(
    source: str,
    *,
    domain_a: Optional[ClassArg] = None,
    domain_b: Optional[ClassArg] = None,
    root: PathArg = None,
    split: str = "train",
    resolution: Optional[int] = None,
    channels: Optional[int] = None,
    limit: Optional[int] = None,
    download: bool = False,
) -> Tuple[ImageDataset, ImageDataset]:
    """Domains (A, B) of `split`: two classes of a labelled source, or a folder's {split}A/{split}B.

    `domain_a`/`domain_b` are ignored for "folder" (its domains are the subfolders).
    """
    SOURCES.get(source)  # unknown source -> ConfigError listing the valid ones
    _check_positive("resolution", resolution)
    _check_positive("limit", limit)
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    if source == FOLDER:
        return _folder_domains(root, split=split, resolution=resolution, channels=channels, limit=limit)
    return _class_domains(
        source, domain_a, domain_b, root=root, split=split, resolution=resolution,
        channels=channels, limit=limit, download=download,
    )
