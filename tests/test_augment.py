import pytest
import torch
import torch.nn.functional as F

from raygan.augment import AUGMENTATIONS, build_diffaugment, color, cutout, flip_horizontal, translation
from raygan.errors import ConfigError


def images(n=6, c=3, r=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, r, r, generator=g) * 2 - 1


def test_names():
    assert AUGMENTATIONS.names() == ["color", "cutout", "translation"]


@pytest.mark.parametrize("c,r", [(1, 28), (3, 32), (3, 64)])
@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_shape_and_gradient(policy, c, r):
    aug = build_diffaugment(policy)
    x = images(4, c, r).requires_grad_(True)
    out = aug(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_policy_parsing():
    assert build_diffaugment("") is None and build_diffaugment("none") is None and build_diffaugment(None) is None
    aug = build_diffaugment(" color, cutout ")
    assert aug.ops == ["color", "cutout"]
    x = images(3)
    torch.manual_seed(1)
    a = aug(x)
    torch.manual_seed(1)
    assert torch.equal(a, cutout(color(x)))  # applied in order


def test_unknown_op():
    with pytest.raises(
        ConfigError,
        match=r"unknown DiffAugment op\(s\) 'rotate' in policy 'color,rotate'; choose from: color, cutout, translation",
    ):
        build_diffaugment("color,rotate")


def test_color_closed_form_and_determinism():
    x = images(4)
    torch.manual_seed(3)
    out = color(x)
    torch.manual_seed(3)
    b, s, k = (torch.rand(4, 1, 1, 1) for _ in range(3))
    e = x + (b - 0.5)  # brightness
    m = e.mean(1, keepdim=True)
    e = (e - m) * 2 * s + m  # saturation
    m = e.mean((1, 2, 3), keepdim=True)
    e = (e - m) * (k + 0.5) + m  # contrast
    torch.testing.assert_close(out, e)
    torch.manual_seed(3)
    assert torch.equal(color(x), out)


def test_color_grayscale_has_no_saturation_effect():
    x = images(4, c=1)
    torch.manual_seed(0)
    out = color(x)
    torch.manual_seed(0)
    b, _, k = (torch.rand(4, 1, 1, 1) for _ in range(3))
    e = x + (b - 0.5)
    m = e.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(out, (e - m) * (k + 0.5) + m)


def shifted(x, dy, dx):
    """x moved so that out[i, j] = x[i + dy, j + dx], zero where that is outside."""
    h, w = x.shape[-2:]
    p = F.pad(x, [w, w, h, h])
    return p[..., h + dy : 2 * h + dy, w + dx : 2 * w + dx]


@pytest.mark.parametrize("r,max_shift", [(28, 4), (32, 4), (64, 8)])
def test_translation_is_a_zero_filled_integer_shift(r, max_shift):
    # every pixel distinct and > 0: the value at the centre names its source position
    x = torch.arange(1, 2 * r * r + 1, dtype=torch.float32).view(1, 2, r, r).repeat(16, 1, 1, 1)
    torch.manual_seed(0)
    out = translation(x)
    seen = set()
    for i in range(len(x)):
        src = int(out[i, 0, r // 2, r // 2].item()) - 1
        dy, dx = src // r - r // 2, src % r - r // 2
        assert abs(dy) <= max_shift and abs(dx) <= max_shift
        assert torch.equal(out[i], shifted(x[i], dy, dx)), f"sample {i} is not a zero-filled shift"
        seen.add((dy, dx))
    assert len(seen) > 1  # each sample draws its own shift


@pytest.mark.parametrize("r,side", [(28, 14), (32, 16), (64, 32)])
def test_cutout_zeroes_a_clipped_square_of_half_the_side(r, side):
    n = 64
    x = torch.ones(n, 3, r, r)
    torch.manual_seed(5)
    out = cutout(x)
    torch.manual_seed(5)  # replay the centre draws: uniform over [0, r] (side even)
    cy = torch.randint(0, r + 1, (n,)).tolist()
    cx = torch.randint(0, r + 1, (n,)).tolist()
    full = 0
    for i in range(n):
        zero = out[i] == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # same for all channels
        rows, cols = zero[0].any(1).nonzero().flatten(), zero[0].any(0).nonzero().flatten()
        top, left = max(cy[i] - side // 2, 0), max(cx[i] - side // 2, 0)
        bottom, right = min(cy[i] + side // 2, r), min(cx[i] + side // 2, r)
        assert rows.tolist() == list(range(top, bottom)) and cols.tolist() == list(range(left, right))
        assert zero[0].sum().item() == (bottom - top) * (right - left)  # a solid rectangle
        assert (out[i][~zero] == 1).all()
        full += zero[0].sum().item() == side * side  # = r * r / 4 when not clipped
    assert full > 0


def test_cutout_area_is_a_quarter_when_inside():
    x = torch.ones(200, 1, 32, 32)
    torch.manual_seed(0)
    area = (cutout(x) == 0).flatten(1).sum(1)
    assert area.max().item() == 32 * 32 // 4
    assert area.min().item() >= (32 * 32 // 4) // 4  # at worst a corner keeps a quarter of the square


def test_flip_horizontal():
    x = images(64, 1, 28)
    out = flip_horizontal(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept))
    assert 16 < sum(flipped) < 48
    assert torch.equal(out, flip_horizontal(x, torch.Generator().manual_seed(0)))
    u8 = (x * 127 + 128).to(torch.uint8)
    assert flip_horizontal(u8).dtype == torch.uint8
