"""Classification accuracy scores of a conditional generator, with one fixed classifier recipe.

* `cas` (Classification Accuracy Score, Ravuri & Vinyals 2019; "GAN-train", Shmelkov et al.
  2018): train the recipe on N generated images with the labels they were conditioned on,
  report accuracy on the real test split. Higher is better; compare with `real_acc`.
* `gan_test`: train the recipe on the real training images, report its accuracy on N
  generated images (their conditioning labels as truth). High GAN-test with low CAS means
  good but not diverse samples.
* `real_accuracy`: the same recipe and seed trained on the real training images, tested on
  the real test split: the reference both are read against.

A generator is a function `sample(labels: int64 (N,)) -> uint8 (N, C, H, W)` of the same
format as the real images; it is called in chunks of `sample_batch` labels inside a
`fork_rng` seeded with `seed`, so a generator drawing its latents from torch's global RNG is
reproducible and the caller's RNG untouched. Requested labels are balanced over classes
(`balanced_labels`). Unlike StudioGAN we test on the test split with fixed steps (no best
epoch picked on the data we report).

Registered in the metrics registry as `cas` (-> cas, real_acc) and `gan_test` (-> gan_test,
real_acc), kind "classifier": each is a function of a `ClassifierEvidence`; cas and gan_test are
maximised, real_acc has no direction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from raygan.metrics.registry import METRICS
from raygan.metrics.classify import (
    RECIPE,
    Recipe,
    Split,
    Transform,
    check_images,
    accuracy,
    check_recipe,
    describe_recipe,
    seeded_fork,
    train_classifier,
)

Sampler = Callable[[torch.Tensor], torch.Tensor]
Protocol = Dict[str, Union[str, int, float]]
SCORES = ("cas", "gan_test", "real_acc")  # value keys; registry names "cas" and "gan_test"


def balanced_labels(n: int, num_classes: int, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    """0, 1, ..., C-1, 0, 1, ...: n labels whose class counts differ by at most one."""
    return torch.arange(n, device=device) % num_classes


def generate(sample: Sampler, labels: torch.Tensor, seed: int, sample_batch: int = 500) -> torch.Tensor:
    """sample(labels) in chunks, under a seeded fork of the global RNG; checks the format."""
    with seeded_fork(seed):
        parts = [sample(labels[i: i + sample_batch]) for i in range(0, labels.shape[0], sample_batch)]
    images = torch.cat(parts)
    check_images(images, labels, "generated images")
    return images


def _protocol(name: str, recipe: Recipe, seed: int, **extra: Union[str, int, float]) -> Protocol:
    return {"metric": name, **describe_recipe(recipe, seed), **extra}


def real_accuracy(
    train: Split, test: Split, num_classes: int, recipe: Recipe = RECIPE, seed: int = 0,
    transform: Optional[Transform] = None, test_name: str = "test", train_name: str = "train",
) -> Tuple[float, Protocol]:
    """Accuracy on the real test split of the recipe trained on real `train`."""
    check_recipe(recipe)
    net = train_classifier(*train, num_classes, recipe, seed, transform)
    value = accuracy(net, *test)
    return value, _protocol("real_acc", recipe, seed, train=train_name, train_count=int(train[0].shape[0]),
                            test=test_name, test_count=int(test[0].shape[0]))


def cas(
    sample: Sampler, test: Split, num_classes: int, num_samples: int = 10000, recipe: Recipe = RECIPE,
    seed: int = 0, labels: Optional[torch.Tensor] = None, test_name: str = "test", sample_batch: int = 500,
) -> Tuple[float, Protocol]:
    """Train on `num_samples` generated images (balanced labels unless `labels` is given),
    test on the real `test` split."""
    check_recipe(recipe)
    if labels is None:
        labels = balanced_labels(num_samples, num_classes)
    fake = generate(sample, labels, seed, sample_batch)
    net = train_classifier(fake, labels, num_classes, recipe, seed)
    value = accuracy(net, *test)
    return value, _protocol("cas", recipe, seed, num_samples=int(labels.shape[0]), test=test_name,
                            test_count=int(test[0].shape[0]))


def gan_test(
    sample: Sampler, classifier: nn.Module, num_classes: int, num_samples: int = 10000, recipe: Recipe = RECIPE,
    seed: int = 0, train_name: str = "train", sample_batch: int = 500, device: Union[str, torch.device] = "cpu",
) -> Tuple[float, Protocol]:
    """Accuracy of `classifier` (the recipe trained on real `train_name` images) on
    `num_samples` generated images with balanced labels (made on `device`)."""
    labels = balanced_labels(num_samples, num_classes, device)
    fake = generate(sample, labels, seed, sample_batch)
    value = accuracy(classifier, fake, labels)
    return value, _protocol("gan_test", recipe, seed, num_samples=num_samples, train=train_name)


def classification_scores(
    sample: Sampler, train: Split, test: Split, num_classes: int, num_samples: int = 10000,
    recipe: Recipe = RECIPE, seed: int = 0, scores: Sequence[str] = SCORES,
    train_name: str = "train", test_name: str = "test",
) -> Tuple[Dict[str, float], Protocol]:
    """Any of cas, gan_test, real_acc in one call, training the real-data classifier once.
    Returns values by key and one protocol (the shared fields plus the sample count)."""
    unknown = [s for s in scores if s not in SCORES]
    if unknown:
        raise ValueError(f"unknown classification score(s) {unknown}; choose from {SCORES}")
    check_recipe(recipe)
    values: Dict[str, float] = {}
    if "cas" in scores:
        values["cas"], _ = cas(sample, test, num_classes, num_samples, recipe, seed, test_name=test_name)
    if {"gan_test", "real_acc"} & set(scores):
        net = train_classifier(*train, num_classes, recipe, seed)
        if "real_acc" in scores:
            values["real_acc"] = accuracy(net, *test)
        if "gan_test" in scores:
            values["gan_test"], _ = gan_test(sample, net, num_classes, num_samples, recipe, seed)
    protocol = _protocol("classification", recipe, seed, num_samples=num_samples, train=train_name,
                         train_count=int(train[0].shape[0]), test=test_name, test_count=int(test[0].shape[0]),
                         label_distribution="balanced")
    return values, protocol


# ---------------------------------------------------------------------- registry entries
@dataclass
class ClassifierEvidence:
    """What a classifier metric (kind "classifier") is computed from; the generate task's evaluator
    (raygan.tasks.generate.eval) gathers it: a conditional generator as `sample(labels) -> uint8`,
    the real test split, the recipe trained on the real training images (`classifier`)."""

    sample: Sampler
    num_classes: int
    num_samples: int
    test: Split
    classifier: nn.Module
    recipe: Recipe = RECIPE
    seed: int = 0
    device: Union[str, torch.device] = "cpu"


# `real_acc` is logged beside cas and gan_test as the reference (no direction: it does not judge G).
@METRICS.register("cas", kind="classifier", keys={"cas": "max", "real_acc": None}, min_samples=100)
def cas_metric(ev: ClassifierEvidence) -> Dict[str, float]:
    """`cas`: the recipe trained on `num_samples` generated images (balanced labels), tested on real."""
    labels = balanced_labels(ev.num_samples, ev.num_classes, ev.device)
    value, _ = cas(ev.sample, ev.test, ev.num_classes, ev.num_samples, ev.recipe, ev.seed, labels=labels)
    return {"cas": value}


@METRICS.register("gan_test", kind="classifier", keys={"gan_test": "max", "real_acc": None}, min_samples=100)
def gan_test_metric(ev: ClassifierEvidence) -> Dict[str, float]:
    """`gan_test`: the real-data classifier's accuracy on `num_samples` generated images."""
    value, _ = gan_test(ev.sample, ev.classifier, ev.num_classes, ev.num_samples, ev.recipe, ev.seed,
                        device=ev.device)
    return {"gan_test": value}
