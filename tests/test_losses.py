import math

import pytest
import torch

from raygan.errors import ConfigError
from raygan.losses import LOSSES, build_loss

# real logits r = [0, 2], fake logits f = [0, -1]
R = [0.0, 2.0]
F_ = [0.0, -1.0]
LN2 = math.log(2.0)


def sp(v):  # softplus, by hand
    return math.log1p(math.exp(v))


EXPECTED = {
    # name: (d_loss, g_loss)
    "minimax": ((LN2 + sp(-2)) / 2 + (LN2 + sp(-1)) / 2, -(LN2 + sp(-1)) / 2),
    "ns": ((LN2 + sp(-2)) / 2 + (LN2 + sp(-1)) / 2, (LN2 + sp(1)) / 2),
    "lsgan": (0.5 * ((1 + 1) / 2 + (0 + 1) / 2), 0.5 * (1 + 4) / 2),  # 0.75, 1.25
    "wgan": (-0.5 - 1.0, 0.5),
    "hinge": ((1 + 0) / 2 + (1 + 0) / 2, 0.5),
}


def test_names_and_critic_flag():
    assert LOSSES.names() == ["hinge", "lsgan", "minimax", "ns", "ns-smooth", "ragan", "wgan"]
    assert {n for n in LOSSES.names() if LOSSES.build(n).critic} == {"wgan"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_values(name):
    loss = LOSSES.build(name)
    d, g = EXPECTED[name]
    r, f = torch.tensor(R), torch.tensor(F_)
    assert loss.d_loss(r, f).item() == pytest.approx(d, abs=1e-6)
    assert loss.g_loss(f).item() == pytest.approx(g, abs=1e-6)
    assert loss.d_loss(r, f).shape == () and loss.g_loss(f).shape == ()


# Hand numbers on other logits, r = [1, -1], f = [0.5, -2], written out as decimals (sp(x) =
# log(1 + e^x): sp(1) = 1.31326169, sp(-1) = 0.31326169, sp(0.5) = 0.97407698,
# sp(-0.5) = 0.47407698, sp(2) = 2.12692801, sp(-2) = 0.12692801; sp(x) - sp(-x) = x).
HAND = {
    # minimax / ns D: mean sp(-r) + mean sp(f) = (0.31326169 + 1.31326169) / 2
    #                                          + (0.97407698 + 0.12692801) / 2 = 1.36376419
    # minimax G: -mean sp(f) = -0.55050250;  ns G: mean sp(-f) = (0.47407698 + 2.12692801) / 2
    "minimax": (1.36376419, -0.55050250),
    "ns": (1.36376419, 1.30050250),
    # lsgan D: 0.5 (mean (r - 1)^2 + mean f^2) = 0.5 ((0 + 4) / 2 + (0.25 + 4) / 2) = 2.0625
    #       G: 0.5 mean (f - 1)^2 = 0.5 (0.25 + 9) / 2 = 2.3125
    "lsgan": (2.0625, 2.3125),
    # wgan D: mean f - mean r = -0.75 - 0;  G: -mean f = 0.75
    "wgan": (-0.75, 0.75),
    # hinge D: mean relu(1 - r) + mean relu(1 + f) = (0 + 2) / 2 + (1.5 + 0) / 2 = 1.75;  G: 0.75
    "hinge": (1.75, 0.75),
    # ns-smooth (real target 0.9): BCE(r, 0.9) = mean (sp(-r) + 0.1 r) = mean sp(-r) here (mean r = 0): as ns
    "ns-smooth": (1.36376419, 1.30050250),
    # ragan: mean r = 0, mean f = -0.75; sp(-1.75) = 0.16022415, sp(0.25) = 0.82593942
    #   D: mean sp(-(r + 0.75)) + mean sp(f - 0) = (0.16022415 + 0.82593942) / 2 + 0.55050250 = 1.04358428
    #   G: mean sp(-(f - 0)) + mean sp(r + 0.75) = 1.30050250 + (1.75 + 0.16022415 + 0.82593942 - 0.25) / 2
    #    = 2.54358428
    "ragan": (1.04358428, 2.54358428),
}


def test_hand_numbers():
    """Every registered loss, computed by raygan, against the numbers worked out above."""
    assert sorted(HAND) == LOSSES.names()  # a new loss must bring its hand numbers
    r, f = torch.tensor([1.0, -1.0]), torch.tensor([0.5, -2.0])
    for name in LOSSES.names():
        loss = LOSSES.build(name)
        d, g = HAND[name]
        assert loss.d_loss(r, f).item() == pytest.approx(d, abs=1e-6), name
        assert loss.g_loss(f, r).item() == pytest.approx(g, abs=1e-6), name


GRADS = {
    # at r = f = 0.5 (batch of 2): (dD/dr_i, dD/df_i, dG/df_i), each / batch size
    "minimax": (-1 / (1 + math.exp(0.5)) / 2, 1 / (1 + math.exp(-0.5)) / 2, -1 / (1 + math.exp(-0.5)) / 2),
    "ns": (-1 / (1 + math.exp(0.5)) / 2, 1 / (1 + math.exp(-0.5)) / 2, -1 / (1 + math.exp(0.5)) / 2),
    "lsgan": ((0.5 - 1) / 2, 0.5 / 2, (0.5 - 1) / 2),
    "wgan": (-0.5, 0.5, -0.5),
    "hinge": (-0.5, 0.5, -0.5),
}


@pytest.mark.parametrize("name", sorted(GRADS))
def test_gradient_signs_and_values(name):
    """D pushes real logits up and fake down; G pushes fake logits up."""
    loss = LOSSES.build(name)
    r = torch.full((2,), 0.5, requires_grad=True)
    f = torch.full((2,), 0.5, requires_grad=True)
    loss.d_loss(r, f).backward()
    dr, df, dg = GRADS[name]
    assert (r.grad < 0).all() and (f.grad > 0).all()
    torch.testing.assert_close(r.grad, torch.full((2,), dr))
    torch.testing.assert_close(f.grad, torch.full((2,), df))
    f2 = torch.full((2,), 0.5, requires_grad=True)
    loss.g_loss(f2).backward()
    assert (f2.grad < 0).all()
    torch.testing.assert_close(f2.grad, torch.full((2,), dg))


def test_saturation_minimax_vs_ns():
    """The reason `ns` exists: at a confident D (f = -10) minimax's G gradient vanishes."""
    f = torch.tensor([-10.0], requires_grad=True)
    LOSSES.build("minimax").g_loss(f).backward()
    assert abs(f.grad.item()) < 1e-4
    f = torch.tensor([-10.0], requires_grad=True)
    LOSSES.build("ns").g_loss(f).backward()
    assert f.grad.item() == pytest.approx(-1.0, abs=1e-4)


def test_hinge_margin_zero_gradient():
    r = torch.tensor([1.5], requires_grad=True)
    f = torch.tensor([-1.5], requires_grad=True)
    loss = LOSSES.build("hinge").d_loss(r, f)
    loss.backward()
    assert loss.item() == 0.0 and r.grad.item() == 0.0 and f.grad.item() == 0.0


def test_different_batch_sizes_and_low_precision():
    loss = LOSSES.build("ns")
    out = loss.d_loss(torch.zeros(3, dtype=torch.bfloat16), torch.zeros(5, dtype=torch.bfloat16))
    assert out.dtype == torch.float32 and out.item() == pytest.approx(2 * LN2, abs=1e-6)


def test_unknown_loss():
    with pytest.raises(ConfigError, match="unknown loss 'bce'; choose one of: hinge, lsgan, minimax, ns, ns-smooth, "
                                          "ragan, wgan"):
        LOSSES.build("bce")


def test_relativistic_average_sees_both_sides():
    """r = [1, 3] (mean 2), f = [-1, 1] (mean 0); sp(-1) = 0.31326169, sp(-3) = 0.04858735, sp(x) = x + sp(-x).
    D: mean sp(-(r - 0)) + mean sp(f - 2) = (sp(-1) + sp(-3)) / 2 + (sp(-3) + sp(-1)) / 2 = 0.36184904
    G: mean sp(-(f - 2)) + mean sp(r - 0) = (sp(3) + sp(1)) / 2 + (sp(1) + sp(3)) / 2 = 4.36184904"""
    loss = build_loss("ragan")
    r = torch.tensor([1.0, 3.0], requires_grad=True)
    f = torch.tensor([-1.0, 1.0], requires_grad=True)
    d = loss.d_loss(r, f)
    assert d.item() == pytest.approx(0.36184904, abs=1e-6)
    assert loss.g_loss(f, r).item() == pytest.approx(4.36184904, abs=1e-6)
    d.backward()
    assert f.grad is not None and (f.grad > 0).all() and (r.grad < 0).all()  # D sees both: pushes f down, r up
    # G's loss moves with the real logits (not with fakes alone): the same fakes, other reals, another value
    assert loss.g_loss(f, r + 1).item() != pytest.approx(loss.g_loss(f, r).item())
    assert loss.g_needs_real and not build_loss("ns").g_needs_real
    with pytest.raises(ValueError, match="needs D's logits on real images"):
        loss.g_loss(f)


def test_one_sided_label_smoothing():
    """r = [2, 0], f = [0, -1]; sp(0) = 0.69314718, sp(-2) = 0.12692801, sp(-1) = 0.31326169, sp(1) = 1.31326169.
    BCE(x, t) = t sp(-x) + (1 - t) sp(x) = sp(-x) + (1 - t) x.
    D (t = 0.9): (sp(-2) + 0.2 + sp(0)) / 2 + (sp(0) + sp(-1)) / 2 = 1.01324203; t = 0.8: + 0.1 = 1.11324203;
    G (unchanged ns): (sp(0) + sp(1)) / 2 = 1.00320444. Fakes keep target 0 (one-sided)."""
    r, f = torch.tensor([2.0, 0.0]), torch.tensor([0.0, -1.0])
    smooth = build_loss("ns-smooth")
    assert smooth.real_target == 0.9
    assert smooth.d_loss(r, f).item() == pytest.approx(1.01324203, abs=1e-6)
    assert smooth.g_loss(f).item() == pytest.approx(1.00320444, abs=1e-6)
    assert build_loss("ns-smooth", {"real_target": 0.8}).d_loss(r, f).item() == pytest.approx(1.11324203, abs=1e-6)
    assert build_loss("ns-smooth", {"real_target": 1}).d_loss(r, f).item() == pytest.approx(
        LOSSES.build("ns").d_loss(r, f).item(), abs=1e-7)  # target 1 is plain ns
    # D's optimum for a real logit is no longer +inf: the gradient vanishes at logit(0.9) = ln 9
    x = torch.tensor([math.log(9.0)], requires_grad=True)
    smooth.d_loss(x, torch.tensor([-50.0])).backward()
    assert abs(x.grad.item()) < 1e-6


def test_loss_options_are_typed_and_unknown_keys_name_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        build_loss("ns-smooth", {"real_targte": 0.9})
    msg = str(e.value)
    assert "\n" not in msg and "'real_targte'" in msg and "valid: real_target (default 0.9)" in msg
    with pytest.raises(ConfigError, match="loss 'ns' has no option 'weight'; valid: none"):
        build_loss("ns", {"weight": 1.0})
    with pytest.raises(ConfigError, match="real_target must be a number, got 'high'"):
        build_loss("ns-smooth", {"real_target": "high"})
    with pytest.raises(ConfigError, match=r"real_target must lie in \(0, 1\], got 1.5"):
        build_loss("ns-smooth", {"real_target": 1.5})
    assert repr(build_loss("ns-smooth", {"real_target": 0.95})) == "LabelSmoothing(real_target=0.95)"


def test_an_unknown_loss_option_is_one_line_from_the_cli(tmp_path):
    import os
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "raygan", "train", "--preset", "digits", "--dry-run",
                        "--set", "loss.name=ns-smooth", "--set", "loss.kwargs.real_targte=0.95"],
                       cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "RAYGAN_CACHE": str(tmp_path)})
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == ("raygan: error: config: loss.kwargs: loss 'ns-smooth' has no option 'real_targte'; "
                        "valid: real_target (default 0.9)\n")
