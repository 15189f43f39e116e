"""Patch training on a prepared dataset without holding it in memory: whole images read by index, ahead of the step.

    images = load_patches("prepared", root="photos-native", max_side=1024, channels=3)  # patch_sources
    images.check(128)                                    # sizes from the height/width columns: nothing decoded
    images.read_ahead(sampler)                           # a StreamedPatches: the next batches' images in threads
    x = images.crops(sampler.next(), 128, generator)     # uint8 (n, C, 128, 128) on the CPU

`prepared_patches` gives a prepared dataset's images for patch training. One kept at native size
(`raygan data prepare --native`) yields its images whole, each decoded from its PNG, channels
fitted and its longer side scaled down to `max_side` (raygan.data.crops.shrink); a fitted one yields
its images fitted to `max_side` px. Their bytes after that (C x H x W each, from the shards' height
and width columns, no image decoded) decide the path, as for whole-image training
(raygan.data.streamed): over STREAM_THRESHOLD_BYTES the dataset is streamed (`StreamedPatches`),
else read whole into memory; `data.stream: true/false` overrides.

`StreamedPatches` is a PatchImages whose `images[i]` reads image i on demand. `crops(idx, ...)`
takes the images `idx` selects and crops them with `crop_batch`, the same operation and the same
draws from the task's generator as the in-memory list, so the batches are bit-identical and exact
resume and DDP still hold. The sampler is deterministic: `read_ahead(sampler)` keeps the images of
its next `depth` index batches decoding on a thread pool (pyarrow reads and PIL decodes release the
GIL); a batch asked for that was not predicted (after a resume) is read at once. Only the whole
images of the batches in flight are in memory, plus the labels and sizes (a few bytes an image).
The crops come back on the CPU (pinned when the target device is a GPU); the task moves them.
"""
from __future__ import annotations

import copy
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import torch

from raygan.data.crops import PatchImages, crop_batch, index_list, shrink, shrunk_size
from raygan.data.dataset import fit_channels
from raygan.data.prepared import PreparedDataset, split_root
from raygan.data.streamed import upcoming
from raygan.errors import DataError

READ_THREADS = 4
READ_AHEAD = 4  # batches in flight


def stored_sizes(ds: PreparedDataset, n: int) -> np.ndarray:
    """int64 (n, 2): (height, width) of the first n stored images, read from the shards' height and width
    columns alone (no image bytes read, nothing decoded)."""
    import pyarrow as pa

    opts = pa.ipc.IpcReadOptions(included_fields=[2, 3])  # image, label, height, width, name
    parts, have = [], 0
    for s in ds.manifest["shards"]:
        if have >= n:
            break
        try:
            with ds.fs.open_input_file(f"{ds.root}/{s['file']}") as f:
                t = pa.ipc.open_file(f, options=opts).read_all()
        except (OSError, pa.ArrowInvalid) as e:
            raise DataError(f"prepared dataset {ds.uri}: shard {s['file']} is unreadable "
                            f"({' '.join(str(e).split())})") from None
        if t.num_rows != s["count"]:
            raise DataError(f"prepared dataset {ds.uri}: shard {s['file']} holds {t.num_rows} images, the "
                            f"manifest says {s['count']}; prepare it again (raygan data prepare ... --force)")
        parts.append(np.stack([t.column("height").to_numpy(), t.column("width").to_numpy()], 1).astype(np.int64))
        have += t.num_rows
    return np.concatenate(parts)[:n]


def image_reader(ds: PreparedDataset, channels: Optional[int], max_side: int) -> Callable[[int], torch.Tensor]:
    """Image i as patch training holds it: uint8 (C, H, W), whole (native: channels fitted, longer side
    at most max_side) or fitted square to max_side (a fitted dataset), as the in-memory paths read it."""
    if ds.manifest["storage"] != "png":
        return lambda i: ds.fitted(i, max_side, channels)
    return lambda i: shrink(fit_channels(torch.from_numpy(np.array(ds.image(i)))[None], channels)[0], max_side)


class LazyImages:
    """`images` of a StreamedPatches: `images[i]` reads image i (nothing is kept); `len(images)`."""

    def __init__(self, read: Callable[[int], torch.Tensor], n: int):
        self.read, self.n = read, int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i) -> torch.Tensor:
        i = int(i)
        if not 0 <= i < self.n:
            raise IndexError(f"image {i} of {self.n}")
        return self.read(i)


class StreamedPatches(PatchImages):
    """A prepared dataset's images for patch training, read by index ahead of the step (module doc)."""

    def __init__(self, ds: PreparedDataset, max_side: int, channels: Optional[int], sizes: np.ndarray,
                 threads: int = READ_THREADS, depth: int = READ_AHEAD):
        n = int(len(sizes))
        super().__init__(LazyImages(image_reader(ds, channels, max_side), n), ds.labels[:n], None,
                         class_names=ds.class_names, content_hash=ds.content_hash)
        self.ds, self.sizes = ds, sizes
        self.threads, self.depth = max(1, int(threads)), max(0, int(depth))
        self.target = torch.device("cpu")  # where the task trains: crops are pinned for a GPU
        self._pool: Optional[ThreadPoolExecutor] = None
        self._sampler = None
        self._queue: List[Tuple[List[int], List[Future]]] = []
        self._channels = int(self.images[0].shape[0])

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return self._channels

    def size(self, i: int) -> tuple:
        return tuple(int(v) for v in self.sizes[i])

    def smallest(self) -> Tuple[int, int]:
        sides = self.sizes.min(1)
        i = int(np.argmin(sides))
        return i, int(sides[i])

    def to(self, device: Union[str, torch.device]) -> "StreamedPatches":
        """Stays lazy: the labels move, the images are read on the CPU and their crops moved by the task."""
        out = copy.copy(self)
        out.labels, out.target = self.labels.to(device), torch.device(device)
        out._pool, out._sampler, out._queue = None, None, []
        return out

    # ------------------------------------------------------------------ reading
    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="raygan-patches")
        return self._pool

    def _submit(self, rows: List[int]) -> List[Future]:
        return [self._executor().submit(self.images.__getitem__, i) for i in rows]

    def read_ahead(self, sampler, depth: Optional[int] = None) -> None:
        """Follow `sampler` (an EpochSampler over these images): the images of the next `depth` batches
        it will give are read in the background. Changes nothing about which batches come."""
        self._sampler = sampler
        if depth is not None:
            self.depth = max(0, int(depth))
        self._drop()

    def _drop(self) -> None:
        for _, futs in self._queue:
            for f in futs:
                f.cancel()
        self._queue.clear()

    def _refill(self) -> None:
        if self._sampler is None or self.depth == 0:
            return
        for nxt in upcoming(self._sampler, self.depth)[len(self._queue):]:
            rows = index_list(nxt)
            self._queue.append((rows, self._submit(rows)))

    def batch(self, idx) -> List[torch.Tensor]:
        """The whole images `idx` selects: the predicted batch read ahead, or read now."""
        rows = index_list(idx)
        futs = None
        while self._queue:
            want, f = self._queue.pop(0)
            if want == rows:
                futs = f
                break
            for x in f:
                x.cancel()
            self._drop()  # off the predicted path (a resume): start again from here
        if futs is None:
            futs = self._submit(rows)
        images = [f.result() for f in futs]
        self._refill()
        return images

    def crops(self, idx, size: int, generator: Optional[torch.Generator]) -> torch.Tensor:
        out = crop_batch(self.batch(idx), size, generator)
        return out.pin_memory() if self.target.type == "cuda" else out  # so the copy to the GPU is async

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def prepared_patches(root, split: str, channels: Optional[int], max_side: int, limit: Optional[int],
                     stream: Optional[bool]) -> PatchImages:
    """A prepared dataset's images for patch training, streamed or in memory (module doc)."""
    from raygan.data import streamed

    ds = PreparedDataset.open(split_root(root, split))
    n = len(ds) if limit is None else min(limit, len(ds))
    native = ds.manifest["storage"] == "png"
    if native:
        sizes = np.array([shrunk_size(h, w, max_side) for h, w in stored_sizes(ds, n).tolist()],
                         dtype=np.int64).reshape(n, 2)
    else:
        sizes = np.full((n, 2), max_side, dtype=np.int64)
    if stream is None:
        c = channels or (int(ds.manifest["shape"][0]) if not native else int(ds.image(0).shape[0]))
        stream = c * int((sizes[:, 0] * sizes[:, 1]).sum()) > streamed.STREAM_THRESHOLD_BYTES
    if stream:
        return StreamedPatches(ds, max_side, channels, sizes)
    if native:
        read = image_reader(ds, channels, max_side)
        return PatchImages([read(i) for i in range(n)], ds.labels[:n], None, class_names=ds.class_names,
                           content_hash=ds.content_hash)
    from raygan.data.prepared import read_all

    return PatchImages(read_all(ds, list(range(n)), max_side, channels), ds.labels[:n], None,
                       class_names=ds.class_names, content_hash=ds.content_hash)
