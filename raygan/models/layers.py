"""Pieces every architecture shares: conditional BN, the projection term, spectral norm,
geometry checks and the `make(...) -> (G, D)` factory the registry stores.

Keeping them here means an architecture module only describes its layer stack.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from raygan.errors import ConfigError

#: what the convolutional generators (dcgan, resnet) build: 28 (7 -> 28), then powers of two from 32
RESOLUTIONS = (28, 32, 64, 128, 256)
CHANNELS = (1, 3)


def check_geometry(arch: str, resolution: int, channels: int, resolutions: Tuple[int, ...] = RESOLUTIONS) -> None:
    if isinstance(resolution, bool) or resolution not in resolutions:
        raise ConfigError(
            f"architecture '{arch}': resolution {resolution} not supported; "
            f"choose one of: {', '.join(map(str, resolutions))}"
        )
    if channels not in CHANNELS:
        raise ConfigError(
            f"architecture '{arch}': {channels} channels not supported; "
            f"choose one of: {', '.join(map(str, CHANNELS))}"
        )


def require_labels(y: Optional[torch.Tensor], num_classes: int, who: str) -> None:
    """A conditional model silently given no labels would train an unconditional one."""
    if num_classes and y is None:
        raise ValueError(f"{who} is class-conditional ({num_classes} classes): pass labels y")


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose gamma/beta are looked up per class (de Vries et al. 2017, as in
    SNGAN-projection), so the label steers G at every resolution.

    With num_classes=0 it is an ordinary affine BatchNorm; `forward(x, y)` is the same
    call either way, which keeps the generators free of `if conditional` branches.
    """

    def __init__(self, num_features: int, num_classes: int = 0, dim: int = 2):
        super().__init__()
        bn = nn.BatchNorm2d if dim == 2 else nn.BatchNorm1d
        self.num_classes = num_classes
        self.bn = bn(num_features, affine=not num_classes)
        if num_classes:
            self.gamma = nn.Embedding(num_classes, num_features)
            self.beta = nn.Embedding(num_classes, num_features)
            nn.init.ones_(self.gamma.weight)
            nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.bn(x)
        if not self.num_classes:
            return h
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        return h * self.gamma(y).view(shape) + self.beta(y).view(shape)


class LabelInput(nn.Module):
    """G's label as an input: a learned per-class vector, scaled to unit second moment and
    concatenated to z (StyleGAN2-ADA's mapping input). It is drawn N(0, 1), so from the first
    step each class enters G as a distinct input as large as z; conditional BN alone steers
    G only as fast as Adam moves gammas that start at 1 (about lr per step), too slowly for
    short low-data runs. With num_classes=0 it passes z through."""

    def __init__(self, num_classes: int, z_dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.out_dim = z_dim * 2 if num_classes else z_dim
        if num_classes:
            self.embed = nn.Embedding(num_classes, z_dim)
            nn.init.normal_(self.embed.weight)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        if not self.num_classes:
            return z
        e = self.embed(y).to(z.dtype)
        return torch.cat([z, e * e.square().mean(dim=1, keepdim=True).add(1e-8).rsqrt()], dim=1)


class ClassHead(nn.Module):
    """AC-GAN's auxiliary classifier (Odena et al. 2017): class logits from the same pooled
    features the projection term reads. Trained by `loss.ac_weight` (raygan.tasks.generate.step)."""

    def __init__(self, num_classes: int, features: int, arch: str):
        super().__init__()
        if not num_classes:
            raise ConfigError(f"architecture '{arch}': class_head needs a conditional model (model.conditional: true)")
        self.linear = nn.Linear(features, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h)


def conditional_output(out: torch.Tensor, feat: torch.Tensor, y: Optional[torch.Tensor],
                       projection: Optional[nn.Module], classifier: Optional[nn.Module], classes: bool):
    """D's logit (+ the projection term), and with `classes=True` also the class logits."""
    if projection is not None:
        out = out + projection(feat, y)
    if not classes:
        return out.float()
    if classifier is None:
        raise ValueError("this discriminator has no class head (build it with class_head=True)")
    return out.float(), classifier(feat).float()


class Projection(nn.Module):
    """The projection discriminator's class term <embed(y), h> (Miyato & Koyama 2018):
    conditioning by inner product instead of concatenating labels to the input."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, features)
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.embed(y) * h).sum(dim=1)


_SN_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise every conv/linear/embedding weight (Miyato et al. 2018).

    Applied after weight init, so init functions touch plain tensors, not parametrizations.
    """
    for m in list(module.modules()):
        if isinstance(m, _SN_TYPES):
            _spectral_norm(m)
    return module


def _options(arch: str, role: str, cls: type, opts: Optional[Dict[str, Any]], fixed: set) -> Dict[str, Any]:
    """Validate user kwargs for a G/D constructor: an unknown key is a one-line ConfigError."""
    opts = dict(opts or {})
    allowed = sorted(p for p in inspect.signature(cls).parameters if p not in fixed)
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise ConfigError(
            f"architecture '{arch}': unknown {role} option(s) {', '.join(unknown)}; "
            f"valid: {', '.join(allowed) or '(none)'}"
        )
    return opts


MakeFn = Callable[..., Tuple[nn.Module, nn.Module]]


def pair_factory(arch: str, generator: type, discriminator: type,
                 resolutions: Tuple[int, ...] = RESOLUTIONS) -> MakeFn:
    """The `make(...) -> (G, D)` function registered for an architecture that builds `resolutions`."""

    def make(
        *,
        resolution: int,
        channels: int,
        z_dim: int,
        num_classes: int = 0,
        spectral_norm: bool = False,
        class_head: bool = False,
        g: Optional[Dict[str, Any]] = None,
        d: Optional[Dict[str, Any]] = None,
        **unknown: Any,
    ) -> Tuple[nn.Module, nn.Module]:
        if unknown:
            raise ConfigError(
                f"architecture '{arch}': unknown option(s) {', '.join(sorted(unknown))}; valid: "
                "resolution, channels, z_dim, num_classes, spectral_norm, class_head, g, d"
            )
        check_geometry(arch, resolution, channels, resolutions)
        if z_dim < 1:
            raise ConfigError(f"architecture '{arch}': z_dim must be >= 1, got {z_dim}")
        if num_classes < 0:
            raise ConfigError(
                f"architecture '{arch}': num_classes must be 0 (unconditional) or a class count, got {num_classes}"
            )
        common = dict(resolution=resolution, channels=channels, num_classes=num_classes)
        g_opts = _options(arch, "generator", generator, g, set(common) | {"z_dim"})
        d_opts = _options(arch, "discriminator", discriminator, d, set(common) | {"spectral_norm", "class_head"})
        G = generator(z_dim=z_dim, **common, **g_opts)
        D = discriminator(spectral_norm=spectral_norm, **common, **d_opts, **({"class_head": True} if class_head else {}))
        return G, D

    make.__name__ = make.__qualname__ = f"make_{arch}"
    make.__doc__ = f"Build the '{arch}' generator and discriminator; g/d are extra constructor kwargs."
    return make
