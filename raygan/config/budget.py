"""Fitting a preset's kimg-sized intervals to a run shorter than the preset was made for.

A preset sizes its tick, its checkpoint/eval/picture intervals and the repair warm-up for its own
`train.total_kimg`. Run it for a few kimg (`--preset quickstart --set train.total_kimg=4`) and,
unfitted, the run is one silent tick of 10 kimg, its first checkpoint would come at 40 kimg, and
a 20-kimg L1 warm-up means D never trains, so a model registered as a GAN is L1-only. `fit` makes
such a run behave, and changes nothing for a run at least two ticks long with a warm-up of at most
half of it (every shipped preset at its own budget: tested):

- a run shorter than two ticks gets a tick of a quarter of the run (never below `MIN_TICK_KIMG`),
  and then a checkpoint, an evaluation and a picture at least every `FIT_INTERVAL_TICKS` ticks
  (half-way and at the end), so Ctrl-C has something to resume and the log moves;
- `repair.adv_warmup_kimg` is at most half the run: D trains for at least its second half.

The fitted config is what the run trains with and records (config.yaml, the checkpoints, MLflow),
so a resume keeps it: fitting a fitted config again, for the same or a longer run, is a no-op.
"""
from __future__ import annotations

from typing import List, Tuple

from raygan.config.schema import Config

MIN_TICKS = 2  # a run shorter than this many ticks gets a fitted tick
FIT_TICKS = 4  # ... of this many ticks
MIN_TICK_KIMG = 1.0  # but never a tick below 1 kimg (sub-kimg runs are seconds long)
FIT_INTERVAL_TICKS = 2  # with a fitted tick: checkpoint, evaluate and draw at least every 2 ticks
WARMUP_SHARE = 0.5  # the adversarial warm-up takes at most half the run


def fit(cfg: Config) -> Tuple[Config, List[str]]:
    """(the config fitted to its train.total_kimg, one note per changed value)."""
    total = float(cfg.train.total_kimg)
    train = cfg.train.model_dump()
    notes: List[str] = []
    if cfg.train.tick_kimg * MIN_TICKS > total:
        tick = max(total / FIT_TICKS, MIN_TICK_KIMG)
        if tick < cfg.train.tick_kimg:
            train["tick_kimg"] = tick
            notes.append(f"train.tick_kimg {cfg.train.tick_kimg:g} -> {tick:g}")
            for key in ("snapshot_ticks", "eval_ticks", "sample_ticks"):
                if train[key] > FIT_INTERVAL_TICKS:  # eval_ticks 0 (only at the end) stays
                    notes.append(f"train.{key} {train[key]} -> {FIT_INTERVAL_TICKS}")
                    train[key] = FIT_INTERVAL_TICKS
    update = {}
    if notes:
        update["train"] = type(cfg.train).model_validate(train)
    warmup_cap = total * WARMUP_SHARE
    if cfg.task == "repair" and cfg.repair.adv_weight > 0 and cfg.repair.adv_warmup_kimg > warmup_cap:
        notes.append(f"repair.adv_warmup_kimg {cfg.repair.adv_warmup_kimg:g} -> {warmup_cap:g}")
        update["repair"] = cfg.repair.model_copy(update={"adv_warmup_kimg": warmup_cap})
    if not update:
        return cfg, []
    return cfg.model_copy(update=update), notes


def describe(cfg: Config, notes: List[str]) -> str:
    """The one line a run prints when it was fitted: what changed and why."""
    return (f"fitted to this {cfg.train.total_kimg:g}-kimg run: {', '.join(notes)} (intervals and warm-ups sized "
            f"for a longer run: a run shorter than {MIN_TICKS} ticks gets {FIT_TICKS}, with a checkpoint half-way; "
            f"an L1 warm-up takes at most half the run so that D trains)")
