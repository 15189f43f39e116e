"""Training on a prepared dataset without holding it in memory: read by index, ahead of the step.

    data = load_training_data("prepared", root="s3://bucket/faces-256", resolution=256, stream=None)
    data.read_ahead(sampler)           # a StreamedDataset: decode the next batches in threads
    x = data.images[sampler.next()]    # uint8 (B, C, H, W) on data's device, as an ImageDataset gives

`StreamedDataset` looks like an ImageDataset to a task (`images[idx]`, `labels`, `take`,
`to(device)`), but `images[idx]` reads those rows from the shards (raygan.data.prepared) and
fits each image by the same rule as the in-memory path, so both give bit-identical batches.
Only labels (8 bytes an image) live in memory. The sampler (raygan.data.sampler) is
deterministic, so the batches that come next are known: `read_ahead` keeps `depth` of them
in flight on a thread pool (pyarrow reads and PIL decodes release the GIL); a batch asked for
that is not the one predicted (after a resume) is read at once and the queue refilled. No
randomness lives here: augmentation stays in the task, so exact resume and DDP = one process
still hold, and each rank reads only its own indices.

Which path: `stream=None` streams a prepared dataset whose fitted pixels exceed
STREAM_THRESHOLD_BYTES (1 GiB: e.g. 22k RGB images at 128 px, 5.5k at 256 px) and loads a smaller
one into memory (faster to index, on the GPU when training there); `data.stream: true/false`
overrides. Any other source is loaded into memory.
"""
from __future__ import annotations

import copy
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, List, Optional, Tuple, Union

import torch

from raygan.data.dataset import ImageDataset
from raygan.data.prepared import PreparedDataset, is_prepared, split_root
from raygan.data.sources import PathArg, load_dataset

STREAM_THRESHOLD_BYTES = 1 << 30
READ_THREADS = 4
READ_AHEAD = 4  # batches in flight


def upcoming(sampler, depth: int) -> List[torch.Tensor]:
    """The next `depth` index batches `sampler` will give, without moving it (a copy's state is
    what comes next; it shares no mutable state)."""
    ahead = copy.copy(sampler)
    return [ahead.next() for _ in range(depth)]


class _Images:
    """`images[idx]` of a StreamedDataset: the fitted uint8 images at `idx`, on the dataset's device."""

    def __init__(self, owner: "StreamedDataset"):
        self.owner = owner

    def __getitem__(self, idx: Any) -> torch.Tensor:
        return self.owner.batch(idx)

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        return (len(self.owner), *self.owner.image_shape)

    dtype = torch.uint8

    @property
    def device(self) -> torch.device:
        return self.owner.device


class StreamedDataset:
    def __init__(self, ds: PreparedDataset, resolution: Optional[int], channels: Optional[int],
                 index: Optional[torch.Tensor] = None, device: Union[str, torch.device] = "cpu",
                 source: Optional[str] = None, threads: int = READ_THREADS, depth: int = READ_AHEAD):
        self.ds, self.resolution_arg, self.channels_arg = ds, resolution, channels
        self.index = torch.arange(len(ds)) if index is None else index.cpu().to(torch.int64)
        self._device = torch.device(device)
        self.labels = ds.labels[self.index].to(self._device)
        self.class_names = ds.class_names
        self.num_classes = len(self.class_names)
        self.name, self.split, self.content_hash = "prepared", "train", ds.content_hash
        self.source = source or f"{ds.uri} (streamed)"
        self.threads, self.depth = max(1, int(threads)), max(0, int(depth))
        self._pool: Optional[ThreadPoolExecutor] = None
        self._sampler = None
        self._queue: List[Tuple[torch.Tensor, Future]] = []
        first = ds.fitted(int(self.index[0]), resolution, channels)
        self.image_shape = tuple(int(v) for v in first.shape)
        self.images = _Images(self)

    # ------------------------------------------------------------------ what an ImageDataset has
    def __len__(self) -> int:
        return int(self.index.numel())

    @property
    def channels(self) -> int:
        return int(self.image_shape[0])

    @property
    def resolution(self) -> int:
        return int(self.image_shape[1])

    @property
    def device(self) -> torch.device:
        return self._device

    def _like(self, index: torch.Tensor, source: str) -> "StreamedDataset":
        return StreamedDataset(self.ds, self.resolution_arg, self.channels_arg, index, self._device, source,
                               self.threads, self.depth)

    def to(self, device: Union[str, torch.device], non_blocking: bool = False) -> "StreamedDataset":
        if torch.device(device) == self._device:
            return self
        return StreamedDataset(self.ds, self.resolution_arg, self.channels_arg, self.index, device, self.source,
                               self.threads, self.depth)

    def head(self, n: Optional[int]) -> "StreamedDataset":
        if n is None or n >= len(self):
            return self
        return self._like(self.index[:n], self.source)

    def take(self, indices: torch.Tensor, what: str) -> "StreamedDataset":
        indices = indices.cpu().to(torch.int64)
        return self._like(self.index[indices], f"{self.source} [{what}: {len(indices)} of {len(self)}]")

    # ------------------------------------------------------------------ reading
    def _read(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.index[idx].tolist()
        pool = self._executor()
        images = list(pool.map(lambda i: self.ds.fitted(i, self.resolution_arg, self.channels_arg), rows))
        out = torch.stack(images)
        return out.pin_memory() if self._device.type == "cuda" else out

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="raygan-read")
        return self._pool

    def read_ahead(self, sampler, depth: Optional[int] = None) -> None:
        """Follow `sampler` (an EpochSampler over this dataset): the next `depth` batches it will give are
        read in the background. Changes nothing about which batches come."""
        self._sampler = sampler
        if depth is not None:
            self.depth = max(0, int(depth))
        self._queue.clear()

    def _refill(self) -> None:
        if self._sampler is None or self.depth == 0:
            return
        for nxt in upcoming(self._sampler, self.depth)[len(self._queue):]:
            # the read runs in the pool; pool.map inside would deadlock a full pool, so read rows directly
            self._queue.append((nxt, self._executor().submit(self._read_direct, nxt)))

    def _read_direct(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.index[idx].tolist()
        out = torch.stack([self.ds.fitted(i, self.resolution_arg, self.channels_arg) for i in rows])
        return out.pin_memory() if self._device.type == "cuda" else out  # so the copy to the GPU is async

    def batch(self, idx: Any) -> torch.Tensor:
        if isinstance(idx, slice):
            idx = torch.arange(len(self))[idx]
        idx = torch.as_tensor(idx).cpu().to(torch.int64).reshape(-1)
        x = None
        while self._queue:
            want, fut = self._queue.pop(0)
            if torch.equal(want, idx):
                x = fut.result()
                break
            fut.cancel()
            self._queue.clear()  # off the predicted path (a resume): start again from here
        if x is None:
            x = self._read(idx)
        self._refill()
        return x.to(self._device, non_blocking=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def fitted_bytes(ds: PreparedDataset, resolution: Optional[int], channels: Optional[int],
                 limit: Optional[int] = None) -> int:
    """The in-memory size of the dataset fitted to `resolution` and `channels` (what the threshold compares)."""
    shape = ds.manifest.get("shape") or [ds.channels, resolution or 0, resolution or 0]
    c = channels or shape[0]
    side = resolution or shape[1]
    n = len(ds) if limit is None else min(limit, len(ds))
    return int(n) * int(c) * int(side) * int(side)


def load_training_data(name: str, *, root: PathArg = None, resolution: Optional[int] = None,
                       channels: Optional[int] = None, limit: Optional[int] = None, download: bool = False,
                       stream: Optional[bool] = None, split: str = "train") -> Union[ImageDataset, StreamedDataset]:
    """A task's train split (or another `split`, e.g. a FID reference): a prepared dataset streamed or
    in memory (see the module doc); any other source in memory (`load_dataset`). `name: folder` with
    a root that is a prepared dataset reads it as one."""
    if name == "folder" and is_prepared(root):
        name = "prepared"
    if name != "prepared":
        if stream:
            from raygan.errors import ConfigError

            raise ConfigError(f"config: data.stream: only a prepared dataset streams (data.name: prepared); "
                              f"'{name}' is loaded into memory (raygan data prepare makes one from it)")
        return load_dataset(name, root=root, split=split, resolution=resolution, channels=channels,
                            limit=limit, download=download)
    ds = PreparedDataset.open(split_root(root, split))
    if stream is None:
        stream = fitted_bytes(ds, resolution, channels, limit) > STREAM_THRESHOLD_BYTES
    if not stream:
        return load_dataset("prepared", root=root, split=split, resolution=resolution, channels=channels,
                            limit=limit)
    n = len(ds) if limit is None else min(limit, len(ds))
    return StreamedDataset(ds, resolution, channels, index=torch.arange(n))


def check_data_hash(state: Any, data: Any) -> None:
    """At resume: a prepared dataset replaced or changed under the run (its content hash differs from the
    one the checkpoint recorded) is a CheckpointError, one line."""
    from raygan.errors import CheckpointError

    saved, now = (state or {}).get("data_hash"), getattr(data, "content_hash", None)
    if saved is not None and now is not None and saved != now:
        raise CheckpointError(f"the prepared dataset {data.source} changed since this run's checkpoint (content "
                              f"hash {now[:12]}, the checkpoint was trained on {str(saved)[:12]}); resume on the "
                              "same data, or start a new run")
