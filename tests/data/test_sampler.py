"""EpochSampler's global cursor: resuming with another world size (or per-rank batch) continues the
same epoch's order with no image skipped or repeated; same world size resumes bit for bit; the
order is the one the (epoch, pos) sampler gave; old {"epoch", "pos"} states still load.
"""
from __future__ import annotations

import io
import json

import pytest
import torch

from raygan.data.sampler import EpochSampler, epoch_seed
from raygan.errors import CheckpointError


def ranks(n, bs, world, seed=5, state=None, drop_last=True):
    out = [EpochSampler(n, bs, seed=seed, rank=r, world_size=world, drop_last=drop_last) for r in range(world)]
    if state is not None:
        for s in out:
            s.load_state_dict(dict(state))
    return out


def step(samplers, k):
    """k batches on every rank -> the indices in the epoch order's positions, and the common state.

    Rank r's j-th index of a batch sits at position cursor + r + world * j of the permutation, so
    interleaving the ranks' batches (rank 0's first, rank 1's first, ...) gives the positions in order.
    """
    seen = []
    for _ in range(k):
        batches = [s.next().tolist() for s in samplers]
        seen += [i for column in zip(*batches) for i in column]
    states = [s.state_dict() for s in samplers]
    assert all(st == states[0] for st in states)  # the cursor is global: every rank holds the same state
    return seen, states[0]


def perm(n, seed, epoch):
    return torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch))).tolist()


def old_rank_batches(n, bs, seed, rank, world, epoch, drop_last=True):
    """The (epoch, pos) sampler's batches for one rank and epoch, written out from its definition."""
    per_rank = n // world
    mine = perm(n, seed, epoch)[rank : per_rank * world : world]
    keep = (per_rank // bs) * bs if drop_last else per_rank
    return [mine[i : min(i + bs, keep)] for i in range(0, keep, bs)]


@pytest.mark.parametrize("n, bs, world, drop_last", [
    (100, 10, 1, True), (100, 10, 2, True), (23, 5, 2, True), (23, 5, 2, False), (61, 4, 3, True),
    (61, 4, 3, False), (50, 7, 2, True),
])
def test_same_order_as_the_epoch_pos_sampler(n, bs, world, drop_last):
    for rank in range(world):
        s = EpochSampler(n, bs, seed=9, rank=rank, world_size=world, drop_last=drop_last)
        for epoch in range(3):
            want = old_rank_batches(n, bs, 9, rank, world, epoch, drop_last)
            got = [s.next().tolist() for _ in want]
            assert got == want and s.epoch == epoch + 1


@pytest.mark.parametrize("n, before, after", [
    (40, (2, 5, 2), (1, 5)),   # 2 ranks x 2 batches of 5, then 1 rank: the 20 others, once each
    (40, (1, 5, 2), (2, 5)),   # 1 rank x 2 batches, then 2 ranks
    (60, (2, 6, 2), (3, 4)),   # the global batch of 12 split 6+6, then 4+4+4
    (60, (3, 4, 3), (2, 6)),
])
def test_another_world_size_continues_the_epoch(n, before, after):
    world0, bs0, k = before
    seen0, state = step(ranks(n, bs0, world0), k)
    assert state == {"epoch": 0, "cursor": k * world0 * bs0, "world_size": world0}
    world1, bs1 = after
    resumed = ranks(n, bs1, world1, state=state)
    rest = (n - state["cursor"]) // (world1 * bs1)
    seen1, end = step(resumed, rest)
    seen = seen0 + seen1
    assert end == {"epoch": 1, "cursor": 0, "world_size": world1}
    assert len(seen) == len(set(seen)) == n  # a full pass, nothing skipped, nothing twice
    assert seen == perm(n, 5, 0)  # and in the epoch's own order
    nxt, _ = step(resumed, 1)  # the next epoch is the one the new world size would draw fresh
    assert nxt == step(ranks(n, bs1, world1, state={"epoch": 1, "cursor": 0}), 1)[0]


def test_tail_shorter_than_a_new_global_batch_ends_the_epoch():
    seen0, state = step(ranks(40, 5, 1), 3)  # 15 of epoch 0 consumed
    two = ranks(40, 5, 2, state=state)
    seen1, end = step(two, 2)  # 15 -> 35; 5 left < 2 x 5: dropped, as at any epoch end
    assert end == {"epoch": 1, "cursor": 0, "world_size": 2}
    assert seen0 + seen1 == perm(40, 5, 0)[:35]
    late = ranks(40, 5, 2, state={"epoch": 0, "cursor": 35, "world_size": 1})  # saved with 5 left
    assert late[0].state_dict() == {"epoch": 1, "cursor": 0, "world_size": 2}


def test_same_world_resume_is_identical():
    straight, _ = step(ranks(50, 4, 3), 9)
    first, state = step(ranks(50, 4, 3), 4)  # epoch 0 has 4 batches: this is at epoch 1, cursor 0
    second, state = step(ranks(50, 4, 3, state=state), 2)
    third, _ = step(ranks(50, 4, 3, state=state), 3)
    assert first + second + third == straight


def test_state_is_plain_ints_json_and_weights_only():
    s = EpochSampler(50, 7, seed=11, rank=1, world_size=2)
    for _ in range(5):
        s.next()
    state = s.state_dict()
    assert json.loads(json.dumps(state)) == state and all(type(v) is int for v in state.values())
    buf = io.BytesIO()
    torch.save({"sampler": state}, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["sampler"] == state


def test_old_epoch_pos_state_loads():
    ref = ranks(50, 7, 2)
    step(ref, 5)  # epoch 1, rank position 14 = what the (epoch, pos) sampler saved
    want, _ = step(ref, 4)
    assert step(ranks(50, 7, 2, state={"epoch": 1, "pos": 14}), 4)[0] == want
    # an old state that says its world size is read with it, here by one rank
    one = ranks(50, 7, 1, state={"epoch": 1, "pos": 14, "world_size": 2})
    assert one[0].state_dict() == {"epoch": 1, "cursor": 28, "world_size": 1}
    assert one[0].next().tolist() == perm(50, 5, 1)[28:35]
    for bad in ({"epoch": 1, "pos": 25}, {"epoch": 1}, {"epoch": "x", "pos": 0}, None, [1, 2],
                {"epoch": 0, "cursor": 3, "world_size": 0}):
        with pytest.raises(CheckpointError):
            ranks(50, 7, 2, state=None)[0].load_state_dict(bad)
