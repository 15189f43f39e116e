"""Degradations for image repair: a registry of ops composed into a pipeline.

    from raygan.degradations import build_degradations
    deg = build_degradations([{"name": "noise", "sigma": 0.5}], seed=0)   # or "noise:sigma=0.5"
    deg.check(resolution=32, channels=1)          # ConfigError (one line) if it does not fit
    x_deg, mask = deg.train(x, gen)               # training: random per image from `gen`
    x_deg, mask = deg.evaluate(x, indices)        # evaluation: fixed per image index and seed
    deg.describe()                                # JSON-able protocol (ops, params, scale, seed)

Images are float (N, C, H, W) in [0, 1]; a mask is (N, 1, H', W') float, 1 = missing, and the
holes are filled with the mask op's `fill` (0.5 by default). Ops: noise, salt-pepper, blur,
downsample, jpeg (raygan.degradations.ops); box, strokes (raygan.degradations.masks).
"""
from raygan.degradations.base import DEGRADATIONS, Degradation, Draws, Range
from raygan.degradations.pipeline import Degraded, Pipeline, build_degradations, eval_generator, parse_spec
from raygan.registry import import_modules

import_modules(__name__, __path__)  # the @DEGRADATIONS.register ops in every module

__all__ = [
    "DEGRADATIONS",
    "Degradation",
    "Degraded",
    "Draws",
    "Pipeline",
    "Range",
    "build_degradations",
    "eval_generator",
    "parse_spec",
]
