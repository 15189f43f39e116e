"""Using a trained generator (raygan.tasks.generate.sampling): truncation in z and in w, slerp,
interpolation and style-mixing grids, against their closed forms. The style-based generator here
is a small real module with StyleGAN2's interface (mapping / synthesis / w_avg / num_ws), so the
w-space paths run before (and independently of) the stylegan2 architecture."""
import math

import pytest
import torch
from torch import nn

from raygan.models import build_models
from raygan.tasks.generate import sampling
from raygan.tasks.generate.sampling import (Truncated, draw, interpolation_grid, is_style_based, mixing_grid,
                                            slerp, synthesize, truncate_z)


class TinyStyleG(nn.Module):
    """StyleGAN2's generator interface in a few linear layers: mapping z (+ label) -> w, broadcast to
    num_ws, truncated toward the tracked w_avg; synthesis sums one linear map per style layer, so
    each layer's w visibly changes the image; per-pixel noise in "random" mode only."""

    style_based = True

    def __init__(self, z_dim=6, w_dim=5, num_ws=4, num_classes=0, res=4):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_classes, self.res = z_dim, w_dim, num_ws, num_classes, res
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes else None
        self.map = nn.Sequential(nn.Linear(z_dim * (2 if num_classes else 1), w_dim), nn.LeakyReLU(0.2),
                                 nn.Linear(w_dim, w_dim))
        self.register_buffer("w_avg", torch.randn(w_dim))
        self.layers = nn.ModuleList(nn.Linear(w_dim, res * res) for _ in range(num_ws))

    def mapping(self, z, labels=None, psi=1.0, truncation_cutoff=None):
        x = torch.cat([z, self.embed(labels)], 1) if self.embed is not None else z
        ws = self.map(x).unsqueeze(1).repeat(1, self.num_ws, 1)
        if psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cut] = self.w_avg.lerp(ws[:, :cut], psi)
        return ws

    def synthesis(self, ws, noise_mode="const"):
        x = sum(layer(ws[:, i]) for i, layer in enumerate(self.layers))
        if noise_mode == "random":
            x = x + 0.1 * torch.randn_like(x)
        return torch.tanh(x).view(-1, 1, self.res, self.res)

    def forward(self, z, labels=None):  # as stylegan2's: random noise in training, constant in eval mode
        return self.synthesis(self.mapping(z, labels), noise_mode="random" if self.training else "const")


@pytest.fixture
def style_g():
    torch.manual_seed(0)
    return TinyStyleG().eval()


@pytest.fixture
def dcgan_g():
    torch.manual_seed(0)
    G, _ = build_models("dcgan", resolution=28, channels=1, z_dim=6, g={"ngf": 4}, d={"ndf": 4})
    return G.eval()


# ---------------------------------------------------------------------------------------- slerp
def test_slerp_matches_the_formula_endpoints_norm_and_midpoint():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    assert torch.equal(slerp(a, b, torch.zeros(5)), a) and torch.equal(slerp(a, b, torch.ones(5)), b)
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=torch.float64)
    for i in range(5):  # sin((1-t) w)/sin w a + sin(t w)/sin w b, written out per row
        w = math.acos(float(a[i] @ b[i]) / float(a[i].norm() * b[i].norm()))
        want = math.sin((1 - t[i]) * w) / math.sin(w) * a[i] + math.sin(t[i] * w) / math.sin(w) * b[i]
        assert torch.allclose(slerp(a[i:i + 1], b[i:i + 1], t[i:i + 1])[0], want, atol=1e-12)
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    assert torch.allclose(slerp(an, bn, t).norm(dim=1), torch.ones(5, dtype=torch.float64), atol=1e-12)
    mid = slerp(an, bn, torch.full((5,), 0.5))
    assert torch.allclose(mid, (an + bn) / (an + bn).norm(dim=1, keepdim=True), atol=1e-12)
    same = slerp(a[:1], a[:1], torch.tensor([0.4]))  # parallel: no division by sin 0
    assert torch.allclose(same, a[:1]) and torch.isfinite(same).all()


# ---------------------------------------------------------------------------------- truncation
def test_z_truncation_scales_z_toward_zero(dcgan_g):
    z = torch.randn(4, 6)
    assert torch.equal(truncate_z(z, 0.7), z * 0.7)
    with torch.no_grad():
        assert torch.equal(synthesize(dcgan_g, z, None, 0.7), dcgan_g(z * 0.7))
        assert torch.equal(synthesize(dcgan_g, z, None, 1.0), dcgan_g(z))
        zero = synthesize(dcgan_g, z, None, 0.0)  # psi 0: the mean latent, one image for all
    assert torch.equal(zero, dcgan_g(torch.zeros(4, 6)).detach())
    assert torch.equal(zero[0], zero[3])
    assert not is_style_based(dcgan_g) and sampling.truncation_space(dcgan_g) == "z"


def test_w_truncation_goes_through_mapping_toward_w_avg(style_g):
    z = torch.randn(3, 6)
    with torch.no_grad():
        ws = style_g.mapping(z)
        got = synthesize(style_g, z, None, 0.5)
        want = style_g.synthesis(style_g.w_avg + 0.5 * (ws - style_g.w_avg))
        zero = synthesize(style_g, z, None, 0.0)
        avg = style_g.synthesis(style_g.w_avg.expand(1, 4, 5))
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(zero, avg.expand(3, -1, -1, -1), atol=1e-6)
    assert not torch.allclose(got, synthesize(style_g, z, None, 1.0))
    assert sampling.truncation_space(style_g) == "w"


def test_truncated_wrapper_is_g_at_psi_one_and_keeps_its_interface(style_g, dcgan_g):
    z = torch.randn(3, 6)
    with torch.no_grad():
        for G in (style_g, dcgan_g):
            t = Truncated(G, 1.0)
            assert t.z_dim == 6 and t.num_classes == 0
            for train in (False, True):  # style-based: G's own noise mode (constant in eval, random in training)
                t.train(train)
                torch.manual_seed(5)
                a = t(z)
                torch.manual_seed(5)
                assert torch.equal(a, G(z)) and G.training == train
            t.eval()
        assert torch.equal(Truncated(dcgan_g, 0.3)(z), dcgan_g(0.3 * z))


# ------------------------------------------------------------------------------------ grids
def test_interpolation_slerps_in_z_for_a_non_style_generator(dcgan_g):
    z0, z1 = torch.randn(2, 6), torch.randn(2, 6)
    with torch.no_grad():
        grid = interpolation_grid(dcgan_g, z0, z1, None, 3, psi=0.8)
        t = torch.tensor([0.5, 0.5])
        want = torch.cat([dcgan_g(0.8 * z0), dcgan_g(0.8 * slerp(z0, z1, t)), dcgan_g(0.8 * z1)])
    assert grid.shape == (6, 1, 28, 28)
    rows = grid.reshape(2, 3, 1, 28, 28)
    assert torch.allclose(rows[:, 0], want[:2], atol=1e-6) and torch.allclose(rows[:, 2], want[4:], atol=1e-6)
    assert torch.allclose(rows[:, 1], want[2:4], atol=1e-6)


def test_interpolation_lerps_in_w_for_a_style_based_generator(style_g):
    z0, z1 = torch.randn(2, 6), torch.randn(2, 6)
    with torch.no_grad():
        rows = interpolation_grid(style_g, z0, z1, None, 3, psi=0.7).reshape(2, 3, 1, 4, 4)
        w0, w1 = style_g.mapping(z0, psi=0.7), style_g.mapping(z1, psi=0.7)
        mid = style_g.synthesis((w0 + w1) / 2)
        slerped = synthesize(style_g, slerp(z0, z1, torch.tensor([0.5, 0.5])), None, 0.7)
    assert torch.allclose(rows[:, 0], style_g.synthesis(w0), atol=1e-6)
    assert torch.allclose(rows[:, 2], style_g.synthesis(w1), atol=1e-6)
    assert torch.allclose(rows[:, 1], mid, atol=1e-6)
    assert not torch.allclose(rows[:, 1], slerped, atol=1e-4)  # w, not z


def test_mixing_grid_takes_the_coarse_styles_from_the_column(style_g):
    zr, zc = torch.randn(2, 6), torch.randn(3, 6)
    with torch.no_grad():
        grid = mixing_grid(style_g, zr, zc, None, None, psi=0.9)
        wr, wc = style_g.mapping(zr, psi=0.9), style_g.mapping(zc, psi=0.9)
    assert grid.shape == (3 * 4, 1, 4, 4)
    g = grid.reshape(3, 4, 1, 4, 4)
    assert torch.equal(g[0, 0], torch.full((1, 4, 4), -1.0))
    assert torch.allclose(g[0, 1:], style_g.synthesis(wc), atol=1e-6)  # top row: the column sources
    assert torch.allclose(g[1:, 0], style_g.synthesis(wr), atol=1e-6)  # left column: the row sources
    for r in range(2):
        for c in range(3):
            w = wr[r:r + 1].clone()
            w[:, :2] = wc[c:c + 1, :2]  # num_ws 4: the first 2 layers from the column
            assert torch.allclose(g[1 + r, 1 + c], style_g.synthesis(w)[0], atol=1e-6)
    assert not torch.allclose(g[1, 1], g[1, 0], atol=1e-4) and not torch.allclose(g[1, 1], g[0, 1], atol=1e-4)


def test_mixing_needs_a_style_based_generator(dcgan_g):
    with pytest.raises(ValueError, match="style-based"):
        mixing_grid(dcgan_g, torch.randn(1, 6), torch.randn(1, 6), None, None)


def test_draw_is_reproducible_by_seed_with_labels_per_row():
    torch.manual_seed(0)
    G = TinyStyleG(num_classes=3).eval()
    a, ya, nrow = draw(G, seed=7, num=4, interp=3, psi=0.5)
    torch.manual_seed(123)  # the global RNG does not matter
    b, yb, _ = draw(G, seed=7, num=4, interp=3, psi=0.5)
    assert nrow == 3 and torch.equal(a, b) and ya.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0]
    c, yc, _ = draw(G, seed=8, num=4, interp=3, psi=0.5)
    assert not torch.equal(a, c)
    m, ym, nrow = draw(G, seed=7, num=2, mix=True, class_=1)
    assert nrow == 3 and m.shape[0] == 9 and ym is None
    s, ys, _ = draw(G, seed=7, num=5, class_=2)
    assert ys.tolist() == [2] * 5
