"""The metrics registry dispatches: a metric is one decorated function whose kind fixes its call
and whose metadata (direction, minimum samples, the tasks it applies to, what it needs) every
evaluator, check and sweep reads. A new Tune objective is that one function: registered here in
the test, it runs through the real evaluation path and is accepted as a sweep objective."""
import dataclasses

import pytest
import torch

from raygan.api import check_sample_count
from raygan.cli import main
from raygan.config import load_config
from raygan.data import load_dataset
from raygan.errors import ConfigError
from raygan.metrics.cas import ClassifierEvidence, cas, gan_test
from raygan.metrics.classify import RECIPE, train_classifier
from raygan.metrics.registry import METRICS, applies_to, direction, min_samples
from raygan.models import build_models
from raygan.tasks.generate.eval import Evaluator

TINY = ["eval.num_samples=16", "eval.final_num_samples=16", "eval.batch_size=8"]


@pytest.fixture
def toy_metric():
    """A throwaway objective: how many generated images it saw and how many reference images."""
    @METRICS.register("toy", kind="features", keys={"toy": "max", "toy_refs": None}, min_samples=5)
    def toy(fake_feats, fake_logits, ref):
        return {"toy": float(len(fake_feats)), "toy_refs": float(ref.count)}

    yield "toy"
    METRICS.unregister("toy")


def test_a_new_objective_is_one_registered_function(toy_metric, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAYGAN_CACHE", str(tmp_path / "cache"))
    cfg = load_config("digits", None, ["eval.metrics=[toy]", *TINY])  # names and task checked
    torch.manual_seed(0)
    G, _ = build_models("mlp", resolution=28, channels=1, z_dim=8, g={"hidden": [16]}, d={"hidden": [16]})
    values, protocol = Evaluator(cfg, torch.device("cpu"), channels=1)(G, 16)  # the generate task's evaluator
    assert values["toy"] == 16.0 and values["toy_refs"] == 359.0  # 16 fakes vs digits' 359 test images
    assert protocol["num_samples"] == 16 and protocol["extractor"] == "fmnist-cnn"
    assert direction("toy") == "max" and min_samples("toy") == 5
    with pytest.raises(ConfigError, match="metric 'toy' needs at least 5 samples, got num_samples 4"):
        check_sample_count(cfg, 4)
    # a sweep takes it as its objective, direction from the registry
    assert main(["tune", "--preset", "digits", "--objective", "toy", "--dry-run"]) == 0
    assert "objective:    toy (maximise)" in capsys.readouterr().out


def test_which_tasks_a_metric_applies_to_is_its_metadata():
    @METRICS.register("toy-repair", kind="features", keys={"toy": "min"}, tasks=("repair",))
    def toy(fake_feats, fake_logits, ref):
        return {"toy": 0.0}

    try:
        assert applies_to("toy-repair", "repair") and not applies_to("toy-repair", "generate")
        with pytest.raises(ConfigError, match="'toy_repair' is not computed for task 'generate'; use cas, dc, fid"):
            load_config("digits", None, ["eval.metrics=[toy-repair]"])
    finally:
        METRICS.unregister("toy-repair")
    assert applies_to("fid", "translate") and not applies_to("kid", "translate")
    assert min_samples("fid") == 10 and min_samples("cas") == 100 and min_samples("psnr") == 2


def test_a_metric_must_say_its_kind_and_directions():
    with pytest.raises(ValueError, match="kind 'pixels' is not one of features, restoration"):
        METRICS.register("bad", kind="pixels", keys={"bad": "max"})
    with pytest.raises(ValueError, match="at least one with a direction"):
        METRICS.register("bad", kind="features", keys={"bad": None})
    with pytest.raises(ValueError, match="'min', 'max' or None"):
        METRICS.register("bad", kind="features", keys={"bad": "up"})
    assert "bad" not in METRICS


def test_registered_cas_computes_the_real_score():
    """The registry's `cas` is the classification accuracy score itself, not a placeholder."""
    train = load_dataset("digits", split="train", resolution=28, channels=1, limit=200)
    test = load_dataset("digits", split="test", resolution=28, channels=1)
    recipe = dataclasses.replace(RECIPE, steps=30, batch_size=32)
    by_class = {c: train.images[train.labels == c] for c in range(10)}

    def sample(labels):  # a "generator" that returns real training digits of the asked classes
        return torch.stack([by_class[int(c)][i % len(by_class[int(c)])] for i, c in enumerate(labels)])

    net = train_classifier(train.images, train.labels, 10, recipe, 0)
    ev = ClassifierEvidence(sample, 10, 120, (test.images, test.labels), net, recipe, seed=3)
    got = METRICS.get("cas")(ev)
    want, _ = cas(sample, (test.images, test.labels), 10, 120, recipe, 3)
    assert got == {"cas": want} and 0.3 < want <= 1.0  # real digits train a real classifier
    want, _ = gan_test(sample, net, 10, 120, recipe, 3)
    assert METRICS.get("gan-test")(ev) == {"gan_test": want} and want > 0.2  # chance is 0.1
