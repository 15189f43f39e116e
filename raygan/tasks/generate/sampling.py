"""Using a trained generator: the one sampling function that `raygan sample`, `raygan.api.sample`
and `raygan eval --trunc` share, and the pictures made with it (interpolation and style-mixing
grids). Torch only; every latent comes from the caller's seeded `torch.Generator`.

Truncation (psi in [0, 1]; 1 = none, 0 = the mean latent for every image):
  * style-based generators (`G.style_based`, e.g. stylegan2): in w, as StyleGAN does:
    w' = w_avg + psi * (w - w_avg), through `G.mapping(z, labels, psi=psi)`.
  * every other generator (mlp, dcgan, resnet and their conditional forms): in z, by scaling the
    latent toward its mean 0: z' = psi * z (the z-space form of the same rule, since z's mean is 0;
    BigGAN's "truncation trick" resamples instead, which has no psi = 0 end). psi = 0 gives G(0, y).

Interpolation: endpoints drawn per row; z paths are spherical (slerp, White 2016: the Gaussian's
mass lies near a sphere, a straight line through its middle leaves it), w paths linear (lerp, as
StyleGAN's w space is built to be linear).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

#: images per forward pass when making many
CHUNK = 500


def is_style_based(G: nn.Module) -> bool:
    """A generator with StyleGAN's mapping/synthesis split (class attribute `style_based = True`)."""
    return bool(getattr(G, "style_based", False))


def truncation_space(G: nn.Module) -> str:
    return "w" if is_style_based(G) else "z"


def truncate_z(z: torch.Tensor, psi: float) -> torch.Tensor:
    """z-space truncation of a non-style generator: z scaled toward its mean 0 by psi."""
    return z * float(psi)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """a + t (b - a), with t of shape (N,) broadcast over a's trailing dimensions."""
    t = t.reshape(-1, *([1] * (a.dim() - 1))).to(a.dtype)
    return a + t * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation of rows: sin((1-t) w)/sin(w) a + sin(t w)/sin(w) b, where w is the
    angle between a and b (rows of shape (N, D), t of shape (N,)). Parallel rows fall back to lerp."""
    t = t.to(a.dtype).reshape(-1, 1)
    an = a / a.norm(dim=1, keepdim=True).clamp_min(eps)
    bn = b / b.norm(dim=1, keepdim=True).clamp_min(eps)
    omega = torch.acos((an * bn).sum(dim=1, keepdim=True).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    near = so.abs() < eps
    safe = torch.where(near, torch.ones_like(so), so)
    out = torch.sin((1.0 - t) * omega) / safe * a + torch.sin(t * omega) / safe * b
    return torch.where(near, a + t * (b - a), out)


def mapped(G: nn.Module, z: torch.Tensor, labels: Optional[torch.Tensor], psi: float) -> torch.Tensor:
    """ws (N, num_ws, w_dim) of a style-based G, truncated in w."""
    return G.mapping(z, labels, psi=float(psi))


def synthesize(G: nn.Module, z: torch.Tensor, labels: Optional[torch.Tensor] = None, psi: float = 1.0,
               noise_mode: str = "const") -> torch.Tensor:
    """Images in [-1, 1] from latents z (and labels), truncated by psi in w or z (see the module
    docstring). `noise_mode` is a style-based G's per-pixel noise: "const" (reproducible, as
    StyleGAN2's generate.py and its G in eval mode) or "random" (as its G in training mode)."""
    if is_style_based(G):
        return G.synthesis(mapped(G, z, labels, psi), noise_mode=noise_mode)
    return G(truncate_z(z, psi), labels)


def _chunked(fn, n: int) -> torch.Tensor:
    return torch.cat([fn(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK)]) if n else torch.empty(0)


def sample_images(G: nn.Module, z: torch.Tensor, labels: Optional[torch.Tensor], psi: float = 1.0,
                  noise_mode: str = "const") -> torch.Tensor:
    return _chunked(lambda i, j: synthesize(G, z[i:j], None if labels is None else labels[i:j], psi,
                                            noise_mode).float(), z.shape[0])


def interpolation_grid(G: nn.Module, z0: torch.Tensor, z1: torch.Tensor, labels: Optional[torch.Tensor],
                       steps: int, psi: float = 1.0, noise_mode: str = "const") -> torch.Tensor:
    """rows x steps images (row-major): row r goes from z0[r] to z1[r] in `steps` equal steps,
    slerp in z (then truncated in z: scaling commutes with slerp) or lerp in w (after truncation
    in w) for a style-based G. A row keeps its label (labels: (rows,) or None)."""
    rows = z0.shape[0]
    t = torch.linspace(0.0, 1.0, steps, device=z0.device).repeat(rows)
    y = None if labels is None else labels.repeat_interleave(steps)
    a, b = z0.repeat_interleave(steps, dim=0), z1.repeat_interleave(steps, dim=0)
    if is_style_based(G):
        def chunk(i, j):
            w = lerp(mapped(G, a[i:j], None if y is None else y[i:j], psi),
                     mapped(G, b[i:j], None if y is None else y[i:j], psi), t[i:j])
            return G.synthesis(w, noise_mode=noise_mode).float()
        return _chunked(chunk, a.shape[0])
    return sample_images(G, slerp(a, b, t), y, psi, noise_mode)


def coarse_layers(G: nn.Module) -> int:
    """The style layers a mixing grid's column gives: the first half (coarse: pose, shape)."""
    return max(1, int(G.num_ws) // 2)


def mixing_grid(G: nn.Module, z_rows: torch.Tensor, z_cols: torch.Tensor, y_rows: Optional[torch.Tensor],
                y_cols: Optional[torch.Tensor], psi: float = 1.0, layers: Optional[int] = None,
                noise_mode: str = "const") -> torch.Tensor:
    """StyleGAN's style-mixing figure, (R+1) x (C+1) images row-major: the top row the column
    sources, the left column the row sources, the top-left corner black (-1); cell (r, c) has
    row r's styles with the first `layers` (default: the coarse half) taken from column c."""
    if not is_style_based(G):
        raise ValueError("style mixing needs a style-based generator (G.style_based)")
    cut = coarse_layers(G) if layers is None else int(layers)
    w_r, w_c = mapped(G, z_rows, y_rows, psi), mapped(G, z_cols, y_cols, psi)
    R, C = w_r.shape[0], w_c.shape[0]
    mixed = w_r.unsqueeze(1).repeat(1, C, 1, 1)  # (R, C, num_ws, w_dim)
    mixed[:, :, :cut] = w_c.unsqueeze(0)[:, :, :cut]
    ws = torch.cat([w_c, w_r, mixed.reshape(R * C, *w_r.shape[1:])])
    imgs = _chunked(lambda i, j: G.synthesis(ws[i:j], noise_mode=noise_mode).float(), ws.shape[0])
    cols, rows, cells = imgs[:C], imgs[C:C + R], imgs[C + R:].reshape(R, C, *imgs.shape[1:])
    corner = torch.full_like(imgs[:1], -1.0)
    top = torch.cat([corner, cols])
    body = [torch.cat([rows[r:r + 1], cells[r]]) for r in range(R)]
    return torch.cat([top, *body])


def check_psi(psi: float) -> Optional[str]:
    """None if psi is a truncation in [0, 1], else why not (the caller raises its own error)."""
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not math.isfinite(psi) or not 0 <= psi <= 1:
        return f"must be a number from 0 (the mean latent) to 1 (no truncation), got {psi}"
    return None


class Truncated(nn.Module):
    """G seen through `synthesize` at a fixed psi: what `raygan eval --trunc` judges. It has G's
    `z_dim` and `num_classes`, so the evaluator draws its latents and labels as for G itself; at
    psi = 1 it makes exactly G(z, y) (a style-based G's noise as its own forward: constant in eval
    mode, random in training mode)."""

    def __init__(self, G: nn.Module, psi: float):
        super().__init__()
        self.G, self.psi = G, float(psi)
        self.z_dim = G.z_dim
        self.num_classes = int(getattr(G, "num_classes", 0) or 0)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        return synthesize(self.G, z, y, self.psi, "random" if self.G.training else "const")


def draw(G: nn.Module, *, seed: int, num: int, psi: float = 1.0, labels: Optional[torch.Tensor] = None,
         class_: Optional[int] = None, interp: Optional[int] = None, mix: bool = False, device=None):
    """(images in [-1, 1] row-major, per-image labels or None, images per grid row) for `seed`:
    `num` samples; or `num` rows of an `interp`-step interpolation; or a style-mixing grid of `num`
    row and `num` column sources. Labels: `labels`, else all `class_`, else classes in turn (per
    sample, per interpolation row, per mixing row and column). Bitwise reproducible on one device."""
    device = torch.device(device or "cpu")
    k = int(getattr(G, "num_classes", 0) or 0)
    gen = torch.Generator(device=device).manual_seed(int(seed))

    def classes(n: int) -> Optional[torch.Tensor]:
        if not k:
            return None
        if class_ is not None:
            return torch.full((n,), int(class_), dtype=torch.long, device=device)
        return torch.arange(n, device=device) % k

    def z(n: int) -> torch.Tensor:
        return torch.randn(n, G.z_dim, generator=gen, device=device)

    with torch.no_grad(), torch.random.fork_rng(devices=[]):  # anything else random in G: seeded too
        torch.manual_seed(int(seed))
        if interp:
            z0, z1 = z(num), z(num)
            y = classes(num)
            images = interpolation_grid(G, z0, z1, y, interp, psi)
            return images, None if y is None else y.repeat_interleave(interp), interp
        if mix:
            z_rows, z_cols = z(num), z(num)
            return mixing_grid(G, z_rows, z_cols, classes(num), classes(num), psi), None, num + 1
        zs = z(num)
        y = labels.to(device) if labels is not None else classes(num)
        return sample_images(G, zs, y, psi), y, max(1, int(num ** 0.5))
