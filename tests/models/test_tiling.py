"""Tiled inference (raygan.models.tiling) against one pass, on a real photo (scikit-image's astronaut
and camera), with randomly initialised repair and translate generators in eval mode.

A network whose layers are local (convolutions, eval-mode BatchNorm, pixel shuffle) gives the same
output tiled as in one pass when every tile keeps a margin of its receptive radius: the tests demand
1/255. InstanceNorm (the translator's default) normalises each tile with its own statistics: the test
measures how far that moves the output and says so (a bound, not equality).
"""
import pytest
import torch

from raygan.errors import ConfigError
from raygan.models.networks import GENERATORS
from raygan.models.tiling import Tiling, receptive_radius, run_tiled, uses_image_statistics

skdata = pytest.importorskip("skimage.data")


def photo(size=96, grey=False):
    """A 96 x 80 crop of the astronaut (or the camera man), float [-1, 1], (1, C, H, W)."""
    a = skdata.camera()[None] if grey else skdata.astronaut().transpose(2, 0, 1)
    x = torch.from_numpy(a.copy()).float()[None] / 127.5 - 1
    x = torch.nn.functional.interpolate(x, size=(192, 160), mode="area")  # the whole picture, small
    return x[..., :size, :size - 16]


def net(name, **kw):
    torch.manual_seed(0)
    g = GENERATORS.get(name)(**kw)
    for m in g.modules():  # PyTorch's default init (outputs far from 0, unlike N(0, 0.02)) and BatchNorm
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):  # with running statistics, as trained
            m.reset_parameters()
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return g.eval()


def tiled_vs_one_pass(g, x, tile, overlap=8, scale=1, multiple=1):
    c = receptive_radius(lambda m: m, g, [x.shape[1]], [1e-3], scale=scale, multiple=multiple)
    plan = Tiling(tile, overlap, c, multiple).check()
    with torch.no_grad():
        one = g(x)
        tiled = run_tiled(g, [x], plan, scale=scale)
    assert tiled.shape == one.shape
    return (tiled - one).abs().max().item() / 2, c, plan  # on the [0, 1] scale


def test_unet_tiles_equal_one_pass():
    g = net("unet", in_channels=3, out_channels=3, resolution=16, ngf=4)  # depth 3, BatchNorm (eval)
    diff, c, plan = tiled_vs_one_pass(g, photo(), tile=48, multiple=g.multiple)
    assert c == 15 and plan.starts(96)[:2] == [0, 8]  # context 15 px: neighbours share 38 px
    assert diff < 1 / 255 / 100, diff


def test_srresnet_tiles_equal_one_pass_at_scale_times_the_tile():
    g = net("srresnet", in_channels=1, out_channels=1, resolution=32, nf=4, blocks=2, scale=2)
    x = photo(48, grey=True)
    diff, c, _ = tiled_vs_one_pass(g, x, tile=32, overlap=4, scale=2)
    assert c == 8 and diff < 1 / 255 / 100, diff


def test_translator_tiles_equal_one_pass_without_instance_norm():
    g = net("resnet-translator", in_channels=3, out_channels=3, resolution=32, ngf=4, n_blocks=1, norm="batch")
    assert not uses_image_statistics(g)
    diff, c, _ = tiled_vs_one_pass(g, photo(), tile=64, multiple=4)
    assert c == 19 and diff < 1 / 255 / 100, diff


def test_instance_norm_tiles_differ_from_one_pass_by_their_statistics():
    """InstanceNorm: each tile is normalised with its own mean and variance, so tiles are not the one
    pass; on this photo the largest pixel difference is several 8-bit levels (measured, bounded)."""
    g = net("resnet-translator", in_channels=3, out_channels=3, resolution=32, ngf=4, n_blocks=1)
    assert uses_image_statistics(g)
    diff, _, _ = tiled_vs_one_pass(g, photo(), tile=64, multiple=4)
    assert diff > 10 / 255, diff  # 126.6 / 255 measured: tiles with InstanceNorm are no substitute for one pass


def test_a_tile_below_the_receptive_field_is_refused_naming_the_minimum():
    g = net("unet", in_channels=3, out_channels=3, resolution=16, ngf=4)
    with pytest.raises(ConfigError) as e:
        Tiling(32, 8, receptive_radius(lambda m: m, g, [3], [1e-3], multiple=8), 8).check()
    msg = str(e.value)
    assert "\n" not in msg and "use --tile >= 48" in msg and "15 px of context" in msg


def test_translate_files_in_tiles_with_a_note_when_instance_norm_makes_them_differ(tmp_path):
    """`translate_path` on a photo file: tile 64 == one pass within one 8-bit level for a translator
    without InstanceNorm; with it, the written notes say that tiles differ from one pass."""
    import numpy as np
    from PIL import Image

    from raygan.tasks.translate.infer import translate_path
    from raygan.tasks.translate.net import CycleTranslator

    Image.fromarray(((photo()[0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()).save(tmp_path / "p.png")
    for norm in ("batch", "instance"):
        kw = dict(in_channels=3, out_channels=3, resolution=32, ngf=4, n_blocks=1, norm=norm)
        t = CycleTranslator(net("resnet-translator", **kw), net("resnet-translator", **kw)).eval()
        one = translate_path(t, tmp_path / "p.png", tmp_path / f"one-{norm}.png", "a2b", tile=0)
        tiled = translate_path(t, tmp_path / "p.png", tmp_path / f"tiled-{norm}.png", "a2b", tile=64)
        a, b = (np.array(Image.open(w[0])).astype(int) for w in (one, tiled))
        assert one.notes == [] and "1 image(s) run in 64 px tiles (19 px" in tiled.notes[0]
        if norm == "batch":
            assert np.abs(a - b).max() <= 1 and "differs" not in tiled.notes[0]
        else:
            assert np.abs(a - b).max() > 10 and "InstanceNorm" in tiled.notes[0]


@pytest.mark.parametrize("case", ["inpaint", "sr-unet"])
def test_repair_networks_with_a_mask_or_an_upsampled_input_tile_as_one_pass(case):
    """RepairNet's glue: the mask as a second tiled input (inpaint-unet keeps known pixels); SR through a
    U-Net on the bicubic-upsampled image (the grid is the U-Net's seen through the scale)."""
    from raygan.tasks.repair.infer import context, grid
    from raygan.tasks.repair.net import RepairNet

    x = photo(64, grey=True)
    if case == "inpaint":
        g = RepairNet(net("inpaint-unet", in_channels=2, out_channels=1, resolution=16, ngf=4), channels=1, scale=1,
                      mask=True, upsample_input=False).eval()
        mask = torch.zeros(1, 1, *x.shape[-2:])
        mask[..., 10:30, 5:40] = 1
        inputs, fn, scale = [x, mask], (lambda a, m: g(a, m)), 1
    else:
        g = RepairNet(net("unet", in_channels=1, out_channels=1, resolution=16, ngf=4), channels=1, scale=2,
                      mask=False, upsample_input=True).eval()
        inputs, fn, scale = [x[..., :32, :48]], (lambda a: g(a)), 2
    c, m = context(g), grid(g)
    assert (c, m) == ((15, 8) if case == "inpaint" else (9, 4))
    with torch.no_grad():
        one = fn(*inputs)
        tiled = run_tiled(fn, inputs, Tiling(48 if case == "inpaint" else 28, 4, c, m).check(), scale=scale)
    assert tiled.shape == one.shape and (tiled - one).abs().max().item() / 2 < 1e-4
    if case == "inpaint":
        assert (tiled[mask == 0] - x[mask == 0]).abs().max() < 1e-6  # known pixels kept (float32 blend)
