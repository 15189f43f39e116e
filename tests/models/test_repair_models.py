"""Image-to-image networks for repair: shapes, the size rule, known pixels kept, receptive field."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import ConfigError
from raygan.models.networks import DISCRIMINATORS, GENERATORS
from raygan.models.patchgan import receptive_field


def unet(resolution=32, c=1, **kw):
    return GENERATORS.build("unet", in_channels=c, out_channels=c, resolution=resolution, **kw)


def test_registered_names():
    assert {"unet", "inpaint-unet", "srresnet"} <= set(GENERATORS.names())
    assert "patchgan" in DISCRIMINATORS.names()


@pytest.mark.parametrize("resolution,depth", [(28, 3), (32, 4), (64, 5)])
@pytest.mark.parametrize("c", [1, 3])
def test_unet_shapes_and_default_depth(resolution, depth, c):
    g = unet(resolution, c).eval()
    assert g.depth == depth
    x = torch.rand(2, c, resolution, resolution) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    # fully convolutional: a larger image, and one whose size the stride pattern does not divide
    assert g(torch.zeros(1, c, 96, 128)).shape == (1, c, 96, 128)
    assert g(torch.zeros(1, c, 50, 37)).shape == (1, c, 50, 37)


def test_unet_pads_28_px_to_32_inside():
    g = unet(28).eval()
    assert g.multiple == 8
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    by_hand = g.net(F.pad(x, (2, 2, 2, 2), mode="replicate"))[..., 2:30, 2:30]
    assert torch.equal(g(x), by_hand)
    g2 = unet(28, depth=2).eval()  # 28 = 4 * 7: no padding needed
    assert torch.equal(g2(x), g2.net(x))


def test_unet_skip_connections_carry_detail():
    """The outermost skip lets a single input pixel change its own output pixel."""
    g = unet(32, norm="none").eval()
    x = torch.rand(1, 1, 32, 32, requires_grad=True)
    g(x)[0, 0, 10, 10].backward()
    assert x.grad[0, 0, 10, 10].abs() > 0.1 * x.grad.abs().max()
    widths = [m.out_channels for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [32, 64, 128, 256]  # ngf * min(2^i, 8)
    ups = [m.in_channels for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert ups == [256, 256, 128, 64]  # innermost first: 256 (no skip), then skip + decoder = 2 x 128, 64, 32


def test_unet_dropout_is_noise_in_training_only():
    g = unet(32)
    assert sum(isinstance(m, nn.Dropout) for m in g.modules()) == 3
    x = torch.rand(4, 1, 32, 32)
    g.train()
    assert not torch.equal(g(x), g(x))
    g.eval()
    assert torch.equal(g(x), g(x))
    g0 = unet(32, dropout=0.0).train()
    assert torch.equal(g0(x), g0(x))


def test_unet_residual_predicts_a_correction_of_its_input():
    g = unet(28, residual=True).eval()
    x = torch.rand(2, 1, 28, 28) * 1.6 - 0.8
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert torch.allclose(y, (x + g.net(F.pad(x, (2, 2, 2, 2), mode="replicate"))[..., 2:30, 2:30]).clamp(-1, 1))
    assert (y - x).abs().mean() < 0.05  # N(0, 0.02) init: close to the identity
    m = GENERATORS.build("inpaint-unet", in_channels=2, out_channels=1, resolution=32, residual=True).eval()
    xm = torch.cat([torch.rand(1, 1, 32, 32), (torch.rand(1, 1, 32, 32) > 0.5).float()], 1)
    assert m(xm).shape == (1, 1, 32, 32)
    with pytest.raises(ConfigError, match="residual must be true or false"):
        unet(32, residual=1)


def test_pix2pix_init():
    w = torch.cat([m.weight.flatten() for m in unet(64, ngf=64).modules() if isinstance(m, nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001


def test_inpaint_unet_keeps_known_pixels_bitwise():
    g = GENERATORS.build("inpaint-unet", in_channels=4, out_channels=3, resolution=32).train()
    img = torch.rand(4, 3, 32, 32) * 2 - 1
    mask = (torch.rand(4, 1, 32, 32) < 0.3).float()
    img = torch.where(mask > 0, torch.zeros_like(img), img)  # holes filled with 0 (grey on [-1, 1])
    y = g(torch.cat([img, mask], dim=1))
    known = (mask == 0).expand_as(img)
    assert torch.equal(y[known], img[known])
    assert (y[~known] != 0).float().mean() > 0.9  # holes are generated
    y.mean().backward()  # gradients reach the network through the holes
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())
    with pytest.raises(ConfigError, match="in_channels must be out_channels \\+ 1"):
        GENERATORS.build("inpaint-unet", in_channels=3, out_channels=3, resolution=32)


@pytest.mark.parametrize("scale,lr", [(2, 16), (4, 8), (4, 7)])
def test_srresnet_output_size(scale, lr):
    g = GENERATORS.build("srresnet", in_channels=1, out_channels=1, resolution=32, scale=scale).eval()
    x = torch.rand(3, 1, lr, lr) * 2 - 1
    y = g(x)
    assert y.shape == (3, 1, scale * lr, scale * lr) and y.abs().max() <= 1
    assert g(torch.rand(1, 1, 10, 13)).shape == (1, 1, 10 * scale, 13 * scale)  # larger, non-square input
    # global residual: at init the output is close to the bilinear upsampling of the input
    base = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    assert (y - base).abs().mean() < 0.05


def test_srresnet_clamp_passes_gradients_straight_through():
    g = GENERATORS.build("srresnet", in_channels=3, out_channels=3, resolution=32, scale=2)
    with torch.no_grad():
        g.tail[-1].bias.fill_(5.0)  # every output far above 1
    y = g(torch.rand(2, 3, 16, 16))
    assert torch.equal(y, torch.ones_like(y))
    y.sum().backward()
    assert g.tail[-1].bias.grad.abs().min() > 0


@pytest.mark.parametrize("n_layers,rf", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field_by_gradient(n_layers, rf):
    assert receptive_field(n_layers) == rf
    d = DISCRIMINATORS.build("patchgan", in_channels=2, resolution=128, n_layers=n_layers, norm="none")
    x = torch.randn(1, 2, 128, 128, requires_grad=True)
    out = d(x)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    out[0, 0, i, j].backward()
    rows = torch.nonzero(x.grad[0].abs().sum(dim=(0, 2)))
    cols = torch.nonzero(x.grad[0].abs().sum(dim=(0, 1)))
    assert rows.max() - rows.min() + 1 == rf and cols.max() - cols.min() + 1 == rf
    assert d.receptive_field == rf


@pytest.mark.parametrize("resolution,n_layers,hw", [(28, 1, 12), (32, 1, 14), (64, 2, 14)])
def test_patchgan_defaults_and_shapes(resolution, n_layers, hw):
    d = DISCRIMINATORS.build("patchgan", in_channels=2, resolution=resolution)
    assert d.n_layers == n_layers and receptive_field(n_layers) <= resolution
    out = d(torch.randn(4, 2, resolution, resolution))
    assert out.shape == (4, 1, hw, hw) and out.dtype == torch.float32
    assert d(torch.randn(1, 2, 100, 100)).shape[:2] == (1, 1)  # any size


def test_patchgan_norms_and_spectral_norm():
    d = DISCRIMINATORS.build("patchgan", in_channels=6, resolution=32, spectral_norm=True)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert all(hasattr(m, "parametrizations") for m in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())  # SN defaults to no norm
    di = DISCRIMINATORS.build("patchgan", in_channels=6, resolution=32, norm="instance")
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in di.modules()) == 1
    db = DISCRIMINATORS.build("patchgan", in_channels=6, resolution=64)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in db.modules()) == 2  # none on the first layer


@pytest.mark.parametrize(
    "registry,name,kwargs,match",
    [
        (GENERATORS, "unet", dict(in_channels=1, out_channels=1, resolution=32, norm="group"), "norm must be one of"),
        (GENERATORS, "unet", dict(in_channels=1, out_channels=1, resolution=32, ngf=0), "ngf must be a positive int"),
        (GENERATORS, "unet", dict(in_channels=1, out_channels=1, resolution=32, dropout=1.0), "dropout must be in"),
        (GENERATORS, "unet", dict(in_channels=1, out_channels=1, resolution=32, width=3), "unexpected keyword"),
        (GENERATORS, "srresnet", dict(in_channels=1, out_channels=1, resolution=32, scale=3), "scale must be 2 or 4"),
        (GENERATORS, "srresnet", dict(in_channels=1, out_channels=1, resolution=30, scale=4),
         "not divisible by the scale x4; choose a multiple of 4"),
        (DISCRIMINATORS, "patchgan", dict(in_channels=2, resolution=32, n_layers=4), "leaves no output at 32 px"),
        (DISCRIMINATORS, "patchgan", dict(in_channels=2, resolution=32, spectral_norm=True, norm="batch"),
         "cannot be combined with spectral_norm"),
    ],
)
def test_bad_options_are_one_line_config_errors(registry, name, kwargs, match):
    with pytest.raises(ConfigError, match=match) as e:
        registry.build(name, **kwargs)
    assert "\n" not in str(e.value)


def test_pix2pix_step_reduces_l1_on_a_batch():
    """U-Net + conditional PatchGAN + L1 (lambda 100): a few steps fit a small noisy batch."""
    torch.manual_seed(0)
    g = unet(28)
    d = DISCRIMINATORS.build("patchgan", in_channels=2, resolution=28)
    og = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    clean = torch.zeros(8, 1, 28, 28)
    clean[:, :, 8:20, 6:22] = 1
    clean = clean * 2 - 1
    noisy = clean + 0.5 * torch.randn_like(clean)
    first = None
    for _ in range(20):
        fake = g(noisy)
        d_loss = (F.softplus(-d(torch.cat([noisy, clean], 1))).mean()
                  + F.softplus(d(torch.cat([noisy, fake.detach()], 1))).mean())
        od.zero_grad()
        d_loss.backward()
        od.step()
        l1 = (fake - clean).abs().mean()
        g_loss = F.softplus(-d(torch.cat([noisy, fake], 1))).mean() + 100 * l1
        og.zero_grad()
        g_loss.backward()
        og.step()
        first = l1.item() if first is None else first
    assert l1.item() < 0.4 * first
