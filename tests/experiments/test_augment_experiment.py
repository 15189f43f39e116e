import dataclasses

import pytest
import torch

import raygan.experiments.augment as exp
from raygan.data import load_dataset
from raygan.data.subsets import per_class_indices
from raygan.errors import ConfigError
from raygan.experiments.augment import CONDITIONS, plot, render_table, run_augment_experiment
from raygan.metrics.classify import RECIPE

FAST = dataclasses.replace(RECIPE, steps=40, batch_size=32)
GAN_MARK = 255


def indexed_dataset(n=300, classes=3):
    """Images that carry their own index (pixels [0,0] and [0,1]); generated ones are marked."""
    x = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    i = torch.arange(n)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = (i % 256).to(torch.uint8), (i // 256).to(torch.uint8)
    return x, i % classes


def marked_fakes(labels):
    """A stand-in generator's output: blank images carrying the GAN mark."""
    out = torch.zeros(labels.shape[0], 1, 8, 8, dtype=torch.uint8)
    out[:, 0, 0, 2] = GAN_MARK
    return out


def real_indices(images):
    """The dataset indices of the unmarked (real) images, in their order."""
    real = images[images[:, 0, 0, 2] != GAN_MARK]
    return real[:, 0, 0, 0].long() + 256 * real[:, 0, 0, 1].long()


def record_classifiers(monkeypatch, record):
    """Replace classifier training with `record(images, labels, seed, transform)`; accuracy 0.5."""
    def recording_train(images, labels, num_classes, recipe, seed, transform=None, device=None, **progress):
        record(images, labels, seed, transform)
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(exp, "train_classifier", recording_train)
    monkeypatch.setattr(exp, "accuracy", lambda net, images, labels: 0.5)


def test_only_subset_images_train_anything(monkeypatch):
    """No leakage: every classifier sees exactly the K-per-class subset (plus generated images),
    and the GAN is asked to train on exactly that subset."""
    x, y = indexed_dataset()
    test = (x[:30].clone(), y[:30].clone())
    seen, sampler_calls = [], []

    def make_sampler(k, seed, idx):
        sampler_calls.append((k, seed, idx))
        return marked_fakes

    record_classifiers(monkeypatch, lambda images, labels, seed, transform: seen.append(
        (seed, transform is not None, real_indices(images).sort().values,
         int((images[:, 0, 0, 2] == GAN_MARK).sum()), labels)))
    result = run_augment_experiment((x, y), test, 3, per_class=[4, 10], seeds=[0, 1], make_sampler=make_sampler,
                                    synthetic_per_class=5, recipe=FAST)
    assert len(seen) == 2 * 2 * 4 and len(sampler_calls) == 4
    for k, s, idx in sampler_calls:
        assert torch.equal(idx, per_class_indices(y, k, s, 3)) and torch.equal(result.subsets[(k, s)], idx)
    calls = iter(seen)
    for k in (4, 10):
        for s in (0, 1):
            subset = per_class_indices(y, k, s, 3)
            for cond in CONDITIONS:
                seed, classic, idx, n_gan, labels = next(calls)
                assert seed == s and classic == ("classic" in cond)
                assert torch.equal(idx, subset)  # all of the subset, nothing else
                assert n_gan == (15 if "gan" in cond else 0)
                assert torch.bincount(labels, minlength=3).tolist() == [k + (5 if "gan" in cond else 0)] * 3


def test_tiny_experiment_on_digits(tmp_path):
    tr, te = load_dataset("digits", split="train"), load_dataset("digits", split="test")

    def make_sampler(k, seed, idx):  # a stand-in "GAN": real subset images of the requested class
        pools = {c: tr.images[idx][tr.labels[idx] == c] for c in range(10)}
        return lambda labels: torch.stack([pools[int(c)][torch.randint(0, k, ()).item()] for c in labels])

    logs = []
    result = run_augment_experiment((tr.images, tr.labels), (te.images, te.labels), 10, per_class=[3, 10],
                                    seeds=[0, 1], make_sampler=make_sampler, synthetic_per_class=5,
                                    recipe=FAST, log=logs.append)
    assert [(r.k, r.condition) for r in result.rows] == [(k, c) for k in (3, 10) for c in CONDITIONS]
    for r in result.rows:
        assert len(r.values) == 2 and r.seeds == [0, 1] and all(0 <= v <= 1 for v in r.values)
        assert r.mean == pytest.approx(sum(r.values) / 2)
        assert r.std == pytest.approx(abs(r.values[0] - r.values[1]) / 2 ** 0.5)
    assert result.row(10, "real").mean > result.row(3, "real").mean > 0.3
    clf_lines = [m for m in logs if "test accuracy" in m]
    assert len(clf_lines) == 16 and clf_lines[0].startswith("K=3 seed=0 real: test accuracy 0.")
    assert logs[0].startswith("K=3 seed=0 GAN: 50 images generated in ")
    p = result.protocol
    assert p["seeds"] == "0,1" and p["per_class"] == "3,10" and p["test_count"] == 359 and "clf_seed" not in p
    assert p["clf_augment"].startswith("torchvision.v2 per image") and p["synthetic_per_class"] == 5

    table = render_table(result).splitlines()
    assert table[0].startswith("test accuracy % (mean ± std over 2 seeds")
    assert table[1].split() == ["K/class", *CONDITIONS] and table[4] == "columns:"
    r = result.row(3, "real+gan")
    assert f"{100 * r.mean:5.1f} ± {100 * r.std:4.1f}" in table[2]
    assert table[7].split()[:5] == ["real+gan", "the", "real", "subset", "+"] and "5 GAN-made images per class" in table[7]
    assert table[9] == "  images per classifier: K=3: real 30, +gan 80; K=10: real 100, +gan 150"
    png = plot(result, str(tmp_path / "augment.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_errors():
    x, y = indexed_dataset(30)
    data = (x, y)
    with pytest.raises(ConfigError, match="the \\+gan conditions need a generator"):
        run_augment_experiment(data, data, 3, [2], [0], make_sampler=None)
    with pytest.raises(ConfigError, match="--real-per-class needs positive integers"):
        run_augment_experiment(data, data, 3, [0], [0], make_sampler=None, conditions=["real"])
    with pytest.raises(ConfigError, match="unknown condition"):
        run_augment_experiment(data, data, 3, [2], [0], make_sampler=None, conditions=["gan-only"])
    with pytest.raises(ConfigError, match="need --classic ops"):
        run_augment_experiment(data, data, 3, [2], [0], make_sampler=None, conditions=["real+classic"], classic="")


def test_real_fraction_repeats_the_real_subset_to_that_share_of_the_gan_sets(monkeypatch):
    x, y = indexed_dataset()
    seen = []

    def make_sampler(k, seed, idx):
        return marked_fakes

    record_classifiers(monkeypatch, lambda images, labels, seed, transform: seen.append(real_indices(images)))
    result = run_augment_experiment((x, y), (x[:30], y[:30]), 3, per_class=[4], seeds=[0], make_sampler=make_sampler,
                                    synthetic_per_class=40, recipe=FAST, real_fraction=0.5)
    subset = per_class_indices(y, 4, 0, 3)
    for cond, idx in zip(CONDITIONS, seen):  # 12 real vs 120 generated: the +gan sets hold 10 copies of each
        copies = 10 if "gan" in cond else 1
        assert torch.equal(idx.sort().values, subset.repeat_interleave(copies)), cond
    assert result.protocol["mixing"] == "real fraction 0.5 (real repeated)"
    assert exp.real_repeats(None, 12, 120) == 1 and exp.real_repeats(0.2, 100, 10) == 1
    assert exp.real_repeats(0.75, 10, 100) == 30
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="--real-fraction must be between 0 and 1"):
            run_augment_experiment((x, y), (x, y), 3, [2], [0], make_sampler=make_sampler, real_fraction=bad)
