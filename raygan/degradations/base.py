"""What every degradation op shares: the registry, per-image random draws, parameter ranges.

An op is a registered class constructed from keyword parameters (validated, one-line
ConfigError on a bad one). A numeric parameter is either a fixed value or a ``[lo, hi]``
range drawn uniformly per image, so one spec covers both "sigma 0.5" and blind training
over "sigma 0.1..0.5".

Randomness comes only from a `Draws`: either one torch.Generator shared by the batch
(training; one batched call per draw) or one generator per image (evaluation; image i's
draws depend on nothing but its own generator, so batching, sharding and rank do not
change what it gets).
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from raygan.errors import ConfigError
from raygan.registry import Registry

DEGRADATIONS = Registry("degradation")

Number = Union[int, float]
Value = Union[Number, Sequence[Number]]


class Draws:
    """Random numbers for a batch of N images, shaped (N, *shape).

    ``Draws.shared(gen, n)``: one generator for the whole batch (training).
    ``Draws.per_image(gens)``: one generator per image (evaluation).
    Numbers are drawn on the generator's device and returned there; ops move them.
    """

    def __init__(self, gens: Sequence[torch.Generator], shared: bool):
        self.gens, self.shared = list(gens), shared

    @classmethod
    def shared_gen(cls, gen: torch.Generator, n: int) -> "Draws":
        return cls([gen] * n, shared=True)

    @classmethod
    def per_image(cls, gens: Sequence[torch.Generator]) -> "Draws":
        return cls(gens, shared=False)

    def __len__(self) -> int:
        return len(self.gens)

    def _draw(self, fn: Any, shape: Tuple[int, ...]) -> torch.Tensor:
        if not self.gens:
            return torch.empty((0,) + shape)
        if self.shared:
            g = self.gens[0]
            return fn((len(self.gens),) + shape, generator=g, device=g.device)
        return torch.stack([fn(shape, generator=g, device=g.device) for g in self.gens])

    def rand(self, *shape: int) -> torch.Tensor:
        """U[0, 1) float32, (N, *shape)."""
        return self._draw(torch.rand, shape)

    def randn(self, *shape: int) -> torch.Tensor:
        """N(0, 1) float32, (N, *shape)."""
        return self._draw(torch.randn, shape)


class Stream:
    """Scalar uniforms for one image's sequential geometry (mask drawing): drawn from its
    generator in blocks of 64, so a variable number of draws stays cheap and deterministic."""

    def __init__(self, gen: torch.Generator):
        self.gen, self._buf, self._i = gen, [], 0

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> float:
        if self._i == len(self._buf):
            self._buf = torch.rand(64, generator=self.gen, device=self.gen.device).tolist()
            self._i = 0
        u = self._buf[self._i]
        self._i += 1
        return lo + (hi - lo) * u

    def randint(self, lo: int, hi: int) -> int:
        """Integer in [lo, hi] inclusive."""
        return min(hi, lo + int(self.uniform() * (hi - lo + 1)))


class Range:
    """A parameter that is fixed or drawn uniformly per image from [lo, hi]."""

    def __init__(self, op: str, name: str, value: Value, lo: float, hi: float, integer: bool = False):
        if isinstance(value, (list, tuple)):
            if len(value) != 2 or not all(_is_number(v) for v in value) or value[0] > value[1]:
                raise ConfigError(f"degradation '{op}': {name} must be a number or [lo, hi] with lo <= hi, got {value!r}")
            a, b = value
        elif _is_number(value):
            a = b = value
        else:
            raise ConfigError(f"degradation '{op}': {name} must be a number or [lo, hi], got {value!r}")
        if integer and not (float(a).is_integer() and float(b).is_integer()):
            raise ConfigError(f"degradation '{op}': {name} must be an integer, got {value!r}")
        if a < lo or b > hi:
            raise ConfigError(f"degradation '{op}': {name} must lie in [{lo:g}, {hi:g}], got {value!r}")
        self.lo, self.hi = (int(a), int(b)) if integer else (float(a), float(b))
        self.integer = integer

    @property
    def fixed(self) -> bool:
        return self.lo == self.hi

    def draw(self, draws: Draws) -> torch.Tensor:
        """(N,) float64 values, one per image (no draw is made for a fixed value)."""
        n = len(draws)
        if self.fixed:
            return torch.full((n,), float(self.lo), dtype=torch.float64)
        u = draws.rand().to(torch.float64).cpu()
        if self.integer:  # uniform over lo..hi inclusive
            return torch.clamp(torch.floor(self.lo + u * (self.hi - self.lo + 1)), max=self.hi)
        return self.lo + u * (self.hi - self.lo)

    def max(self) -> float:
        return self.hi

    def to_json(self) -> Union[Number, List[Number]]:
        return self.lo if self.fixed else [self.lo, self.hi]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Degradation:
    """One op. Subclasses set `name`, validate kwargs in __init__, and implement `apply`.

    `apply(x, mask, draws) -> (x, mask)`: x float (N, C, H, W) in [0, 1]; mask None or
    (N, 1, H, W) float with 1 = missing. `out_size(size)` maps the spatial size through
    the op and raises ConfigError when it does not fit; `scale` is the size reduction.
    """

    name = "?"
    scale = 1
    makes_mask = False

    def apply(
        self, x: torch.Tensor, mask: Optional[torch.Tensor], draws: Draws
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        raise NotImplementedError

    def out_size(self, size: int, channels: int) -> int:
        return size

    def params(self) -> Dict[str, Any]:
        """JSON-able parameters, exactly as a spec would give them."""
        return {}

    def fail(self, msg: str) -> ConfigError:
        return ConfigError(f"degradation '{self.name}': {msg}")


def build_op(name: str, kwargs: Dict[str, Any]) -> Degradation:
    """The registered op `name` with `kwargs`; unknown names or keys list the valid ones."""
    cls = DEGRADATIONS.get(name)
    allowed = sorted(p for p in inspect.signature(cls).parameters if p != "self")
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(
            f"degradation '{name}': unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(allowed) or '(none)'}"
        )
    return cls(**kwargs)
