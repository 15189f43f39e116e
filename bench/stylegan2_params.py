"""raygan's StyleGAN2 against NVlabs' stylegan2-ada-pytorch `training/networks.py`, on CPU.

For each configuration: parameter counts of G and D (ours, official), then the official weights
and buffers copied into ours one tensor at a time (both register them in the same order with the
same shapes) and both networks run on the same inputs: G(z, c) in eval mode with the const noise
(and once with truncation), D on the same images. The counts printed here are the constants in
tests/test_stylegan2.py::test_parameter_counts_equal_the_official_networks.

    # a checkout of https://github.com/NVlabs/stylegan2-ada-pytorch (commit d72cc7d was used)
    python bench/stylegan2_params.py --official /path/to/stylegan2-ada-pytorch

The official code imports on torch 2.x on CPU: its custom ops fall back to their reference
implementations (a warning about CUDA_HOME is harmless).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import table  # noqa: E402
from raygan.models import build_models  # noqa: E402

#: name -> (resolution, channels, classes, z_dim, w_dim, mapping layers, fmaps, channel_max, mbstd group)
CONFIGS = {
    # train.py --cfg=paper256 (FFHQ/LSUN 256 in the ADA paper): fmaps 0.5, map 8, mbstd 8
    "paper256": (256, 3, 0, 512, 512, 8, 0.5, 512, 8),
    # train.py --cfg=auto at 256 px on 1 GPU: fmaps 0.5, map 2, mbstd 4 (our folder-stylegan2-256 preset)
    "auto256": (256, 3, 0, 512, 512, 2, 0.5, 512, 4),
    # train.py --cfg=cifar --cond=1 networks with the residual D (cifar itself uses D 'orig'): fmaps 1, map 2
    "cifar-cond-resnetD": (32, 3, 10, 512, 512, 2, 1.0, 512, 32),
    # our fmnist-stylegan2 preset: 32 px grey, w 128, map 2, fmaps 1/32, channel_max 64
    "fmnist-stylegan2": (32, 1, 0, 128, 128, 2, 0.03125, 64, 4),
    # the same, conditional on Fashion-MNIST's 10 classes
    "fmnist-stylegan2-cond": (32, 1, 10, 128, 128, 2, 0.03125, 64, 4),
}


def official(repo: Path, res, ch, classes, z, w, layers, fmaps, cmax, mbstd):
    sys.path.insert(0, str(repo))
    from training import networks  # the official module

    base = int(fmaps * 32768)
    G = networks.Generator(z_dim=z, c_dim=classes, w_dim=w, img_resolution=res, img_channels=ch,
                           mapping_kwargs=dict(num_layers=layers),
                           synthesis_kwargs=dict(channel_base=base, channel_max=cmax))
    D = networks.Discriminator(c_dim=classes, img_resolution=res, img_channels=ch, architecture="resnet",
                               channel_base=base, channel_max=cmax,
                               epilogue_kwargs=dict(mbstd_group_size=mbstd))
    return G, D


def ours(res, ch, classes, z, w, layers, fmaps, cmax, mbstd):
    return build_models("stylegan2", resolution=res, channels=ch, z_dim=z, num_classes=classes,
                        g=dict(w_dim=w, mapping_layers=layers, fmaps=fmaps, channel_max=cmax),
                        d=dict(fmaps=fmaps, channel_max=cmax, mbstd_group=mbstd))


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@torch.no_grad()
def copy_official(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Official tensors into ours, in registration order (shapes must agree one by one)."""
    sp, dp = list(src.parameters()), list(dst.parameters())
    assert len(sp) == len(dp), (len(sp), len(dp))
    for a, b in zip(sp, dp):
        assert a.shape == b.shape, (a.shape, b.shape)
        b.copy_(a)
    sb = [b for n, b in src.named_buffers() if "resample_filter" not in n]
    db = [b for n, b in dst.named_buffers() if "resample_filter" not in n]
    assert [t.shape for t in sb] == [t.shape for t in db]
    for a, b in zip(sb, db):
        b.copy_(a)


@torch.no_grad()
def compare_outputs(oG, oD, G, D, classes: int, z_dim: int, n: int = 4):
    torch.manual_seed(0)
    for m in (oG, oD, G, D):
        m.eval()
    oG.mapping.w_avg.normal_()  # a non-zero average, so truncation is exercised
    G.mapping.w_avg.copy_(oG.mapping.w_avg)
    z = torch.randn(n, z_dim)
    y = torch.arange(n) % classes if classes else None
    c = torch.nn.functional.one_hot(y, classes).float() if classes else torch.zeros(n, 0)
    img_o = oG(z, c, noise_mode="const")
    img = G(z, y)
    trunc_o = oG(z, c, truncation_psi=0.5, noise_mode="const")
    trunc = G(z, y, psi=0.5)
    d_o, d = oD(img_o, c).squeeze(1), D(img_o, y)
    scale = img_o.abs().max().item()
    return ((img - img_o).abs().max().item() / scale, (trunc - trunc_o).abs().max().item() / scale,
            (d - d_o).abs().max().item() / max(d_o.abs().max().item(), 1e-8))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True, help="a stylegan2-ada-pytorch checkout")
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in args.configs:
        cfg = CONFIGS[name]
        torch.manual_seed(0)
        oG, oD = official(args.official, *cfg)
        G, D = ours(*cfg)
        row = [name, n_params(G), n_params(oG), n_params(D), n_params(oD)]
        copy_official(oG, G)
        copy_official(oD, D)
        row += [f"{e:.1e}" for e in compare_outputs(oG, oD, G, D, cfg[2], cfg[3])]
        rows.append(row)
        print(f"{name}: G {row[1]:,} vs {row[2]:,}; D {row[3]:,} vs {row[4]:,}; rel. max diff image {row[5]}, "
              f"truncated {row[6]}, D {row[7]}", flush=True)
    print()
    print(table(["config", "G ours", "G official", "D ours", "D official", "img diff", "trunc diff", "D diff"],
                rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
