import io
import math

import pytest
import torch

from raygan.ada import OPS, PIPELINES, AdaptiveAugment, parse_ops
from raygan.errors import ConfigError


def images(n=8, c=1, r=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, r, r, generator=g) * 2 - 1


def blob(n, r=28, cx=0.0, cy=0.0, sigma=2.0):
    """n copies of a Gaussian blob centred (cx, cy) px from the image centre, background -1."""
    u = torch.arange(r, dtype=torch.float32) - (r - 1) / 2
    g = torch.exp(-((u.view(1, -1) - cx) ** 2 + (u.view(-1, 1) - cy) ** 2) / (2 * sigma ** 2))
    return (2 * g - 1).expand(n, 1, r, r).clone()


def centroid(x):
    r = x.shape[-1]
    w = (x[:, 0] + 1) / 2
    u = torch.arange(r, dtype=torch.float32) - (r - 1) / 2
    m = w.sum((1, 2))
    return (w * u.view(1, 1, -1)).sum((1, 2)) / m, (w * u.view(1, -1, 1)).sum((1, 2)) / m


def fixed(ops, p=1.0):
    return AdaptiveAugment(target=None, p=p, ops=ops)


def test_ops_parsing():
    assert parse_ops("bgc") == OPS and parse_ops("blit") == ("xflip", "rotate90", "xint")
    assert parse_ops("rotate, xflip") == ("xflip", "rotate") == parse_ops(["rotate", "xflip"])  # pipeline order
    assert set(PIPELINES) == {"blit", "geom", "color", "bg", "bgc"}


@pytest.mark.parametrize("c", [1, 3])
def test_p0_is_the_identity_and_draws_do_not_depend_on_p(c):
    x = images(6, c)
    torch.manual_seed(5)
    out = fixed("bgc", p=0.0)(x)
    after0 = torch.rand(3)
    assert torch.equal(out, x)  # bitwise
    torch.manual_seed(5)
    fixed("bgc", p=1.0)(x)
    assert torch.equal(torch.rand(3), after0)  # same RNG stream at any p: resume stays exact


@pytest.mark.parametrize("c", [1, 3, 4])
def test_p1_changes_images_and_gradients_flow(c):
    x = images(6, c).requires_grad_(True)
    torch.manual_seed(0)
    out = fixed("bgc")(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert (out - x).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every image changed
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and (x.grad.abs().sum(dim=(1, 2, 3)) > 0).all()


def test_xflip_mirrors_half_the_images():
    x = images(64)
    torch.manual_seed(1)
    out = fixed("xflip")(x)
    same = (out - x).abs().amax(dim=(1, 2, 3)) < 1e-5
    flipped = (out - x.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert (same ^ flipped).all()
    assert 20 < int(flipped.sum()) < 44


def test_rotate90_is_rot90():
    x = images(64)
    torch.manual_seed(2)
    out = fixed("rotate90")(x)
    err = torch.stack([(out - torch.rot90(x, k, dims=(-2, -1))).abs().amax(dim=(1, 2, 3)) for k in range(4)], 1)
    assert (err.min(1).values < 1e-5).all()
    assert set(err.argmin(1).tolist()) == {0, 1, 2, 3}


def test_xint_shifts_by_whole_pixels_within_range():
    x = images(16)
    torch.manual_seed(3)
    out = fixed("xint")(x)
    m = 4  # max shift round(0.125 * 28) = 4; compare away from the reflected border
    shifts = []
    for i in range(16):
        errs = {(dy, dx): float((out[i, :, m:-m, m:-m] - torch.roll(x[i], (dy, dx), (-2, -1))[:, m:-m, m:-m]).abs().max())
                for dy in range(-m, m + 1) for dx in range(-m, m + 1)}
        best = min(errs, key=errs.get)
        assert errs[best] < 1e-5
        shifts.append(best)
    assert len(set(shifts)) > 8


def test_scale_and_rotate_move_an_offset_blob_as_drawn():
    n = 16
    x = blob(n, r=64, cx=6.0, cy=0.0, sigma=1.5)  # big canvas: reflected copies stay outside
    torch.manual_seed(4)
    out = fixed("scale")(x)
    torch.manual_seed(4)
    s = torch.exp2(torch.randn(n) * 0.2)  # the draw the op makes (value, then Bernoulli)
    cx, cy = centroid(out)
    torch.testing.assert_close(cx, 6.0 * s, atol=0.1, rtol=0.02)
    assert cy.abs().max() < 0.1

    torch.manual_seed(6)
    out = fixed("rotate")(x)
    torch.manual_seed(6)
    theta = (torch.rand(n) * 2 - 1) * math.pi
    cx, cy = centroid(out)
    # content at p_in lands at R(-theta) p_in (x right, y down)
    torch.testing.assert_close(cx, 6.0 * torch.cos(theta), atol=0.15, rtol=0)
    torch.testing.assert_close(cy, -6.0 * torch.sin(theta), atol=0.15, rtol=0)


def test_color_ops_closed_form():
    x = images(8, 3)
    torch.manual_seed(7)
    out = fixed("brightness")(x)
    torch.manual_seed(7)
    b = torch.randn(8) * 0.2
    torch.testing.assert_close(out, x + b.view(-1, 1, 1, 1))

    torch.manual_seed(8)
    out = fixed("contrast")(x)
    torch.manual_seed(8)
    k = torch.exp2(torch.randn(8) * 0.5)
    torch.testing.assert_close(out, x * k.view(-1, 1, 1, 1))

    torch.manual_seed(9)
    out = fixed("saturation")(x)
    torch.manual_seed(9)
    s = torch.exp2(torch.randn(8))
    m = x.mean(1, keepdim=True)
    torch.testing.assert_close(out, m + (x - m) * s.view(-1, 1, 1, 1))
    g = images(8, 1)
    assert torch.equal(fixed("saturation")(g), g)  # identity for one channel, at p = 1


def test_each_op_fires_with_probability_p():
    x = images(4000, 1, 4)
    torch.manual_seed(10)
    out = fixed("brightness", p=0.3)(x)
    changed = (out != x).flatten(1).any(1).float().mean()
    assert abs(float(changed) - 0.3) < 0.03


def run_steps(ada, logits, steps, batch=64):
    for _ in range(steps):
        ada.observe(logits)
        ada.step(batch)


def test_p_rises_when_d_overfits_at_the_documented_rate():
    ada = AdaptiveAugment(target=0.6, speed_kimg=1.0, interval=4)
    overfit = torch.full((64, 1), 5.0)  # D sure of every real: r_t = 1 > 0.6
    run_steps(ada, overfit, 3)
    assert float(ada.p) == 0.0  # not adjusted before `interval` D steps
    run_steps(ada, overfit, 1)
    assert float(ada.p) == pytest.approx(4 * 64 / 1000, abs=1e-6)  # images / (speed_kimg * 1000)
    run_steps(ada, overfit, 4 * 3)
    assert float(ada.p) == pytest.approx(1.0)  # 1024 images >= 1 kimg: 0 -> 1
    run_steps(ada, overfit, 8)
    assert float(ada.p) == 1.0  # clamped


def test_p_falls_otherwise_and_holds_at_target():
    ada = AdaptiveAugment(target=0.6, speed_kimg=2.0, interval=2, p=0.5)
    fair = torch.cat([torch.full((32,), 3.0), torch.full((32,), -3.0)])  # r_t = 0 < 0.6
    run_steps(ada, fair, 2, batch=100)
    assert float(ada.p) == pytest.approx(0.5 - 200 / 2000, abs=1e-6)
    run_steps(ada, fair, 20, batch=100)
    assert float(ada.p) == 0.0
    at = torch.cat([torch.ones(80), -torch.ones(20)])  # r_t = 0.6 exactly: sign 0
    ada.load_state_dict({**ada.state_dict(), "p": torch.tensor(0.25)})
    run_steps(ada, at, 4, batch=100)
    assert float(ada.p) == 0.25
    fixed_p = AdaptiveAugment(target=None, p=0.3)
    run_steps(fixed_p, torch.full((8,), 9.0), 8)
    assert float(fixed_p.p) == pytest.approx(0.3)


def test_stats_per_tick_and_reduce():
    ada = AdaptiveAugment(target=0.6, speed_kimg=1.0, interval=1)
    ada.observe(torch.tensor([1.0, 2.0, -1.0, 4.0]))
    ada.observe(torch.tensor([1.0, -2.0, -1.0, 4.0]))
    st = ada.stats()
    assert st["rt"] == pytest.approx(2 / 8) and st["p"] == 0.0
    assert math.isnan(ada.stats()["rt"])  # reset per tick
    calls = []

    def two_ranks(t):
        calls.append(t.clone())
        return t * 2  # two ranks with identical statistics
    ada = AdaptiveAugment(target=0.6, speed_kimg=1.0, interval=1)
    ada.observe(torch.full((10,), 1.0))
    ada.step(10, reduce=two_ranks)
    assert len(calls) == 1 and calls[0].tolist() == [10.0, 10.0]
    assert float(ada.p) == pytest.approx(10 / 1000)


def test_state_dict_roundtrip_and_exact_continuation():
    def d(x):  # a stand-in discriminator whose sign varies with the augmented batch
        return x.mean(dim=(1, 2, 3)) * 50 + 0.3

    def train(ada, steps, outs):
        for _ in range(steps):
            x = torch.rand(16, 3, 16, 16) * 2 - 1
            y = ada(x)
            outs.append(y)
            ada.observe(d(y))
            ada.step(16)

    torch.manual_seed(0)
    full, outs_full = AdaptiveAugment(speed_kimg=0.05, interval=2, p=0.2), []
    train(full, 10, outs_full)

    torch.manual_seed(0)
    first, outs = AdaptiveAugment(speed_kimg=0.05, interval=2, p=0.2), []
    train(first, 5, outs)  # stop between two adjusts: accumulators carry state
    buf = io.BytesIO()
    torch.save({"ada": first.state_dict(), "rng": torch.get_rng_state()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    second = AdaptiveAugment(speed_kimg=0.05, interval=2, p=0.0)
    second.load_state_dict(ckpt["ada"])
    assert float(second.p) == float(first.p) and float(second.p) != 0.2
    torch.set_rng_state(ckpt["rng"])
    train(second, 5, outs)
    assert all(torch.equal(a, b) for a, b in zip(outs, outs_full))
    assert torch.equal(second.p, full.p)
    assert {k: type(v).__name__ for k, v in second.state_dict().items()} == {
        "p": "Tensor", "acc": "Tensor", "tick": "Tensor", "d_steps": "int", "images": "int"}


@pytest.mark.parametrize("kwargs,msg", [
    ({"target": 1.5}, "augment.ada.target must be in (-1, 1) or null (fixed p), got 1.5"),
    ({"speed_kimg": 0}, "augment.ada.speed_kimg must be a positive number, got 0"),
    ({"interval": 0}, "augment.ada.interval must be a positive integer, got 0"),
    ({"interval": 2.5}, "augment.ada.interval must be a positive integer, got 2.5"),
    ({"p": 1.2}, "augment.ada.p must be in [0, 1], got 1.2"),
    ({"ops": "bgcx"}, "augment.ada.ops: unknown or empty"),
    ({"ops": "xflip,hue"}, "augment.ada.ops: unknown or empty ['hue']"),
])
def test_option_errors_are_one_line(kwargs, msg):
    with pytest.raises(ConfigError) as e:
        AdaptiveAugment(**kwargs)
    assert str(e.value).startswith(msg) and "\n" not in str(e.value)
