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
from raygan.experiments.augment_plan import Plan, Progress, Rates
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
    train_images: Dict[Tuple[int, str], int] = field(default_factory=dict)  # (K, condition) -> classifier's set size

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


def validate(per_class: Sequence[int], seeds: Sequence[int], make_sampler: Optional[MakeSampler],
             synthetic_per_class: int, classic: Union[str, Sequence[str]], recipe: Recipe,
             conditions: Sequence[str], real_fraction: Optional[float]):
    """Every argument check, before anything is trained; returns the classic augmentation."""
    _check(per_class, seeds, synthetic_per_class, conditions, make_sampler)
    if real_fraction is not None and not 0 < real_fraction < 1:
        raise ConfigError(f"--real-fraction must be between 0 and 1 (exclusive), got {real_fraction!r}")
    check_recipe(recipe)
    augment = classic_augmentation(classic)
    if augment is None and any("classic" in c for c in conditions):
        raise ConfigError("the +classic conditions need --classic ops (e.g. flip,translate,rotate,scale)")
    return augment


OnResult = Callable[[int, str, int, float, Optional[Row]], None]


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
    progress: Optional[Progress] = None,
    on_result: Optional[OnResult] = None,
) -> AugmentResult:
    """Test accuracy of every condition for every K and seed; see the module docstring.

    `progress` (raygan.experiments.augment_plan) gets every item as it runs (default: one line
    per classifier through `log`); `on_result(k, condition, seed, accuracy, row)` is called after
    each classifier, with the finished Row once the last seed of that (K, condition) is in."""
    augment = validate(per_class, seeds, make_sampler, synthetic_per_class, classic, recipe, conditions,
                       real_fraction)
    prog = progress or Progress(Plan([], Rates(0.0, 0.0, 0.0), ""), log, every_s=float("inf"))
    images, labels = train
    values: Dict[Tuple[int, str], List[float]] = {}
    subsets: Dict[Tuple[int, int], torch.Tensor] = {}
    sizes: Dict[Tuple[int, str], int] = {}
    for k in per_class:
        for s in seeds:
            idx = per_class_indices(labels, k, s, num_classes)
            subsets[(k, s)] = idx
            real_x, real_y = images[idx.to(images.device)], labels[idx.to(labels.device)]
            fake: Optional[Split] = None
            if any("gan" in c for c in conditions):
                prog.begin(f"K={k} seed={s} GAN")
                sample = make_sampler(k, s, idx.clone())
                fy = balanced_labels(synthetic_per_class * num_classes, num_classes, real_y.device)
                fake = (generate(sample, fy, s).to(real_x.device), fy)
                prog.end(f"{len(fy)} images generated")
            for cond in conditions:
                x, y = real_x, real_y
                if "gan" in cond:
                    assert fake is not None
                    n = real_repeats(real_fraction, len(real_y), len(fake[1]))
                    x, y = torch.cat([real_x.repeat(n, 1, 1, 1), fake[0]]), torch.cat([real_y.repeat(n), fake[1]])
                sizes[(k, cond)] = int(len(y))
                prog.begin(f"K={k} seed={s} {cond}")
                net = train_classifier(x, y, num_classes, recipe, s, augment if "classic" in cond else None,
                                       progress=lambda i, a: prog.step(i, recipe.steps, f"step {i}/{recipe.steps}, "
                                                                                        f"batch accuracy {a:.2f}"))
                acc = accuracy(net, *test)
                values.setdefault((k, cond), []).append(acc)
                prog.end(f"test accuracy {acc:.4f}")
                if on_result is not None:
                    done = len(values[(k, cond)]) == len(seeds)
                    on_result(k, cond, s, acc, _row(k, cond, values, seeds) if done else None)
    rows = [_row(k, c, values, seeds) for k in per_class for c in conditions]
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
    return AugmentResult(rows, protocol, subsets, sizes)


def _row(k: int, cond: str, values: Dict[Tuple[int, str], List[float]], seeds: Sequence[int]) -> Row:
    return Row(k, cond, *_mean_std(values[(k, cond)]), list(values[(k, cond)]), list(seeds))


def real_repeats(real_fraction: Optional[float], n_real: int, n_fake: int) -> int:
    """How many copies of the real images make them about `real_fraction` of the training set."""
    if real_fraction is None:
        return 1
    return max(1, round(real_fraction / (1 - real_fraction) * n_fake / n_real))


def _cell(r: Row) -> str:
    if len(r.values) == 1:  # one seed: there is no spread to show
        return f"{100 * r.mean:5.1f}"
    return f"{100 * r.mean:5.1f} ± {100 * r.std:4.1f}"


def _legend(result: AugmentResult, conds: Sequence[str]) -> List[str]:
    p = result.protocol
    mixing = ("real and generated simply concatenated" if p.get("mixing", "concatenate") == "concatenate"
              else f"the real images repeated so that about {str(p['mixing']).split()[2]} of the set is real")
    gan = f"; GAN {p['gan_source']}" if p.get("gan_source") else ""
    what = {"real": "the K real images per class of the subset, nothing else",
            "real+classic": f"the same, with classic augmentation ({p.get('clf_augment', '')})",
            "real+gan": f"the real subset + {p.get('synthetic_per_class')} GAN-made images per class, {mixing}{gan}",
            "real+gan+classic": "real+gan with the classic augmentation on real and generated images alike"}
    lines = ["columns:"] + [f"  {c:<16}  {what[c]}" for c in conds]
    if result.train_images:
        per_k = []
        for k in sorted({k for k, _ in result.train_images}):
            sizes = {c: n for (kk, c), n in result.train_images.items() if kk == k}
            real = sizes.get("real", sizes.get("real+classic"))
            gan = sizes.get("real+gan", sizes.get("real+gan+classic"))
            per_k.append(f"K={k}: " + ", ".join(f"{name} {n:,}" for name, n in (("real", real), ("+gan", gan))
                                                 if n is not None))
        lines.append("  images per classifier: " + "; ".join(per_k))
    return lines


def render_table(result: AugmentResult) -> str:
    """Plain-text table: one line per K, one column per condition, accuracy % (mean ± std over the
    seeds; the mean alone for one seed), then what each column trains on and how many images."""
    conds = [c for c in CONDITIONS if any(r.condition == c for r in result.rows)]
    ks = sorted({r.k for r in result.rows})
    n = len(result.rows[0].values) if result.rows else 0
    p = result.protocol
    spread = f"mean ± std over {n} seeds" if n != 1 else "1 seed, so no spread: --seeds 3 gives mean ± std"
    width = max(14, *(len(c) for c in conds))
    lines = [f"test accuracy % ({spread}; classifier {p.get('clf_name')}, {p.get('clf_steps')} steps; "
             f"scored on {p.get('test_count')} {p.get('test')} images)",
             f"{'K/class':>8}  " + "  ".join(f"{c:>{width}}" for c in conds)]
    for k in ks:
        lines.append(f"{k:>8}  " + "  ".join(f"{_cell(result.row(k, c)):>{width}}" for c in conds))
    return "\n".join(lines + _legend(result, conds))


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
