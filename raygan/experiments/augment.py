"""Does GAN-made data help a classifier trained on few real images? (the core of `raygan augment`)

For each K real images per class and each seed s:
  subset  = per_class_indices(train labels, K, seed=s)  (the only training images used)
  real            classifier on the subset
  real+classic    the same with classic augmentation (torchvision v2 flip/rotate/translate/scale)
  real+gan        the subset + `synthetic_per_class` generated images per class
  real+gan+classic  the same, classic augmentation applied to real and generated images alike
Each classifier is the one recipe (raygan.metrics.classify.RECIPE), seeded with s, and is
scored on the whole real test split. Rows give mean, std (ddof=1) and the per-seed values.

GAN images come from `make_sampler(K, s, subset_indices) -> sample(labels) -> uint8 images`,
supplied by the caller: it must train (or load) a conditional G on exactly those indices.
Mixing: by default real and generated images are simply concatenated (with K = 10 and 1000
synthetic per class, 1% of the training images are real). `real_fraction` r instead repeats the
real subset n times, n = round(r / (1 - r) * generated / real) (at least once), so about r of
the training set (and, on average, of every batch) is real: the classifier keeps learning from
the real images however many generated ones are added. The generated set is drawn once per (K, s), with balanced labels under seed s,
and shared by both GAN conditions.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from raygan.data.subsets import RULE, per_class_indices
from raygan.errors import ConfigError
from raygan.metrics.cas import Sampler, balanced_labels, generate
from raygan.metrics.classify import RECIPE, Recipe, Split, accuracy, check_recipe, classic_augmentation, describe_recipe, train_classifier

CONDITIONS = ("real", "real+classic", "real+gan", "real+gan+classic")
MakeSampler = Callable[[int, int, torch.Tensor], Sampler]
Protocol = Dict[str, Union[str, int, float]]


@dataclass
class Row:
    k: int
    condition: str
    mean: float
    std: float
    values: List[float]
    seeds: List[int]


@dataclass
class AugmentResult:
    rows: List[Row]
    protocol: Protocol
    subsets: Dict[Tuple[int, int], torch.Tensor] = field(default_factory=dict)  # (K, seed) -> indices

    def row(self, k: int, condition: str) -> Row:
        return next(r for r in self.rows if r.k == k and r.condition == condition)


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _check(per_class: Sequence[int], seeds: Sequence[int], synthetic_per_class: int, conditions: Sequence[str],
           make_sampler: Optional[MakeSampler]) -> None:
    if not per_class or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in per_class):
        raise ConfigError(f"--real-per-class needs positive integers, got {list(per_class)!r}")
    if not seeds:
        raise ConfigError("--seeds needs at least one seed")
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ConfigError(f"unknown condition(s) {unknown}; choose from: {', '.join(CONDITIONS)}")
    if any("gan" in c for c in conditions):
        if make_sampler is None:
            raise ConfigError("the +gan conditions need a generator (a run directory or GAN training)")
        if isinstance(synthetic_per_class, bool) or not isinstance(synthetic_per_class, int) or synthetic_per_class < 1:
            raise ConfigError(f"--synthetic-per-class must be a positive integer, got {synthetic_per_class!r}")


def run_augment_experiment(
    train: Split,
    test: Split,
    num_classes: int,
    per_class: Sequence[int],
    seeds: Sequence[int],
    make_sampler: Optional[MakeSampler],
    synthetic_per_class: int = 1000,
    classic: Union[str, Sequence[str]] = "flip,translate,rotate,scale",
    recipe: Recipe = RECIPE,
    conditions: Sequence[str] = CONDITIONS,
    log: Callable[[str], None] = lambda s: None,
    train_name: str = "train",
    test_name: str = "test",
    real_fraction: Optional[float] = None,
) -> AugmentResult:
    """Test accuracy of every condition for every K and seed; see the module docstring."""
    _check(per_class, seeds, synthetic_per_class, conditions, make_sampler)
    if real_fraction is not None and not 0 < real_fraction < 1:
        raise ConfigError(f"--real-fraction must be between 0 and 1 (exclusive), got {real_fraction!r}")
    check_recipe(recipe)
    augment = classic_augmentation(classic)
    if augment is None and any("classic" in c for c in conditions):
        raise ConfigError("the +classic conditions need --classic ops (e.g. flip,translate,rotate,scale)")
    images, labels = train
    values: Dict[Tuple[int, str], List[float]] = {}
    subsets: Dict[Tuple[int, int], torch.Tensor] = {}
    for k in per_class:
        for s in seeds:
            idx = per_class_indices(labels, k, s, num_classes)
            subsets[(k, s)] = idx
            real_x, real_y = images[idx.to(images.device)], labels[idx.to(labels.device)]
            fake: Optional[Split] = None
            if any("gan" in c for c in conditions):
                sample = make_sampler(k, s, idx.clone())
                fy = balanced_labels(synthetic_per_class * num_classes, num_classes, real_y.device)
                fake = (generate(sample, fy, s).to(real_x.device), fy)
            for cond in conditions:
                x, y = real_x, real_y
                if "gan" in cond:
                    assert fake is not None
                    n = real_repeats(real_fraction, len(real_y), len(fake[1]))
                    x, y = torch.cat([real_x.repeat(n, 1, 1, 1), fake[0]]), torch.cat([real_y.repeat(n), fake[1]])
                net = train_classifier(x, y, num_classes, recipe, s, augment if "classic" in cond else None)
                acc = accuracy(net, *test)
                values.setdefault((k, cond), []).append(acc)
                log(f"K={k} seed={s} {cond}: {acc:.4f}")
    rows = [Row(k, c, *_mean_std(values[(k, c)]), values[(k, c)], list(seeds)) for k in per_class for c in conditions]
    protocol: Protocol = {
        "experiment": "augment",
        **describe_recipe(recipe, seed=-1, transform=augment),
        "seeds": ",".join(map(str, seeds)),
        "per_class": ",".join(map(str, per_class)),
        "synthetic_per_class": int(synthetic_per_class),
        "train": train_name,
        "test": test_name,
        "test_count": int(test[0].shape[0]),
        "subset_rule": RULE,
        "mixing": "concatenate" if real_fraction is None else f"real fraction {real_fraction:g} (real repeated)",
        "std": "sample std over seeds (ddof=1)",
    }
    protocol.pop("clf_seed")  # one classifier per seed: listed in `seeds`
    return AugmentResult(rows, protocol, subsets)


def real_repeats(real_fraction: Optional[float], n_real: int, n_fake: int) -> int:
    """How many copies of the real images make them about `real_fraction` of the training set."""
    if real_fraction is None:
        return 1
    return max(1, round(real_fraction / (1 - real_fraction) * n_fake / n_real))


def _cell(r: Row) -> str:
    return f"{100 * r.mean:5.1f} ± {100 * r.std:4.1f}"


def render_table(result: AugmentResult) -> str:
    """Plain-text table: one line per K, one column per condition, accuracy % mean ± std."""
    conds = [c for c in CONDITIONS if any(r.condition == c for r in result.rows)]
    ks = sorted({r.k for r in result.rows})
    n = len(result.rows[0].values) if result.rows else 0
    width = max(14, *(len(c) for c in conds))
    lines = [f"test accuracy % (mean ± std over {n} seed{'s' if n != 1 else ''}; classifier {result.protocol.get('clf_name')})",
             f"{'K/class':>8}  " + "  ".join(f"{c:>{width}}" for c in conds)]
    for k in ks:
        lines.append(f"{k:>8}  " + "  ".join(f"{_cell(result.row(k, c)):>{width}}" for c in conds))
    return "\n".join(lines)


def plot(result: AugmentResult, path: str) -> str:
    """Accuracy against K (log axis), one line with std error bars per condition -> PNG at `path`."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, no display needed

    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.subplots()
    for cond in CONDITIONS:
        rows = sorted((r for r in result.rows if r.condition == cond), key=lambda r: r.k)
        if rows:
            ax.errorbar([r.k for r in rows], [100 * r.mean for r in rows], yerr=[100 * r.std for r in rows],
                        marker="o", capsize=3, label=cond)
    ax.set_xscale("log")
    ax.set_xlabel("real images per class (K)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("GAN-made data as augmentation")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path
