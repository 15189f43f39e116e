"""Deterministic, resumable, rank-aware batch order over an in-memory dataset.

Each epoch is one permutation `perm` of range(n), drawn from
`torch.Generator().manual_seed(seed * 1_000_003 + epoch)` (a stable mix; Python's `hash` is
salted per process). The ranks walk it together: the state is a global `cursor`, the length of
the prefix of `perm` that all ranks together have consumed, and rank r's next batch is

    perm[cursor + r : cursor + world_size * batch_size : world_size]

after which every rank advances the cursor by world_size * batch_size. So rank r takes positions
r, r + world_size, ... of each epoch's permutation, each index is seen at most once per epoch
across ranks, and after k batches the ranks have consumed exactly perm[0 : k * world_size *
batch_size] whatever world size(s) did it.

Batches never span two epochs: with drop_last=True (the default) the epoch ends when fewer than
world_size * batch_size positions remain (floor(n / (world_size * batch_size)) batches from a
fresh epoch; the tail dropped is a different, random handful of samples each epoch), so every
batch has exactly batch_size indices; with drop_last=False the last batch of an epoch takes
min(batch_size, (n - cursor) // world_size) indices per rank (every rank the same count) and the
epoch ends when fewer than world_size positions remain.

State: {"epoch", "cursor", "world_size"}, plain ints (JSON-able, loadable with
`torch.load(weights_only=True)`). Loading it with the same world size and batch size makes the
following batches exactly those that would have come next. Loading it with another world size
(or batch size) continues the same epoch's permutation from the cursor: no image of the epoch
is skipped or repeated (if fewer than one new global batch remains, that tail is dropped as at
any epoch end). The pre-cursor form {"epoch", "pos"} (pos = this rank's count of indices handed
out this epoch) is still accepted: cursor = pos * world_size, with "world_size" taken from the
state when present, else the sampler's own world size (an old checkpoint does not say it, and
the old code could only resume exactly at the same world size).
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, Mapping, Optional

import torch

from raygan.errors import CheckpointError, ConfigError

_SEED_MIX = 1_000_003


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed for one epoch: seed * 1_000_003 + epoch, folded into 64 bits."""
    return (int(seed) * _SEED_MIX + int(epoch)) % (1 << 64)


class EpochSampler:
    """Yields LongTensors of dataset indices, batch_size per rank, epoch after epoch."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"sampler: rank {rank} is not in 0..{world_size - 1}")
        if batch_size < 1:
            raise ConfigError(f"sampler: batch_size must be positive, got {batch_size}")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.per_rank = self.n // self.world_size
        if self.per_rank < self._need:
            raise ConfigError(
                f"sampler: {self.n} samples over {self.world_size} rank(s) leave {self.per_rank} "
                f"per rank, fewer than one batch of {self.batch_size}"
            )
        self._epoch = 0
        self._cursor = 0
        self._perm_epoch: Optional[int] = None
        self._perm: Optional[torch.Tensor] = None

    # ------------------------------------------------------------------ sizes

    @property
    def _need(self) -> int:
        """Indices per rank a batch must have (drop_last: a full batch; else at least one)."""
        return self.batch_size if self.drop_last else 1

    @property
    def batches_per_epoch(self) -> int:
        """Batches in an epoch started from its beginning."""
        if self.drop_last:
            return self.per_rank // self.batch_size
        return -(-self.per_rank // self.batch_size)

    @property
    def samples_per_epoch(self) -> int:
        """Indices this rank sees in an epoch started from its beginning."""
        if self.drop_last:
            return self.batches_per_epoch * self.batch_size
        return self.per_rank

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def cursor(self) -> int:
        """Positions of this epoch's permutation consumed by all ranks together."""
        return self._cursor

    # ------------------------------------------------------------------ order

    def permutation(self, epoch: int) -> torch.Tensor:
        """The whole order of `epoch` (length n), shared by every rank."""
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            self._perm = torch.randperm(self.n, generator=g)
            self._perm_epoch = epoch
        assert self._perm is not None
        return self._perm

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """This rank's indices for `epoch` from its beginning, in order (length n // world_size)."""
        w = self.world_size
        return self.permutation(epoch)[self.rank : self.per_rank * w : w]

    def _fits(self, cursor: int) -> bool:
        """Whether one more batch fits in the epoch after `cursor` positions were consumed."""
        return self.n - cursor >= self.world_size * self._need

    def next(self) -> torch.Tensor:
        """The next batch of indices (int64, CPU)."""
        w = self.world_size
        take = min(self.batch_size, (self.n - self._cursor) // w)  # per rank; < batch only if not drop_last
        stop = self._cursor + w * take
        batch = self.permutation(self._epoch)[self._cursor + self.rank : stop : w].clone()
        self._cursor = stop
        if not self._fits(self._cursor):
            self._epoch, self._cursor = self._epoch + 1, 0
        return batch

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        return self.next()

    # ------------------------------------------------------------------ state

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self._epoch, "cursor": self._cursor, "world_size": self.world_size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Accepts {"epoch", "cursor", "world_size"} and the old {"epoch", "pos"} (see the module)."""
        form = "{'epoch': int, 'cursor': int, 'world_size': int} or {'epoch': int, 'pos': int}"
        try:
            epoch = int(state["epoch"])
            saved_world = int(state.get("world_size", self.world_size))
            old_pos = None if "cursor" in state else int(state["pos"])
            cursor = int(state["cursor"]) if old_pos is None else old_pos * saved_world
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CheckpointError(f"sampler state must be {form}, got {state!r}") from None
        if epoch < 0 or saved_world < 1 or not 0 <= cursor < self.n or (
            old_pos is not None and not 0 <= old_pos < self.n // saved_world
        ):
            raise CheckpointError(
                f"sampler state {dict(state)!r} does not fit a dataset of {self.n} samples "
                "(was the dataset changed?)"
            )
        if not self._fits(cursor):  # under this world/batch size not one more batch fits: epoch ends
            epoch, cursor = epoch + 1, 0
        self._epoch, self._cursor = epoch, cursor
