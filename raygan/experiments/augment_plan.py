"""How long `raygan augment` will take, said before it starts, and where it is while it runs.

`measure_rates` times a few steps of the very work the experiment does (the classifier recipe
with and without classic augmentation, test-set prediction, one GAN step and sampling at the
cell's batch) on this machine, a few seconds in all; `Plan` multiplies them out per item (each
cell's GAN, each classifier). `Progress` walks the same items while they run: a line every
`every_s` seconds inside a long item (steps, running batch accuracy, this item's ETA) and one
when an item ends, with the time left for the whole experiment, rescaled by how the finished
items compared with their estimates. Torch only; no Ray, no MLflow.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from raygan.metrics.classify import Recipe, Transform, accuracy, train_classifier


def fmt_duration(seconds: float) -> str:
    """45 s, 3.5 min, 2.1 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Rates:
    """Seconds per unit of work, measured here (see `measure_rates`)."""

    clf_step: float
    clf_step_classic: float
    predict_image: float
    gan_step: float = 0.0  # one GAN training step at `gan_batch`
    gan_batch: int = 1
    sample_image: float = 0.0  # one generated image

    def describe(self) -> str:
        out = f"classifier step {self.clf_step:.3f} s ({self.clf_step_classic:.3f} s with classic)"
        if self.gan_step:
            out += f", GAN step {self.gan_step:.3f} s at batch {self.gan_batch}"
        return out


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_step(run: Callable[[Callable[..., None]], object]) -> float:
    """Median seconds between successive calls of the callback `run` is given (the first step,
    with its set-up, left out): robust to a neighbour's burst on a shared machine."""
    stamps: List[float] = []
    run(lambda *a: stamps.append(time.perf_counter()))
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    return gaps[len(gaps) // 2] if gaps else 0.0


def classifier_rates(images: torch.Tensor, labels: torch.Tensor, test: torch.Tensor, num_classes: int,
                     recipe: Recipe, transform: Optional[Transform], steps: int = 7) -> Tuple[float, float, float]:
    """(s per step, s per step with `transform`, s per predicted test image), each step timed."""
    short = dataclasses.replace(recipe, steps=steps)

    def per_step(tf):
        return median_step(lambda tick: train_classifier(images, labels, num_classes, short, 0, tf, progress=tick,
                                                         report_every=1))

    plain = per_step(None)
    classic = per_step(transform) if transform is not None else plain
    net = train_classifier(images, labels, num_classes, dataclasses.replace(recipe, steps=2), 0)
    few = test[:1000]
    predict = _timed(lambda: accuracy(net, few, torch.zeros(len(few), dtype=torch.long, device=few.device)))
    return plain, classic, predict / max(len(few), 1)


@dataclass
class Item:
    name: str
    estimate: float
    kind: str  # "gan" or "classifier"
    steps: int = 0


@dataclass
class Plan:
    items: List[Item]
    rates: Rates
    summary: str

    @property
    def total(self) -> float:
        return sum(i.estimate for i in self.items)

    def describe(self) -> str:
        gans = sum(i.estimate for i in self.items if i.kind == "gan")
        parts = f"GANs ~{fmt_duration(gans)}, classifiers ~{fmt_duration(self.total - gans)}; " if gans else ""
        return (f"plan: {self.summary}\n"
                f"estimate: ~{fmt_duration(self.total)} here ({parts}measured: {self.rates.describe()}); "
                f"shorten with --clf-steps, --seeds, --real-per-class, --gan-kimg or --conditions")


def build_plan(cells: Sequence[Tuple[int, int]], conditions: Sequence[str], recipe: Recipe, rates: Rates,
               test_count: int, synthetic_total: int, gan_steps: Dict[Tuple[int, int], Tuple[int, int]],
               gan_note: str = "") -> Plan:
    """Items in the order they run: per cell (K, seed) its GAN (`gan_steps[cell]` = (steps left,
    batch); absent for a given run's generator), then one classifier per condition."""
    items: List[Item] = []
    for k, s in cells:
        if any("gan" in c for c in conditions):
            steps, batch = gan_steps.get((k, s), (0, rates.gan_batch))
            est = steps * rates.gan_step * batch / max(rates.gan_batch, 1) + synthetic_total * rates.sample_image
            if steps or synthetic_total:
                items.append(Item(f"K={k} seed={s} GAN", est, "gan", steps))
        for c in conditions:
            per = rates.clf_step_classic if "classic" in c else rates.clf_step
            items.append(Item(f"K={k} seed={s} {c}", recipe.steps * per + test_count * rates.predict_image,
                              "classifier", recipe.steps))
    n_gans = sum(1 for i in items if i.kind == "gan" and i.steps)
    n_clf = sum(1 for i in items if i.kind == "classifier")
    summary = (f"{len(cells)} cell{'s' * (len(cells) != 1)} (K x seed); "
               + (f"{n_gans} GAN{'s' * (n_gans != 1)} to train{gan_note}; " if n_gans else "")
               + f"{n_clf} classifier{'s' * (n_clf != 1)} of {recipe.steps} steps, each tested on {test_count} images")
    return Plan(items, rates, summary)


@dataclass
class Progress:
    """Walks a Plan's items in order; `log` gets the lines."""

    plan: Plan
    log: Callable[[str], None]
    every_s: float = 30.0
    done: List[Tuple[float, float]] = field(default_factory=list)  # (estimate, actual) of finished items
    _start: float = 0.0
    _last: float = 0.0
    _item: Optional[Item] = None

    def begin(self, name: str) -> None:
        self._item = next((i for i in self.plan.items if i.name == name), Item(name, 0.0, "?"))
        self._start = self._last = time.time()

    def _tag(self) -> str:
        name = self._item.name if self._item else ""
        return f"[{len(self.done) + 1}/{len(self.plan.items)}] {name}" if self.plan.items else name

    def step(self, step: int, total: int, what: str) -> None:
        """Inside an item: a line at most every `every_s` seconds."""
        now = time.time()
        if now - self._last < self.every_s or not 0 < step < total:
            return
        self._last = now
        spent = now - self._start
        eta = spent / step * max(total - step, 0)
        self.log(f"{self._tag()}: {what}, {fmt_duration(spent)}, ETA {fmt_duration(eta)}")

    def end(self, what: str) -> float:
        """The item's result line, with the time left for the whole experiment; returns seconds."""
        spent = time.time() - self._start
        est = self._item.estimate if self._item else 0.0
        tag = self._tag()
        self.done.append((est, spent))
        left = self.remaining()
        tail = f"; about {fmt_duration(left)} left" if left > 0 else ""
        self.log(f"{tag}: {what} in {fmt_duration(spent)}{tail}")
        return spent

    def remaining(self) -> float:
        todo = sum(i.estimate for i in self.plan.items[len(self.done):])
        est, actual = sum(e for e, _ in self.done), sum(a for _, a in self.done)
        scale = actual / est if est > 0 and actual > 0 else 1.0
        return todo * scale if math.isfinite(scale) else todo
