"""Deterministic, resumable, rank-aware batch order over an in-memory dataset.

Each epoch is one permutation of range(n), drawn from
`torch.Generator().manual_seed(seed * 1_000_003 + epoch)` (a stable mix; Python's `hash` is
salted per process). Rank r takes positions r, r + world_size, ... of it, truncated to
n // world_size so every rank has the same count; across ranks each index is therefore seen at
most once per epoch, and all of them when world_size divides n.

Batches never span two epochs: with drop_last=True (the default) the rank's last partial batch
of each epoch is dropped (a different, random handful of samples each epoch), so every batch has
exactly batch_size indices; with drop_last=False it is yielded short.

The state is (epoch, pos): pos is how many of this rank's indices for `epoch` have been handed
out. Loading a state makes the following batches exactly those that would have come next.
"""
from __future__ import annotations

from typing import Dict, Iterator, Optional

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
        need = self.batch_size if self.drop_last else 1
        if self.per_rank < need:
            raise ConfigError(
                f"sampler: {self.n} samples over {self.world_size} rank(s) leave {self.per_rank} "
                f"per rank, fewer than one batch of {self.batch_size}"
            )
        self._epoch = 0
        self._pos = 0
        self._cache_epoch: Optional[int] = None
        self._cache: Optional[torch.Tensor] = None

    # ------------------------------------------------------------------ sizes

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return -(-self.per_rank // self.batch_size)

    @property
    def samples_per_epoch(self) -> int:
        """Indices this rank sees per epoch (after dropping the partial batch)."""
        if self.drop_last:
            return self.batches_per_epoch * self.batch_size
        return self.per_rank

    @property
    def epoch(self) -> int:
        return self._epoch

    # ------------------------------------------------------------------ order

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """This rank's indices for `epoch`, in order (length n // world_size)."""
        if self._cache_epoch != epoch:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            perm = torch.randperm(self.n, generator=g)
            self._cache = perm[self.rank : self.per_rank * self.world_size : self.world_size]
            self._cache_epoch = epoch
        assert self._cache is not None
        return self._cache

    def next(self) -> torch.Tensor:
        """The next batch of indices (int64, CPU)."""
        idx = self.epoch_indices(self._epoch)
        batch = idx[self._pos : self._pos + self.batch_size].clone()
        self._pos += int(batch.numel())
        if self._pos >= self.samples_per_epoch:
            self._epoch += 1
            self._pos = 0
        return batch

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        return self.next()

    # ------------------------------------------------------------------ state

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self._epoch, "pos": self._pos}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        try:
            epoch, pos = int(state["epoch"]), int(state["pos"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(
                f"sampler state must be {{'epoch': int, 'pos': int}}, got {state!r}"
            ) from None
        if epoch < 0 or not 0 <= pos < self.samples_per_epoch:
            raise CheckpointError(
                f"sampler state epoch={epoch} pos={pos} does not fit {self.samples_per_epoch} "
                "samples per epoch (was the batch size, world size or dataset changed?)"
            )
        self._epoch, self._pos = epoch, pos
