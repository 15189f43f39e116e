"""CycleGAN pieces: losses against hand-computed values, the history pool's documented mix and
its exact resume, the linear lr decay in images seen."""
import io

import pytest
import torch

from raygan.errors import CheckpointError, ConfigError
from raygan.tasks.translate.cycle import (
    ImagePool,
    cycle_loss,
    generator_objective,
    identity_loss,
    lr_factor,
)


# ----------------------------------------------------------------------------- losses


def test_cycle_and_identity_losses_by_hand():
    rec = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    real = torch.tensor([[[[0.0, 2.0], [5.0, 1.0]]]])
    # |1-0| + |2-2| + |3-5| + |4-1| = 6 over 4 pixels
    assert cycle_loss(rec, real).item() == pytest.approx(1.5)
    same = torch.tensor([[-1.0, 0.5], [0.25, 1.0]])
    real2 = torch.tensor([[1.0, 0.5], [-0.25, 0.0]])
    # 2 + 0 + 0.5 + 1 = 3.5 over 4
    assert identity_loss(same, real2).item() == pytest.approx(0.875)
    rec.requires_grad_(True)
    cycle_loss(rec, real).backward()
    # d/dx mean|x - t| = sign(x - t) / N
    assert rec.grad.flatten().tolist() == [0.25, 0.0, -0.25, 0.25]


def test_generator_objective_uses_the_reference_weights():
    t = torch.tensor
    # 1 + 10 * (0.1 + 0.2) + 0.5 * 10 * (0.3 + 0.4) = 1 + 3 + 3.5
    assert generator_objective(t(1.0), t(0.1), t(0.2), t(0.3), t(0.4)).item() == pytest.approx(7.5)
    assert generator_objective(t(1.0), t(0.1), t(0.2), t(0.3), t(0.4), lambda_identity=0).item() == pytest.approx(4.0)
    assert generator_objective(t(1.0), t(0.1), t(0.2)).item() == pytest.approx(4.0)
    assert generator_objective(t(0.0), t(1.0), t(1.0), t(1.0), t(1.0), lambda_cycle=5).item() == pytest.approx(15.0)


# ----------------------------------------------------------------------------- lr decay


@pytest.mark.parametrize(
    "nimg,total,frac,want",
    [
        (0, 1000, 0.5, 1.0), (500, 1000, 0.5, 1.0), (750, 1000, 0.5, 0.5), (900, 1000, 0.5, 0.2),
        (1000, 1000, 0.5, 0.0), (1500, 1000, 0.5, 0.0), (250, 1000, 0.0, 0.75),
        (1000, 1000, 1.0, 1.0), (800, 1000, 0.6, 0.5),
    ],
)
def test_lr_factor(nimg, total, frac, want):
    assert lr_factor(nimg, total, frac) == pytest.approx(want)


def test_lr_factor_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="positive"):
        lr_factor(0, 0)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        lr_factor(0, 100, 1.5)


# ----------------------------------------------------------------------------- image pool


def tagged(ids):
    """Images whose every pixel is their id, so where a returned image came from is visible."""
    ids = torch.as_tensor(ids, dtype=torch.float32)
    return ids.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def ids_of(images):
    return images[:, 0, 0, 0].round().long().tolist()


def reference_pool(size, count, stored, batch_ids, u, slots):
    """The reference loop (junyanz ImagePool.query), one image at a time, same draws."""
    stored, out, k = list(stored), [], 0
    for i in batch_ids:
        if count < size:
            stored.append(i)
            count += 1
            out.append(i)
            continue
        if u[k] > 0.5:
            out.append(stored[slots[k]])
            stored[slots[k]] = i
        else:
            out.append(i)
        k += 1
    return out, count, stored


def test_size_zero_is_pass_through():
    pool = ImagePool(0)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    state = torch.get_rng_state()
    y = pool.query(x)
    assert torch.equal(y, x) and not y.requires_grad
    assert torch.equal(torch.get_rng_state(), state)  # no draws
    assert len(pool) == 0 and pool.state_dict()["count"] == 0


def test_first_fifty_pass_through_then_about_half_from_history():
    torch.manual_seed(0)
    pool = ImagePool(50)
    for start in range(0, 50, 10):
        ids = list(range(start, start + 10))
        assert ids_of(pool.query(tagged(ids))) == ids
    assert len(pool) == 50
    seen, from_history = set(range(50)), []
    for start in range(50, 2050, 8):
        ids = list(range(start, start + 8))
        inside = set(ids_of(pool.images))
        out = ids_of(pool.query(tagged(ids)))
        for i, o in zip(ids, out):
            if o != i:
                assert o < i and (o in seen or o in ids)  # an image inserted earlier ...
                assert o in inside or o in ids  # ... that was in the pool (or this batch)
                from_history.append(o)
        seen.update(ids)
        assert len(set(ids_of(pool.images))) == 50  # a swap replaces, never duplicates
    frac = len(from_history) / 2000
    assert 0.45 < frac < 0.55  # p = 0.5, n = 2000: std 0.011
    assert len(set(from_history)) == len(from_history)  # once returned, an image leaves the pool


@pytest.mark.parametrize("size,batch", [(5, 32), (50, 7), (3, 1)])
def test_batched_pool_equals_the_sequential_reference(size, batch):
    """Large batches on a small pool hit the same slot twice within one batch."""
    torch.manual_seed(1)
    pool, count, stored, next_id = ImagePool(size), 0, [], 0
    for _ in range(12):
        ids = list(range(next_id, next_id + batch))
        next_id += batch
        rng = torch.get_rng_state()
        out = ids_of(pool.query(tagged(ids)))
        after = torch.get_rng_state()
        torch.set_rng_state(rng)  # replay the pool's draws for the reference
        m = batch - min(batch, size - count)
        u, slots = torch.rand(m).tolist(), torch.randint(size, (m,)).tolist()
        assert torch.equal(torch.get_rng_state(), after)
        want, count, stored = reference_pool(size, count, stored, ids, u, slots)
        assert out == want
        assert ids_of(pool.images[:count]) == stored


def roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("warm_batches", [0, 3, 20])  # empty, partly filled, full
def test_state_dict_round_trip_continues_identically(warm_batches):
    torch.manual_seed(2)
    pool = ImagePool(50)
    for b in range(warm_batches):
        pool.query(torch.randn(4, 3, 4, 4) + b)
    saved, rng = roundtrip(pool.state_dict()), torch.get_rng_state()
    assert set(saved) == {"size", "count", "images"} and saved["count"] == min(50, 4 * warm_batches)
    later = [torch.randn(4, 3, 4, 4) for _ in range(15)]
    torch.set_rng_state(rng)
    first = [pool.query(x) for x in later]
    resumed = ImagePool(50)
    resumed.load_state_dict(saved)
    torch.set_rng_state(rng)
    second = [resumed.query(x) for x in later]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert torch.equal(pool.images, resumed.images) and len(pool) == len(resumed) == 50


def test_pool_follows_device_and_dtype_and_rejects_a_wrong_checkpoint():
    pool = ImagePool(4)
    pool.query(torch.ones(2, 1, 2, 2, dtype=torch.float64))
    state = pool.state_dict()
    assert state["images"].dtype == torch.float64 and state["images"].shape == (2, 1, 2, 2)
    out = pool.query(torch.zeros(3, 1, 2, 2))  # new dtype: the buffer follows it
    assert out.dtype == torch.float32 and pool.images.dtype == torch.float32
    with pytest.raises(CheckpointError, match="size 4"):
        ImagePool(50).load_state_dict(state)
    with pytest.raises(ValueError, match="holds"):
        pool.query(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ConfigError):
        ImagePool(-1)
