"""StyleGAN2 (`model.arch: stylegan2`): parameter counts against NVlabs' networks, closed forms
(demodulation, modulation as a grouped convolution, the path-length penalty), and what must
hold of a style-based G (same w -> same image, psi = 0 -> the w-average image, w-average
tracking, style mixing only in training)."""
import math

import pytest
import torch
import torch.nn.functional as F

from raygan.errors import ConfigError
from raygan.models import build_models
from raygan.models.stylegan2_layers import MinibatchStd, modulated_conv2d
from raygan.regularizers import PathLength

#: (resolution, channels, classes, z_dim, w_dim, mapping layers, fmaps, channel_max, mbstd group) ->
#: (G params, D params) of NVlabs/stylegan2-ada-pytorch (commit d72cc7d) training/networks.py, counted by
#: bench/stylegan2_params.py on its Generator(z_dim, c_dim, w_dim, img_resolution, img_channels,
#: mapping_kwargs=dict(num_layers), synthesis_kwargs=dict(channel_base=fmaps*32768, channel_max)) and
#: Discriminator(c_dim, img_resolution, img_channels, architecture="resnet", channel_base, channel_max,
#: epilogue_kwargs=dict(mbstd_group_size)); the same script copies the official weights into ours and
#: gets the official images (max relative difference < 1e-6) and D logits.
#: Configs: train.py --cfg=paper256; --cfg=auto at 256 px (map 2); --cfg=cifar --cond=1 networks with the
#: residual D; our fmnist-stylegan2 preset, unconditional and conditional.
OFFICIAL = {
    "paper256": ((256, 3, 0, 512, 512, 8, 0.5, 512, 8), (24_767_458, 24_001_089)),
    "auto256": ((256, 3, 0, 512, 512, 2, 0.5, 512, 4), (23_191_522, 24_001_089)),
    "cifar-cond-resnetD": ((32, 3, 10, 512, 512, 2, 1.0, 512, 32), (20_215_315, 23_876_096)),
    "fmnist-stylegan2": ((32, 1, 0, 128, 128, 2, 0.03125, 64, 4), (329_195, 288_929)),
    "fmnist-stylegan2-cond": ((32, 1, 10, 128, 128, 2, 0.03125, 64, 4), (346_987, 327_008)),
    # an earlier, wider draft of the preset (fmaps 1/16, channel_max 128), also checked against the official code
    "fmnist-wide": ((32, 1, 0, 128, 128, 2, 0.0625, 128, 4), (1_049_291, 1_153_345)),
}

TINY_G = dict(w_dim=16, mapping_layers=2, fmaps=0.004, channel_max=16)
TINY_D = dict(fmaps=0.004, channel_max=16)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def tiny(num_classes=0, resolution=32, **g):
    torch.manual_seed(0)
    return build_models("stylegan2", resolution=resolution, channels=1, z_dim=16, num_classes=num_classes,
                        g={**TINY_G, **g}, d=TINY_D)


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_parameter_counts_equal_the_official_networks(name):
    (res, ch, classes, z, w, layers, fmaps, cmax, mbstd), (g_count, d_count) = OFFICIAL[name]
    with torch.device("meta"):  # shapes only: the 24M-parameter networks cost nothing
        G, D = build_models("stylegan2", resolution=res, channels=ch, z_dim=z, num_classes=classes,
                            g=dict(w_dim=w, mapping_layers=layers, fmaps=fmaps, channel_max=cmax),
                            d=dict(fmaps=fmaps, channel_max=cmax, mbstd_group=mbstd))
    assert (n_params(G), n_params(D)) == (g_count, d_count)


def test_interface_names_and_shapes():
    G, D = tiny(num_classes=3)
    assert G.style_based is True and not hasattr(D, "style_based")
    assert (G.z_dim, G.w_dim, G.num_ws) == (16, 16, 8)  # 32 px: 1 + 2 + 2 + 2 convs + the last toRGB
    assert "mapping.w_avg" in G.state_dict() and G.w_avg.shape == (16,)
    z, y = torch.randn(4, 16), torch.tensor([0, 1, 2, 0])
    ws = G.mapping(z, y)
    assert ws.shape == (4, G.num_ws, G.w_dim)
    img = G.synthesis(ws, noise_mode="const")
    assert img.shape == (4, 1, 32, 32)
    assert D(img, y).shape == (4,)
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)


@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_larger_resolutions_build_and_run(resolution):
    G, D = tiny(resolution=resolution)
    assert G.num_ws == 2 * int(math.log2(resolution)) - 2
    img = G(torch.randn(2, 16))
    assert img.shape == (2, 1, resolution, resolution) and D(img).shape == (2,)


def test_demodulated_output_has_unit_expected_variance():
    """Demodulation divides each output channel by the norm of its modulated weights, so for
    i.i.d. unit-variance inputs every output pixel away from the zero-padded border has variance 1,
    whatever the weights and styles (here of very different scales)."""
    torch.manual_seed(0)
    x = torch.randn(256, 16, 12, 12)
    weight = torch.randn(8, 16, 3, 3) * torch.logspace(-2, 2, 8).view(8, 1, 1, 1)
    styles = torch.rand(256, 16) * 5 + 0.1
    for fused in (True, False):
        out = modulated_conv2d(x, weight, styles, fused=fused)[:, :, 1:-1, 1:-1]
        var = out.var(dim=(0, 2, 3))  # per output channel
        assert torch.allclose(var, torch.ones(8), atol=0.05), var
    raw = F.conv2d(x, weight, padding=1)[:, :, 1:-1, 1:-1]  # without demodulation: the weights' scale
    assert raw.var(dim=(0, 2, 3))[-1] > 100


def test_modulation_equals_the_grouped_conv_formulation():
    """Per sample n: w'_oi = s_ni * w_oi, w''_oi = w'_oi / sqrt(sum_ik w'^2 + 1e-8), y_n = conv(x_n, w''),
    the paper's formulation, computed by hand one sample at a time; the fused (grouped) and the
    activation-scaling paths both equal it, with and without 2x upsampling."""
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 5, 8, 8), torch.randn(4, 5, 3, 3), torch.randn(3, 5)
    expected = []
    for n in range(3):
        w = weight * styles[n].view(1, 5, 1, 1)
        w = w / (w.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        expected.append(F.conv2d(x[n:n + 1], w, padding=1))
    expected = torch.cat(expected)
    for fused in (True, False):
        assert torch.allclose(modulated_conv2d(x, weight, styles, fused=fused), expected, atol=1e-5)
    from raygan.models.stylegan2_layers import fir_filter

    f = fir_filter()
    up = [modulated_conv2d(x, weight, styles, up=True, resample_filter=f, fused=fused) for fused in (True, False)]
    assert up[0].shape == (3, 4, 16, 16) and torch.allclose(up[0], up[1], atol=1e-5)
    # no demodulation (toRGB): plain per-sample modulation
    plain = torch.cat([F.conv2d(x[n:n + 1], weight * styles[n].view(1, 5, 1, 1), padding=1) for n in range(3)])
    assert torch.allclose(modulated_conv2d(x, weight, styles, demodulate=False, fused=True), plain, atol=1e-5)


class LinearG(torch.nn.Module):
    """A generator whose image is linear in w: img = ws.flatten() @ M, so J^T y = M y by hand."""

    def __init__(self, M, num_ws, w_dim):
        super().__init__()
        self.M, self.num_ws, self.w_dim = torch.nn.Parameter(M), num_ws, w_dim

    def forward(self, z, y=None, return_ws=True):
        ws = z.view(-1, self.num_ws, self.w_dim) * 1.0
        img = (ws.flatten(1) @ self.M).view(-1, 1, 2, 3)
        return img, ws


def test_path_length_penalty_matches_a_hand_computation():
    torch.manual_seed(0)
    num_ws, w_dim = 2, 3
    M = torch.randn(num_ws * w_dim, 6)
    G = LinearG(M.clone(), num_ws, w_dim)
    z = torch.randn(4, num_ws * w_dim, requires_grad=True)
    pl = PathLength(weight=2.0, every=4, decay=0.01)
    pl.pl_mean = torch.tensor(1.5)
    torch.manual_seed(1)
    loss = pl.penalty(G, z)
    torch.manual_seed(1)
    noise = torch.randn(4, 1, 2, 3) / math.sqrt(6)  # the same draw: y / sqrt(H * W)
    grads = noise.flatten(1) @ M.t()  # J^T y for each sample, [4, num_ws * w_dim]
    lengths = grads.view(4, num_ws, w_dim).square().sum(2).mean(1).sqrt()
    mean = 1.5 + 0.01 * (lengths.mean() - 1.5)
    expected = (2.0 * 4) * ((lengths - mean) ** 2).mean()
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert torch.allclose(pl.pl_mean, mean, rtol=1e-6)
    # and it trains the generator: the penalty has a gradient w.r.t. G's parameters
    loss.backward()
    assert G.M.grad is not None and G.M.grad.abs().sum() > 0


def test_same_w_gives_the_same_image_and_psi_zero_gives_the_w_average_image():
    G, _ = tiny()
    with torch.no_grad():  # noise strengths start at 0: make the noise matter
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    G.train()
    for _ in range(3):  # training-mode forwards move w_avg off zero
        G(torch.randn(8, 16))
    G.eval()
    z = torch.randn(5, 16)
    ws = G.mapping(z)
    a, b = G.synthesis(ws, noise_mode="const"), G.synthesis(ws.clone(), noise_mode="const")
    assert torch.equal(a, b)
    assert torch.equal(G(z), G(z))  # eval: const noise, no mixing
    trunc = G.mapping(z, psi=0.0)
    assert torch.allclose(trunc, G.w_avg.expand_as(trunc))
    avg_img = G.synthesis(G.w_avg.view(1, 1, -1).repeat(1, G.num_ws, 1), noise_mode="const")
    assert torch.allclose(G(z, psi=0.0), avg_img.expand(5, -1, -1, -1), atol=1e-6)
    # psi = 1 is no truncation; a cutoff truncates only the first layers
    assert torch.equal(G.mapping(z, psi=1.0), ws)
    cut = G.mapping(z, psi=0.0, truncation_cutoff=3)
    assert torch.allclose(cut[:, :3], G.w_avg.expand(5, 3, -1)) and torch.equal(cut[:, 3:], ws[:, 3:])
    # random noise gives another image for the same w
    assert not torch.equal(G.synthesis(ws, noise_mode="random"), a)


def test_w_average_tracks_the_mapping_output_in_training_only():
    G, _ = tiny(w_avg_beta=0.5)
    z = torch.randn(64, 16)
    G.eval()
    G(z)
    assert torch.equal(G.w_avg, torch.zeros(16))  # eval: no update
    G.train()
    w = G.mapping(z, update_w_avg=False)[:, 0]
    before = G.w_avg.clone()
    G.mapping(z)
    assert torch.allclose(G.w_avg, before.lerp(w.mean(0), 0.5), atol=1e-6)


def test_style_mixing_only_in_training():
    G, _ = tiny(mixing_prob=1.0)
    z = torch.randn(4, 16)
    G.train()
    torch.manual_seed(3)
    _, ws = G(z, return_ws=True)
    plain = G.mapping(z, update_w_avg=False)
    mixed_layers = (ws != plain).any(dim=2).any(dim=0)
    first = int(mixed_layers.float().argmax())
    assert 1 <= first < G.num_ws and mixed_layers[first:].all() and not mixed_layers[:first].any()
    G.eval()
    _, ws_eval = G(z, return_ws=True)
    assert torch.equal(ws_eval, G.mapping(z))


def test_minibatch_std_appends_the_group_std():
    x = torch.randn(8, 4, 3, 3)
    out = MinibatchStd(group_size=4)(x)
    assert out.shape == (8, 5, 3, 3)
    groups = x.view(4, 2, 4, 3, 3)  # sample i = g * 2 + j is in group j
    expected = groups.var(dim=0, unbiased=False).add(1e-8).sqrt().mean(dim=(1, 2, 3))
    assert torch.allclose(out[:, 4, 0, 0], expected.repeat(4), atol=1e-6)
    assert MinibatchStd(group_size=4)(torch.randn(6, 4, 3, 3)).shape == (6, 5, 3, 3)  # 6: groups of 3


def test_bad_options_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="resolution 28 not supported"):
        build_models("stylegan2", resolution=28, channels=1, z_dim=8)
    with pytest.raises(ConfigError, match="mixing_prob"):
        build_models("stylegan2", resolution=32, channels=1, z_dim=8, g={"mixing_prob": 2})
    with pytest.raises(ConfigError, match="unknown generator option"):
        build_models("stylegan2", resolution=32, channels=1, z_dim=8, g={"ngf": 8})
    with pytest.raises(ConfigError, match="spectral norm"):
        build_models("stylegan2", resolution=32, channels=1, z_dim=8, spectral_norm=True)


def test_the_shared_sampling_functions_drive_the_real_stylegan2():
    """raygan.tasks.generate.sampling (used by `raygan sample --trunc/--mix/--interp`) on this G."""
    from raygan.tasks.generate.sampling import interpolation_grid, mixing_grid, sample_images

    G, _ = tiny()
    G.train()
    G(torch.randn(16, 16))  # a non-zero w_avg
    G.eval()
    z = torch.randn(3, 16)
    avg = G.synthesis(G.w_avg.view(1, 1, -1).repeat(1, G.num_ws, 1))
    assert torch.allclose(sample_images(G, z, None, psi=0.0), avg.expand(3, -1, -1, -1), atol=1e-6)
    assert torch.equal(sample_images(G, z, None), G(z))
    grid = mixing_grid(G, z[:2], z[2:], None, None)
    assert grid.shape == (6, 1, 32, 32)  # (2 + 1) x (1 + 1)
    ws_r, ws_c = G.mapping(z[:2]), G.mapping(z[2:])
    cell = torch.cat([ws_c[0, :4], ws_r[1, 4:]]).unsqueeze(0)  # row 1, column 0: the coarse half from the column
    assert torch.allclose(grid[5], G.synthesis(cell)[0], atol=1e-6)
    ends = interpolation_grid(G, z[:1], z[1:2], None, steps=3)
    assert torch.allclose(ends[0], G(z[:1])[0], atol=1e-6) and torch.allclose(ends[2], G(z[1:2])[0], atol=1e-6)
