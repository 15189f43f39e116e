"""A degradation pipeline: ops applied in order, random in training, fixed per image in evaluation.

Spec (one form, a list; the string is shorthand for the same list)::

    [{"name": "blur", "sigma": 1.0}, {"name": "downsample", "factor": 4}, {"name": "noise", "sigma": [0, 0.05]}]
    "blur:sigma=1.0,downsample:factor=4,noise:sigma=0..0.05"

Ops run left to right. A number is a fixed value, ``[lo, hi]`` (string: ``lo..hi``) a range
drawn uniformly per image. Mask ops (box, strokes) may not be followed by downsample.

Evaluation: image i of a split (its index in the split) is degraded with its own
torch.Generator seeded from SeedSequence((seed, i)), so the degraded test set is identical
across runs, batch sizes, shard splits and ranks (on one device type; ops are CPU-exact).
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from raygan.degradations.base import DEGRADATIONS, Degradation, Draws, build_op
from raygan.errors import ConfigError

Spec = Union[str, Sequence[Union[str, Dict[str, Any]]]]


class Degraded(NamedTuple):
    image: torch.Tensor  # (N, C, H/scale, W/scale) float in [0, 1]
    mask: Optional[torch.Tensor]  # (N, 1, H', W') float, 1 = missing; None without mask ops


def parse_spec(spec: Spec) -> List[Dict[str, Any]]:
    """Normalise a spec to the list form [{"name": ..., **params}]."""
    if isinstance(spec, str):
        items: List[Any] = [s.strip() for s in spec.split(",") if s.strip()]
    elif isinstance(spec, (list, tuple)):
        items = list(spec)
    else:
        raise ConfigError(f"degradations: expected a list of ops or a string like 'blur,noise', got {spec!r}")
    if not items:
        raise ConfigError(f"degradations: empty; choose from: {', '.join(DEGRADATIONS.names())}")
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(_parse_op_string(item))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            out.append(dict(item))
        else:
            raise ConfigError(f"degradations: each op needs a name, e.g. {{name: noise, sigma: 0.5}}; got {item!r}")
    return out


def _parse_op_string(item: str) -> Dict[str, Any]:
    """'noise:sigma=0.1..0.5:clip=false' -> {'name': 'noise', 'sigma': [0.1, 0.5], 'clip': False}."""
    name, *kvs = item.split(":")
    op: Dict[str, Any] = {"name": name.strip()}
    for kv in kvs:
        if "=" not in kv:
            raise ConfigError(f"degradation '{name}': expected key=value after ':', got {kv!r}")
        k, v = (s.strip() for s in kv.split("=", 1))
        op[k] = [_scalar(p, item) for p in v.split("..", 1)] if ".." in v else _scalar(v, item)
    return op


def _scalar(v: str, where: str) -> Any:
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        raise ConfigError(f"degradation '{where}': {v!r} is not a number or true/false") from None


def eval_generator(seed: int, index: int) -> torch.Generator:
    """Image `index`'s own CPU generator for evaluation seed `seed` (independent streams)."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


class Pipeline:
    """Degradation ops in order. `seed` is the evaluation seed, part of the protocol."""

    def __init__(self, spec: Spec, seed: int = 0):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"degradations: seed must be a non-negative int, got {seed!r}")
        self.spec = parse_spec(spec)
        self.seed = seed
        self.ops: List[Degradation] = [
            build_op(op["name"], {k: v for k, v in op.items() if k != "name"}) for op in self.spec
        ]
        seen_mask = False
        for op in self.ops:
            if op.scale != 1 and seen_mask:
                raise ConfigError(f"degradations: '{op.name}' cannot follow a mask op; put masks after downsampling")
            seen_mask = seen_mask or op.makes_mask

    @property
    def scale(self) -> int:
        """Size reduction of the whole pipeline (product of downsample factors)."""
        s = 1
        for op in self.ops:
            s *= op.scale
        return s

    @property
    def has_mask(self) -> bool:
        return any(op.makes_mask for op in self.ops)

    def check(self, resolution: int, channels: int) -> int:
        """Raise ConfigError if the pipeline does not fit `resolution` x `channels` images;
        return the degraded resolution."""
        size = resolution
        for op in self.ops:
            size = op.out_size(size, channels)
        return size

    def _run(self, x: torch.Tensor, draws: Draws) -> Degraded:
        if x.dim() != 4:
            raise ValueError(f"degradations expect (N, C, H, W) images, got shape {tuple(x.shape)}")
        mask = None
        for op in self.ops:
            x, mask = op.apply(x, mask, draws)
        return Degraded(x, mask)

    @torch.no_grad()
    def train(self, x: torch.Tensor, gen: torch.Generator) -> Degraded:
        """Degrade a training batch with fresh random parameters drawn from `gen`."""
        return self._run(x, Draws.shared_gen(gen, x.shape[0]))

    @torch.no_grad()
    def evaluate(
        self, x: torch.Tensor, indices: Union[Sequence[int], torch.Tensor], seed: Optional[int] = None
    ) -> Degraded:
        """Degrade images whose split indices are `indices`, each with its own fixed generator."""
        idx = indices.tolist() if isinstance(indices, torch.Tensor) else list(indices)
        if len(idx) != x.shape[0]:
            raise ValueError(f"{len(idx)} indices for {x.shape[0]} images")
        seed = self.seed if seed is None else seed
        return self._run(x, Draws.per_image([eval_generator(seed, i) for i in idx]))

    def describe(self) -> Dict[str, Any]:
        """JSON-able protocol: the ops with every resolved parameter, the scale and the seed."""
        return {
            "ops": [{"name": op.name, **op.params()} for op in self.ops],
            "scale": self.scale,
            "seed": self.seed,
            "seeding": "per image: SeedSequence((seed, index))",
        }

    def __repr__(self) -> str:
        return f"Pipeline({self.describe()['ops']}, seed={self.seed})"


def build_degradations(spec: Spec, seed: int = 0) -> Pipeline:
    return Pipeline(spec, seed=seed)
