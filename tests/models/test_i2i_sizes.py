"""Image-to-image networks at sizes other than 28/32/64 px: the size rule each one enforces
(raygan.models.networks), forward + backward at 96, 160 and 256 px, and one-line refusals that
name the valid values, in the models and through `raygan train --dry-run`."""
import pytest
import torch

from helpers import cli, one_line
from raygan.errors import ConfigError
from raygan.models.networks import DISCRIMINATORS, GENERATORS
from raygan.models.patchgan import max_layers

SIZES = [96, 160, 256]
TINY = {  # name -> (constructor kwargs, input channels, input side divisor)
    "unet": (dict(in_channels=3, out_channels=3, ngf=2), 3, 1),
    "inpaint-unet": (dict(in_channels=4, out_channels=3, ngf=2), 4, 1),
    "srresnet": (dict(in_channels=3, out_channels=3, nf=2, blocks=1, scale=4), 3, 4),
    "resnet-translator": (dict(in_channels=3, out_channels=3, ngf=2, n_blocks=1), 3, 1),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", sorted(TINY))
def test_generators_train_at_sizes_beyond_64(name, size):
    torch.manual_seed(0)
    kwargs, cin, div = TINY[name]
    G = GENERATORS.build(name, resolution=size, **kwargs)
    x = torch.rand(2, cin, size // div, size // div) * 2 - 1
    if name == "inpaint-unet":
        x[:, -1] = (x[:, -1] > 0).float()
    y = G(x)
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())


@pytest.mark.parametrize("size,layers,logits", [(96, 2, 22), (160, 3, 18), (256, 4, 14)])
def test_patchgan_at_sizes_beyond_64(size, layers, logits):
    D = DISCRIMINATORS.build("patchgan", in_channels=6, resolution=size, ndf=2)
    assert D.n_layers == layers  # the receptive field closest to half the size
    out = D(torch.randn(2, 6, size, size))
    assert out.shape == (2, 1, logits, logits)
    out.mean().backward()


def test_unet_pads_a_size_its_depth_does_not_divide():
    """160 px gets depth 6 (a multiple of 64): padded to 192 inside, cropped back to 160."""
    G = GENERATORS.build("unet", in_channels=1, out_channels=1, resolution=160, ngf=2).eval()
    assert (G.depth, G.multiple) == (6, 64)
    assert G(torch.zeros(1, 1, 160, 160)).shape == (1, 1, 160, 160)


def test_refusals_name_the_valid_values():
    with pytest.raises(ConfigError) as e:
        GENERATORS.build("resnet-translator", in_channels=3, out_channels=3, resolution=30)
    assert str(e.value).endswith("got 30 (nearest: 28 or 32)")
    with pytest.raises(ConfigError) as e:
        GENERATORS.build("resnet-translator", in_channels=3, out_channels=3, resolution=6)
    assert str(e.value).endswith("got 6 (nearest: 8)")
    with pytest.raises(ConfigError) as e:
        GENERATORS.build("srresnet", in_channels=3, out_channels=3, resolution=98, scale=4)
    assert str(e.value) == ("generator 'srresnet': resolution 98 is not divisible by the scale x4; choose a "
                            "multiple of 4 (nearest: 96 or 100)")
    assert GENERATORS.build("srresnet", in_channels=3, out_channels=3, resolution=98, scale=2, nf=2, blocks=1)
    assert [max_layers(s) for s in (5, 6, 12, 32, 96, 256)] == [0, 1, 2, 3, 5, 6]
    with pytest.raises(ConfigError) as e:
        DISCRIMINATORS.build("patchgan", in_channels=2, resolution=32, n_layers=4)
    assert str(e.value).endswith("choose n_layers 1 to 3")
    with pytest.raises(ConfigError, match="use a resolution of at least 6 px$"):
        DISCRIMINATORS.build("patchgan", in_channels=2, resolution=5)


def test_cli_refuses_a_resolution_a_network_cannot_take(in_tmp, capsys):
    """One line, exit 2, naming the valid values: a generation architecture's list, an image-to-image
    network's stride rule, and the bounds every task shares."""
    for args, pattern in (
            (["--preset", "dcgan", "--set", "data.resolution=48"],
             "architecture 'dcgan': resolution 48 not supported; choose one of: 28, 32, 64, 128, 256"),
            (["--preset", "mlp", "--set", "data.resolution=128"],
             "architecture 'mlp': resolution 128 not supported; choose one of: 28, 32, 64"),
            (["--preset", "folder-a2b", "--set", "data.resolution=90"],
             "generator 'resnet-translator': resolution must be a multiple of 4 and >= 8"),
            (["--preset", "fmnist-sr4", "--set", "data.resolution=98"],
             "x4 does not divide a 98-px image; use a resolution divisible by 4"),
            (["--preset", "folder-repair", "--set", "data.resolution=4096"],
             "config: data.resolution: 4096 px is out of range; choose 8 to 2048 px")):
        one_line(*cli(capsys, "train", *args, "--dry-run")[::2], pattern)
    for preset, size in (("dcgan", 256), ("resnet", 128), ("folder-repair", 160), ("folder-a2b", 96)):
        code, out, err = cli(capsys, "train", "--preset", preset, "--set", f"data.resolution={size}", "--dry-run")
        assert code == 0 and f"resolution: {size}" in out, err
