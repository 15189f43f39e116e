"""The CycleGAN ResNet generator: registry contract, shapes, range, fully convolutional, init."""
import pytest
import torch
from torch import nn

from raygan.errors import ConfigError
from raygan.models.networks import GENERATORS
from raygan.models.resnet_translator import NAME, ResidualBlock


def build(**kw):
    args = dict(in_channels=1, out_channels=1, resolution=28, ngf=8, n_blocks=2)
    args.update(kw)
    return GENERATORS.build(NAME, **args)


@pytest.mark.parametrize("res,cin,cout", [(28, 1, 1), (32, 3, 3), (64, 1, 3)])
def test_output_shape_and_tanh_range(res, cin, cout):
    torch.manual_seed(0)
    g = build(in_channels=cin, out_channels=cout, resolution=res)
    x = torch.randn(2, cin, res, res) * 3
    y = g(x)
    assert y.shape == (2, cout, res, res)
    assert y.abs().max() <= 1.0
    assert y.std() > 0  # not a constant map


def test_fully_convolutional_and_rejects_odd_sizes():
    g = build(resolution=28)
    assert g(torch.randn(1, 1, 48, 80)).shape == (1, 1, 48, 80)  # larger, non-square
    with pytest.raises(ValueError, match="divisible by 4"):
        g(torch.randn(1, 1, 30, 28))


def test_layout_matches_the_reference():
    g = build(ngf=32, n_blocks=6)  # 28 px defaults
    blocks = [m for m in g.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 6
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size[0] for c in (convs[0], convs[-1])] == [7, 7]
    assert [c.out_channels for c in convs[:3]] == [32, 64, 128]  # c7s1-32, d64, d128
    assert all(b.body[1].in_channels == 128 for b in blocks)
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in g.modules()) == 2 + 2 * 6
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in g.modules()) == 3 + 2 * 6 + 2
    assert not any(isinstance(m, nn.Dropout) for m in g.modules())
    assert sum(isinstance(m, nn.Dropout) for m in build(dropout=True).modules()) == 2
    # reference defaults (RGB, ngf 64, 9 blocks, instance norm, biases): by hand
    # c7s1 3*64*49+64, d 64*128*9+128, d 128*256*9+256, 9 x 2 x (256*256*9+256),
    # u 256*128*9+128, u 128*64*9+64, c7s1 64*3*49+3 = 11,378,179 (the reference prints 11.378 M)
    big = GENERATORS.build(NAME, in_channels=3, out_channels=3, resolution=256, ngf=64, n_blocks=9)
    assert sum(p.numel() for p in big.parameters()) == 11_378_179


def test_init_is_normal_002():
    torch.manual_seed(0)
    g = build(ngf=32, n_blocks=6)
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    assert all(m.bias.abs().max() == 0 for m in g.modules() if isinstance(m, nn.Conv2d))
    bn = GENERATORS.build(NAME, in_channels=1, out_channels=1, resolution=28, norm="batch")
    assert all(m.bias is None for m in bn.modules() if isinstance(m, nn.Conv2d) and m.kernel_size[0] == 3)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(ngf=0), "ngf"),
        (dict(n_blocks=-1), "n_blocks"),
        (dict(norm="layer"), "norm"),
        (dict(resolution=30), "multiple of 4"),
        (dict(dropout="yes"), "dropout"),
        (dict(width=3), "unexpected keyword"),
    ],
)
def test_bad_options_are_one_line_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match) as e:
        build(**kw)
    assert "\n" not in str(e.value)
