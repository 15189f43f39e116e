"""Prepared datasets on disk (`raygan data prepare` writes them): the format and its reader.

A prepared dataset is a directory (local, or any filesystem pyarrow or fsspec reads: file://,
s3://, gs://, memory://) holding

    manifest.json            written last: its presence marks the dataset finished
    shard-00000.arrow ...    Arrow IPC files, one record batch per image: random access by index

Each row has `image` (binary: the raw uint8 CHW pixels of a fitted image, or the PNG bytes of
an image kept at its native size), `label` (int64), `height`, `width` (int32) and `name` (the
source file). The manifest holds the count, the shape ([C, H, W], or null when native), the
storage ("raw" or "png"), labels, class names, the source, the fitting protocol, every shard's
row count, byte size and sha256, the files that were skipped and why, and the content hash:
sha256 over each image's digest (sha256 of label and pixels) in order, so it names the content,
not the shard layout. Arrow IPC, not pickle: pyarrow (which Ray already brings) reads a single
row without reading its neighbours, from a local file or a remote filesystem alike.

`PreparedDataset.open(uri)` checks the manifest against the shards (format, version, every
shard present with its size and row count) and says in one line what is wrong; `image(i)` then
reads one image as uint8 CHW (thread-safe: each thread opens its own readers). Loading a
prepared dataset into memory is the `prepared` source (`data.name: prepared`, `data.root: DIR`);
streaming it is raygan.data.streamed. pyarrow and fsspec are imported only when used.
"""
from __future__ import annotations

import io
import json
import threading
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from raygan.data.dataset import ImageDataset, fit
from raygan.data.sources import SOURCES, PathArg
from raygan.errors import DataError

FORMAT = "raygan-prepared"
VERSION = 1
MANIFEST = "manifest.json"
PARTIAL_SUFFIX = ".partial"  # where prepare writes before the atomic rename


def filesystem(uri: str) -> Tuple[Any, str]:
    """(pyarrow FileSystem, path) for a local path or a URI of any pyarrow or fsspec filesystem."""
    import os

    import pyarrow.fs as pafs

    uri = os.fspath(uri)
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path
    except (ValueError, TypeError, OSError, ImportError):  # not a pyarrow scheme (memory://, ...): fsspec's
        pass
    try:
        import fsspec.core
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        ffs, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError, OSError) as e:
        raise DataError(f"prepared dataset {uri}: no filesystem reads this URI ({' '.join(str(e).split())})") \
            from None
    return PyFileSystem(FSSpecHandler(ffs)), path


def is_prepared(root: PathArg) -> bool:
    """Whether `root` holds a prepared dataset's manifest (any filesystem)."""
    if root is None:
        return False
    try:
        import pyarrow.fs as pafs

        fs, path = filesystem(str(root))
        return fs.get_file_info(f"{path.rstrip('/')}/{MANIFEST}").type == pafs.FileType.File
    except (DataError, OSError, ValueError, ImportError):
        return False


def _need(cond: bool, uri: str, what: str) -> None:
    if not cond:
        raise DataError(f"prepared dataset {uri}: {what}; prepare it again (raygan data prepare ... --force)")


def check_manifest(m: Any, uri: str) -> Dict[str, Any]:
    """The manifest's fields, types and internal consistency (it is read from disk: untrusted)."""
    _need(isinstance(m, dict) and m.get("format") == FORMAT, uri, "manifest.json is not a raygan prepared-dataset "
          "manifest")
    _need(m.get("version") == VERSION, uri, f"format version {m.get('version')!r}, this raygan reads version "
          f"{VERSION}")
    n, shards, labels, names = m.get("count"), m.get("shards"), m.get("labels"), m.get("class_names")
    _need(isinstance(n, int) and n >= 1, uri, "the manifest's count is not a positive integer")
    _need(m.get("storage") in ("raw", "png"), uri, f"unknown storage {m.get('storage')!r}")
    shape = m.get("shape")
    _need(shape is None or (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0
                                                                               for v in shape)),
          uri, f"shape {shape!r} is not [C, H, W]")
    _need(m["storage"] == "png" or shape is not None, uri, "raw storage without a shape")
    _need(isinstance(labels, list) and len(labels) == n and all(isinstance(v, int) for v in labels),
          uri, f"the manifest lists {len(labels) if isinstance(labels, list) else 'no'} labels for {n} images")
    _need(isinstance(names, list) and all(isinstance(v, str) for v in names) and len(names) >= 1, uri,
          "no class names")
    _need(all(0 <= v < len(names) for v in labels), uri, "a label outside the class names")
    _need(isinstance(shards, list) and all(isinstance(s, dict) and isinstance(s.get("file"), str)
                                           and isinstance(s.get("count"), int) and isinstance(s.get("bytes"), int)
                                           and "/" not in s["file"] for s in shards), uri, "malformed shard list")
    _need(sum(s["count"] for s in shards) == n, uri, f"its shards hold {sum(s['count'] for s in shards)} images, "
          f"the manifest says {n}")
    _need(isinstance(m.get("content_hash"), str), uri, "no content hash")
    return m


class PreparedDataset:
    """A prepared dataset opened for reading by index (see the module doc)."""

    def __init__(self, uri: str, fs: Any, root: str, manifest: Dict[str, Any]):
        self.uri, self.fs, self.root, self.manifest = uri, fs, root.rstrip("/"), manifest
        counts = [s["count"] for s in manifest["shards"]]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._local = threading.local()

    @classmethod
    def open(cls, uri: PathArg, check_shards: bool = True) -> "PreparedDataset":
        if uri is None:
            raise DataError("the prepared dataset needs its directory: pass --set data.root=DIR (or a URI)")
        uri = str(uri)
        fs, root = filesystem(uri)
        root = root.rstrip("/")
        import pyarrow.fs as pafs

        info = fs.get_file_info(f"{root}/{MANIFEST}")
        if info.type != pafs.FileType.File:
            partial = fs.get_file_info(root + PARTIAL_SUFFIX).type == pafs.FileType.Directory
            where = "it does not exist" if fs.get_file_info(root).type == pafs.FileType.NotFound else \
                "it has no manifest.json"
            hint = (f"; {uri}{PARTIAL_SUFFIX} is an unfinished prepare: run the same prepare again to resume"
                    if partial else "; make one with raygan data prepare SRC --out DIR")
            raise DataError(f"{uri} is not a prepared dataset ({where}){hint}")
        try:
            with fs.open_input_stream(f"{root}/{MANIFEST}") as f:
                manifest = json.loads(f.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"prepared dataset {uri}: manifest.json is not valid JSON ({e})") from None
        check_manifest(manifest, uri)
        ds = cls(uri, fs, root, manifest)
        if check_shards:
            ds.check_shards()
        return ds

    def check_shards(self) -> None:
        """Every shard present with the manifest's byte size and row count (cheap: no hashing)."""
        paths = [f"{self.root}/{s['file']}" for s in self.manifest["shards"]]
        for s, info in zip(self.manifest["shards"], self.fs.get_file_info(paths)):
            _need(info.size is not None and info.type.name == "File", self.uri, f"shard {s['file']} is missing")
            _need(info.size == s["bytes"], self.uri, f"shard {s['file']} is {info.size} bytes, the manifest says "
                  f"{s['bytes']} (changed or truncated)")
        if self.manifest["shards"]:
            r = self._reader(0)
            _need(r.num_record_batches == self.manifest["shards"][0]["count"], self.uri,
                  f"shard {self.manifest['shards'][0]['file']} holds {r.num_record_batches} images, the manifest "
                  f"says {self.manifest['shards'][0]['count']}")

    def verify(self) -> None:
        """Full check: every shard's sha256 equals the manifest's (reads every byte)."""
        import hashlib

        for s in self.manifest["shards"]:
            h = hashlib.sha256()
            with self.fs.open_input_stream(f"{self.root}/{s['file']}") as f:
                while True:
                    b = f.read(1 << 22)
                    if not b:
                        break
                    h.update(b)
            _need(h.hexdigest() == s.get("sha256"), self.uri, f"shard {s['file']} does not match its sha256 in "
                  "the manifest (changed or corrupt)")

    # ------------------------------------------------------------------ what it holds
    def __len__(self) -> int:
        return int(self.manifest["count"])

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor(self.manifest["labels"], dtype=torch.int64)

    @property
    def class_names(self) -> List[str]:
        return list(self.manifest["class_names"])

    @property
    def content_hash(self) -> str:
        return str(self.manifest["content_hash"])

    @property
    def channels(self) -> int:
        shape = self.manifest.get("shape")
        return int(shape[0]) if shape else int(self.manifest["fitting"].get("channels") or 3)

    # ------------------------------------------------------------------ reading
    def _reader(self, shard: int):
        import pyarrow as pa

        cache = getattr(self._local, "readers", None)
        if cache is None:
            cache = self._local.readers = {}
        r = cache.get(shard)
        if r is None:
            name = self.manifest["shards"][shard]["file"]
            try:
                f = self.fs.open_input_file(f"{self.root}/{name}")
                r = pa.ipc.open_file(f)
            except (OSError, pa.ArrowInvalid) as e:
                raise DataError(f"prepared dataset {self.uri}: shard {name} is unreadable "
                                f"({' '.join(str(e).split())})") from None
            cache[shard] = r
        return r

    def image(self, i: int) -> np.ndarray:
        """Image `i` as uint8 (C, H, W), as stored (fitted, or at its native size)."""
        import pyarrow as pa

        n = len(self)
        if not 0 <= i < n:
            raise IndexError(f"image {i} of {n}")
        shard = int(np.searchsorted(self._starts, i, side="right") - 1)
        row = i - int(self._starts[shard])
        try:
            batch = self._reader(shard).get_batch(row)
        except (OSError, pa.ArrowInvalid, IndexError) as e:
            raise DataError(f"prepared dataset {self.uri}: shard {self.manifest['shards'][shard]['file']} row "
                            f"{row} is unreadable ({' '.join(str(e).split())})") from None
        data = batch.column(0)[0].as_py()
        h, w = int(batch.column(2)[0].as_py()), int(batch.column(3)[0].as_py())
        if self.manifest["storage"] == "raw":
            c = self.manifest["shape"][0]
            if len(data) != c * h * w:
                raise DataError(f"prepared dataset {self.uri}: image {i} holds {len(data)} bytes, not {c}x{h}x{w}")
            return np.frombuffer(data, dtype=np.uint8).reshape(c, h, w)
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            a = np.asarray(im.convert("L" if im.mode in ("L", "I;16") else "RGB"), dtype=np.uint8)
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    def fitted(self, i: int, resolution: Optional[int], channels: Optional[int]) -> torch.Tensor:
        """Image `i` as uint8 (C, H, W) fitted like every source: center-cropped to a square when it is
        not one, then `fit` (raygan.data.dataset) to `resolution` and `channels`."""
        a = self.image(i)
        h, w = a.shape[1:]
        if h != w:
            s = min(h, w)
            top, left = (h - s) // 2, (w - s) // 2
            a = a[:, top:top + s, left:left + s]
        x = torch.from_numpy(np.array(a, dtype=np.uint8))[None]  # a writable copy
        return fit(x, resolution=resolution, channels=channels)[0]


def read_all(ds: PreparedDataset, indices: List[int], resolution: Optional[int], channels: Optional[int],
             threads: int = 8) -> torch.Tensor:
    """The fitted images at `indices` as one uint8 NCHW tensor, read by a thread pool straight into it (in
    order; peak memory is the tensor, not twice it)."""
    from concurrent.futures import ThreadPoolExecutor

    first = ds.fitted(indices[0], resolution, channels)
    out = torch.empty((len(indices), *first.shape), dtype=torch.uint8)
    out[0] = first

    def put(k: int) -> None:
        x = ds.fitted(indices[k], resolution, channels)
        if tuple(x.shape) != tuple(first.shape):
            raise DataError(f"prepared dataset {ds.uri} holds images of different sizes ({tuple(first.shape)} "
                            f"and {tuple(x.shape)}); pass a resolution, e.g. --set data.resolution=64")
        out[k] = x

    if len(indices) <= 16 or threads <= 1:
        for k in range(1, len(indices)):
            put(k)
    else:
        with ThreadPoolExecutor(max_workers=threads) as ex:
            for _ in ex.map(put, range(1, len(indices))):
                pass
    return out


def split_root(root: PathArg, split: str) -> PathArg:
    """Where a split of the prepared dataset at `root` lives: "train" is `root` itself, any other
    split the prepared dataset `root/<split>` (`raygan data prepare SRC --split test --out DIR/test`)."""
    if split == "train":
        return root
    sub = None if root is None else f"{str(root).rstrip('/')}/{split}"
    if not is_prepared(sub):
        raise DataError(f"the prepared dataset {root} has no {split} split ({sub} is not a prepared dataset): "
                        f"prepare one there (raygan data prepare SRC --split {split} --out {sub}) or set "
                        "eval.reference_split: train")
    return sub


@SOURCES.register("prepared")
def prepared(
    *, root: PathArg = None, split: str = "train", resolution: Optional[int] = None,
    channels: Optional[int] = None, limit: Optional[int] = None, download: bool = False,
) -> ImageDataset:
    """A prepared dataset (`raygan data prepare`) read into memory; `root` is its directory or URI.
    Its split "test" is the prepared dataset `root/test`, when one was written there
    (`raygan data prepare SRC --split test --out DIR/test`)."""
    ds = PreparedDataset.open(split_root(root, split))
    n = len(ds) if limit is None else min(limit, len(ds))
    return ImageDataset(images=read_all(ds, list(range(n)), resolution, channels),
                        labels=ds.labels[:n], num_classes=len(ds.class_names), class_names=ds.class_names,
                        name="prepared", split=split, source=ds.uri,
                        content_hash=ds.content_hash)
