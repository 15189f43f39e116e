import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from raygan.errors import ConfigError
from raygan.models import ARCHITECTURES, build_models

Z = 8
SMALL = {  # tiny widths keep the whole grid fast on CPU
    "mlp": dict(g={"hidden": [16, 16]}, d={"hidden": [16, 8]}),
    "dcgan": dict(g={"ngf": 4}, d={"ndf": 4}),
    "resnet": dict(g={"ch": 4}, d={"ch": 4}),
}


def small(arch, **kw):
    return build_models(arch, z_dim=Z, **{**SMALL[arch], **kw})


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_registry_names():
    assert ARCHITECTURES.names() == ["dcgan", "mlp", "resnet", "stylegan2"]


@pytest.mark.parametrize(
    "arch,resolution,channels,num_classes",
    list(itertools.product(["mlp", "dcgan", "resnet"], [28, 32, 64], [1, 3], [0, 5]))
    + list(itertools.product(["dcgan", "resnet"], [128, 256], [1, 3], [0, 5])),
)
def test_shapes_and_range(arch, resolution, channels, num_classes):
    torch.manual_seed(0)
    G, D = small(arch, resolution=resolution, channels=channels, num_classes=num_classes)
    assert (G.z_dim, G.num_classes, G.resolution, G.channels) == (Z, num_classes, resolution, channels)
    assert D.num_classes == num_classes
    y = torch.tensor([0, 4, 2]) if num_classes else None
    x = G(torch.randn(3, Z) * 10, y)  # large z pushes tanh towards its limits
    assert x.shape == (3, channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    logits = D(x, y)
    assert logits.shape == (3,) and logits.dtype == torch.float32


@pytest.mark.parametrize("arch", ["mlp", "dcgan", "resnet"])
def test_spectral_norm_applied_and_no_batchnorm(arch):
    _, D = small(arch, resolution=32, channels=3, num_classes=5, spectral_norm=True)
    weighted = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert weighted and all(parametrize.is_parametrized(m, "weight") for m in weighted)
    assert any(isinstance(m, nn.Embedding) for m in weighted)  # the projection embedding too
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
    _, D_plain = small(arch, resolution=32, channels=3)
    assert not any(parametrize.is_parametrized(m) for m in D_plain.modules())


def test_spectral_norm_bounds_layer_gain():
    torch.manual_seed(0)
    _, D = small("mlp", resolution=28, channels=1, spectral_norm=True)
    layer = D.linears[0]
    for _ in range(100):  # power iteration runs once per training-mode forward
        D(torch.randn(2, 1, 28, 28))
    D.eval()
    assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == pytest.approx(1.0, abs=2e-3)


def test_dcgan_discriminator_batchnorm_default_and_none():
    _, D = small("dcgan", resolution=64, channels=3)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == 3  # not on the first layer
    _, D = small("dcgan", resolution=64, channels=3, d={"ndf": 4, "norm": "none"})
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())


@pytest.mark.parametrize("arch", ["mlp", "dcgan", "resnet"])
def test_conditional_discriminator_depends_on_labels(arch):
    torch.manual_seed(0)
    _, D = small(arch, resolution=28, channels=1, num_classes=5)
    D.eval()
    x = torch.randn(4, 1, 28, 28)
    a, b = D(x, torch.zeros(4, dtype=torch.long)), D(x, torch.full((4,), 3))
    assert (a - b).abs().min() > 0 and (a - b).abs().max() > 1e-4
    with pytest.raises(ValueError, match="class-conditional"):
        D(x)


@pytest.mark.parametrize("arch", ["mlp", "dcgan", "resnet"])
def test_conditional_generator_depends_on_labels(arch):
    torch.manual_seed(0)
    G, _ = small(arch, resolution=28, channels=1, num_classes=5)
    if arch != "mlp":  # cBN gammas start at ~1: give them distinct values per class
        for m in G.modules():
            if hasattr(m, "gamma"):
                nn.init.normal_(m.gamma.weight, 1.0, 0.5)
    G.eval()
    z = torch.randn(4, Z)
    a, b = G(z, torch.zeros(4, dtype=torch.long)), G(z, torch.full((4,), 3))
    assert (a - b).abs().max() > 0.1 * a.abs().max()
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)


def test_mlp_has_no_batch_statistics():
    G, D = build_models("mlp", resolution=28, channels=1, z_dim=100)
    for m in itertools.chain(G.modules(), D.modules()):
        assert not isinstance(m, nn.modules.batchnorm._BatchNorm)
    # classic sizes: G 100-256-512-1024-784, D 784-512-256-1
    assert n_params(G) == (100 * 256 + 256) + (256 * 512 + 512) + (512 * 1024 + 1024) + (1024 * 784 + 784)
    assert n_params(D) == (784 * 512 + 512) + (512 * 256 + 256) + (256 + 1)
    G_bn, _ = build_models("mlp", resolution=28, channels=1, z_dim=100, g={"norm": "bn"})
    assert sum(isinstance(m, nn.BatchNorm1d) for m in G_bn.modules()) == 3


def test_mlp_per_sample_independence():
    """No batch statistics: a sample's output does not depend on the rest of the batch."""
    torch.manual_seed(0)
    G, D = small("mlp", resolution=28, channels=1)
    z = torch.randn(4, Z)
    torch.testing.assert_close(G(z)[:1], G(z[:1]))
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(D(x)[:1], D(x[:1]))


def test_dcgan_parameter_counts_match_pytorch_examples():
    G, D = build_models("dcgan", resolution=64, channels=3, z_dim=100)
    assert n_params(G) == 3_576_704  # pytorch/examples dcgan netG (nz=100, ngf=64, nc=3)
    assert n_params(D) == 2_765_568  # pytorch/examples dcgan netD (ndf=64)


def test_dcgan_init():
    torch.manual_seed(0)
    G, _ = build_models("dcgan", resolution=64, channels=3, z_dim=100)
    w = G.convs[1].weight  # 512 x 256 x 4 x 4 draws
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.01)
    bn = G.norms[0].bn
    assert bn.weight.std().item() == pytest.approx(0.02, rel=0.2) and torch.all(bn.bias == 0)


def test_resnet_sngan32_parameter_counts():
    # mimicry SNGAN-32: G ngf=256, D ndf=128, nz=128
    G, D = build_models("resnet", resolution=32, channels=3, z_dim=128, g={"ch": 256}, d={"ch": 128})
    gblock = 2 * (256 * 256 * 9 + 256) + (256 * 256 + 256) + 2 * 2 * 256  # two convs, shortcut, two BNs
    assert n_params(G) == (128 * 16 * 256 + 16 * 256) + 3 * gblock + 2 * 256 + (256 * 3 * 9 + 3)
    opt = (3 * 128 * 9 + 128) + (128 * 128 * 9 + 128) + (3 * 128 + 128)
    down = 2 * (128 * 128 * 9 + 128) + (128 * 128 + 128)
    plain = 2 * (128 * 128 * 9 + 128)
    assert n_params(D) == opt + down + 2 * plain + (128 + 1)


def test_dcgan_channel_schedule_at_128_and_256_px():
    """Widths halve as resolution doubles, capped at 8x: 128 px adds one 8ngf stage to 64 px's stack."""
    for resolution, g_widths, d_widths in ((64, [8, 4, 2, 1], [1, 2, 4, 8]), (128, [8, 8, 4, 2, 1], [1, 2, 4, 8, 8]),
                                          (256, [8, 8, 8, 4, 2, 1], [1, 2, 4, 8, 8, 8])):
        G, D = build_models("dcgan", resolution=resolution, channels=3, z_dim=100, g={"ngf": 2}, d={"ndf": 2})
        assert [c.out_channels // 2 for c in G.convs] == g_widths
        assert [c.out_channels // 2 for c in D.convs] == d_widths
        assert D.head.kernel_size == (4, 4)  # D halves down to 4x4 at every size but 28


def test_dcgan_parameter_counts_at_128_and_256_px():
    """ngf = ndf = 64, nz 100, RGB: each doubling past 64 px adds one 512 -> 512 4x4 conv (+ its BN)."""
    layer = 512 * 512 * 16
    with torch.device("meta"):  # shapes only: counting needs no memory
        G64, D64 = build_models("dcgan", resolution=64, channels=3, z_dim=100)
    for resolution, extra in ((128, 1), (256, 2)):
        with torch.device("meta"):
            G, D = build_models("dcgan", resolution=resolution, channels=3, z_dim=100)
        assert n_params(G) == n_params(G64) + extra * (layer + 2 * 512)
        assert n_params(D) == n_params(D64) + extra * (layer + 2 * 512)
    assert (n_params(G), n_params(D)) == (11_967_360, 11_156_224)  # 256 px


def test_resnet_sngan128_parameter_counts():
    """mimicry's SNGAN-128 (ResNetGenerator128 / ResNetDiscriminator128, ngf = ndf = 1024, nz 128) is
    resnet at 128 px with ch 64: G 16, 16, 8, 4, 2, 1 x ch; D 1, 2, 4, 8, 16 x ch down to 4x4 + one 16ch block."""
    with torch.device("meta"):
        G, D = build_models("resnet", resolution=128, channels=3, z_dim=128)

    def conv(a, b, k):
        return a * b * k * k + b

    def gblock(a, b):  # BN(a), conv3 a->b, BN(b), conv3 b->b, 1x1 shortcut
        return 2 * a + conv(a, b, 3) + 2 * b + conv(b, b, 3) + conv(a, b, 1)

    g = [1024, 1024, 512, 256, 128, 64]
    assert n_params(G) == (128 * 16 * 1024 + 16 * 1024) + sum(gblock(a, b) for a, b in zip(g, g[1:])) \
        + 2 * 64 + conv(64, 3, 3)
    d = [64, 128, 256, 512, 1024]
    optimized = conv(3, 64, 3) + conv(64, 64, 3) + conv(3, 64, 1)
    downs = sum(conv(a, b, 3) + conv(b, b, 3) + conv(a, b, 1) for a, b in zip(d, d[1:]))
    assert n_params(D) == optimized + downs + 2 * conv(1024, 1024, 3) + (1024 + 1)
    assert (n_params(G), n_params(D)) == (32_150_787, 38_419_137)
    assert [b.downsample for b in D.blocks] == [True] * 5 + [False]


def test_resnet_channel_schedule_at_256_px():
    G, D = build_models("resnet", resolution=256, channels=3, z_dim=8, g={"ch": 2}, d={"ch": 2})
    assert [b.c1.out_channels // 2 for b in G.blocks] == [16, 16, 8, 4, 2, 1]  # 4 -> 256 px, six up-blocks
    assert [b.c1.out_channels // 2 for b in D.blocks] == [1, 2, 4, 8, 16, 16, 16]
    assert [b.downsample for b in D.blocks] == [True] * 6 + [False]  # 256 -> 4x4, then one block at 4x4


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
@pytest.mark.parametrize("resolution", [128, 256])
def test_high_resolution_trains_a_step_on_cpu(arch, resolution):
    """Forward and backward through G and D at 128/256 px (tiny widths): every parameter gets a
    finite gradient, and one Adam step changes D's output."""
    torch.manual_seed(0)
    G, D = small(arch, resolution=resolution, channels=3, num_classes=3, spectral_norm=True)
    y = torch.tensor([0, 2])
    x = G(torch.randn(2, Z), y)
    assert x.shape == (2, 3, resolution, resolution)
    loss = D(x, y).mean() - D(torch.rand(2, 3, resolution, resolution) * 2 - 1, y).mean()
    loss.backward()
    for net in (G, D):
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in (p.grad for p in G.parameters())) > 0


def test_resnet_discriminator_has_no_batchnorm():
    _, D = small("resnet", resolution=64, channels=3)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())


def test_deterministic_on_cpu():
    def run():
        torch.manual_seed(1)
        G, D = small("resnet", resolution=32, channels=3, num_classes=3, spectral_norm=True)
        y = torch.tensor([0, 1, 2])
        out = D(G(torch.randn(3, Z), y), y).sum()
        out.backward()
        return out.detach(), [p.grad.clone() for p in D.parameters()]

    (a, ga), (b, gb) = run(), run()
    assert torch.equal(a, b) and all(torch.equal(x, y) for x, y in zip(ga, gb))


def test_errors():
    with pytest.raises(ConfigError, match=r"resolution 48 not supported; choose one of: 28, 32, 64, 128, 256$"):
        build_models("dcgan", resolution=48, channels=3, z_dim=8)
    with pytest.raises(ConfigError, match=r"'resnet': resolution 512 not supported; choose one of: 28, 32, 64, 128, 256$"):
        build_models("resnet", resolution=512, channels=3, z_dim=8)
    with pytest.raises(ConfigError, match=r"'mlp': resolution 128 not supported; choose one of: 28, 32, 64$"):
        build_models("mlp", resolution=128, channels=3, z_dim=8)
    with pytest.raises(ConfigError, match=r"2 channels not supported; choose one of: 1, 3"):
        build_models("mlp", resolution=28, channels=2, z_dim=8)
    with pytest.raises(ConfigError, match=r"unknown generator option\(s\) width; valid: ngf"):
        build_models("dcgan", resolution=32, channels=3, z_dim=8, g={"width": 4})
    with pytest.raises(ConfigError, match=r"unknown discriminator option\(s\) ngf; valid: ndf, norm"):
        build_models("dcgan", resolution=32, channels=3, z_dim=8, d={"ngf": 4})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) depth"):
        build_models("resnet", resolution=32, channels=3, z_dim=8, depth=3)
    with pytest.raises(ConfigError, match=r"unknown architecture 'vit'; choose one of: dcgan, mlp, resnet"):
        build_models("vit", resolution=32, channels=3, z_dim=8)
    with pytest.raises(ConfigError, match="cannot be combined with spectral_norm"):
        build_models("dcgan", resolution=32, channels=3, z_dim=8, spectral_norm=True, d={"norm": "bn"})
    with pytest.raises(ConfigError, match="norm must be 'none' or 'bn'"):
        build_models("mlp", resolution=28, channels=1, z_dim=8, g={"norm": "ln"})
    with pytest.raises(ConfigError, match="ch must be a positive int"):
        build_models("resnet", resolution=28, channels=1, z_dim=8, g={"ch": 0})
    with pytest.raises(ConfigError) as e:
        build_models("mlp", resolution=28, channels=1, z_dim=8, g={"nope": 1})
    assert str(e.value) == "architecture 'mlp': unknown generator option(s) nope; valid: hidden, norm"


def test_dcgan_projection_term_starts_at_the_scale_of_the_logit():
    """The class term is taken on mean-pooled features: with a sum over the 4x4 map it started ~10x
    the unconditional logit, D saturated early and conditional training lagged (quickstart +
    model.conditional at 20 kimg: FID 40.6 with the sum, 20.7 with the mean; 17.2 unconditional)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    _, D = build_models("dcgan", resolution=32, channels=1, z_dim=64, num_classes=10, g={"ngf": 32}, d={"ndf": 32})
    x, y = torch.randn(256, 1, 32, 32), torch.randint(0, 10, (256,))
    h = x
    for conv, norm in zip(D.convs, D.norms):
        h = F.leaky_relu(norm(conv(h)), 0.2)
    head = D.head(h).flatten()
    with torch.no_grad():
        full = D(x, y)
    class_term = full - head.detach()
    assert class_term.std() < 2 * head.std()
