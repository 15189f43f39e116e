"""`raygan augment` with real GANs: per (K, seed) a conditional GAN trained by the engine on
exactly the classifiers' subset, or one given run's generator; logged to MLflow as a parent
run with a child per cell."""
import dataclasses

import pytest

from raygan.config import load_config
from raygan.data import load_dataset
from raygan.data.subsets import per_class_indices, subset_protocol
from raygan.errors import ConfigError
from raygan.experiments.augment import CONDITIONS
from raygan.experiments.augment_run import run_augment, subset_gan_config
from raygan.metrics.classify import RECIPE
from raygan.engine.loop import Trainer
from helpers import AUGMENT_BASE as BASE

FAST = dataclasses.replace(RECIPE, steps=40, batch_size=32)
def test_each_cell_trains_a_conditional_gan_on_exactly_its_subset(tmp_path):
    base = load_config(None, None, BASE)
    logs = []
    out = run_augment(None, real_per_class=[2, 5], synthetic_per_class=3, classic="flip", seeds=[0, 1], base=base,
                      gan_kimg=0.128, recipe=FAST, work_dir=tmp_path, log=logs.append)
    labels = load_dataset("digits", split="train", resolution=28).labels
    assert [(r.k, r.condition) for r in out.result.rows] == [(k, c) for k in (2, 5) for c in CONDITIONS]
    assert all(0 <= v <= 1 for r in out.result.rows for v in r.values)
    for k in (2, 5):
        for s in (0, 1):
            info = out.gans[f"K={k} seed={s}"]
            want = subset_protocol(per_class_indices(labels, k, s, 10), k, s)
            assert info["subset_hash"] == want["subset_hash"] and info["train_images"] == 10 * k
            assert info["source"] == "trained" and info["kimg"] >= 0.128
            assert (tmp_path / f"gan-K{k}-s{s}" / "checkpoints").is_dir()
    assert any("batch_size 32 > 20 images; using 16" in m for m in logs)  # K=2: 20 images
    assert out.protocol["gan_source"].startswith("trained per (K, seed)") and out.protocol["gan_arch"] == "dcgan"
    assert out.table.splitlines()[1].split() == ["K/class", *CONDITIONS]
    assert open(out.plot_path, "rb").read(4) == b"\x89PNG"


def test_subset_gan_config_is_conditional_and_on_the_subset():
    cfg = subset_gan_config(load_config(None, None, BASE), 7, 3, 2.5)
    assert (cfg.data.per_class, cfg.data.subset_seed, cfg.model.conditional, cfg.train.total_kimg) == (7, 3, True, 2.5)
    assert cfg.eval.metrics == [] and not cfg.tracking.enabled


def test_a_given_run_serves_every_cell_and_is_logged_to_mlflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, None, BASE + ["model.conditional=true", "train.total_kimg=0.128", "data.per_class=20"])
    Trainer(cfg, tmp_path / "run", evaluator=None).run()
    logs = []
    out = run_augment(tmp_path / "run", real_per_class=[3], synthetic_per_class=2, classic="flip", seeds=1,
                      conditions=["real", "real+gan"], recipe=FAST, work_dir=tmp_path / "w", log=logs.append)
    assert out.protocol["gan_train_images"] == 200 and out.protocol["gan_subset_hash"]
    assert any("more than K per class for K=3" in m for m in logs)  # said plainly: +gan saw more data

    from raygan.tracking.augment import log_augment
    from raygan.tracking.store import open_client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    pid = log_augment(out, uri=uri, experiment="aug")
    client = open_client(uri)
    parent = client.get_run(pid)
    assert parent.info.status == "FINISHED" and parent.data.params["per_class"] == "3"
    assert "acc_mean/K3/real_gan" in parent.data.metrics
    arts = {a.path for a in client.list_artifacts(pid, "augment")}
    assert {"augment/table.txt", "augment/augment.png", "augment/rows.json", "augment/gans.json"} <= arts
    kids = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{pid}'")
    assert sorted(k.data.params["condition"] for k in kids) == ["real", "real+gan"]
    for k in kids:
        row = out.result.row(3, k.data.params["condition"])
        assert k.data.metrics["acc_mean"] == pytest.approx(row.mean)
        assert [m.value for m in client.get_metric_history(k.info.run_id, "acc")] == pytest.approx(row.values)


def test_unconditional_run_is_refused(tmp_path):
    Trainer(load_config(None, None, BASE + ["train.total_kimg=0.064"]), tmp_path / "u", evaluator=None).run()
    with pytest.raises(ConfigError, match="unconditional"):
        run_augment(tmp_path / "u", real_per_class=[3], seeds=1, recipe=FAST, log=lambda s: None)
    with pytest.raises(ConfigError, match="no checkpoint"):
        run_augment(tmp_path / "nothing", real_per_class=[3], seeds=1, recipe=FAST, log=lambda s: None)


def test_a_second_call_with_the_same_work_dir_resumes_each_cells_gan_instead_of_retraining(tmp_path):
    base = load_config(None, None, BASE)
    kw = dict(real_per_class=[3], synthetic_per_class=2, classic="flip", seeds=[0], base=base, gan_kimg=0.128,
              recipe=FAST, conditions=["real+gan"], work_dir=tmp_path)
    first = run_augment(None, log=lambda s: None, **kw)
    def files():
        return {p: p.stat().st_mtime_ns for p in (tmp_path / "gan-K3-s0" / "checkpoints").rglob("*") if p.is_file()}

    before = files()
    second = run_augment(None, log=lambda s: None, real_fraction=0.5, **kw)
    assert before and files() == before  # no checkpoint written again: the finished GAN was resumed, not retrained
    a, b = first.gans["K=3 seed=0"], second.gans["K=3 seed=0"]
    assert a["kimg"] == b["kimg"] and a["subset_hash"] == b["subset_hash"]
    assert "resumed_from" not in a and b["resumed_from"] == max(p.parent.name for p in before)
    assert first.protocol["mixing"] == "concatenate" and second.protocol["mixing"].startswith("real fraction 0.5")


def test_cli_real_fraction_out_of_range_is_one_line_exit_2(tmp_path, capsys):
    from helpers import cli as run, one_line

    code, _, err = run(capsys, "augment", "--real-fraction", "1.5", "--no-tracking", "--real-per-class", "2",
                       "--seeds", "1", "--work-dir", tmp_path / "w")
    one_line(code, err, "--real-fraction must be between 0 and 1")
    assert not list((tmp_path / "w").glob("gan-*"))


def test_outputs_are_checked_before_anything_trains_and_the_table_comes_before_the_plot(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    kw = dict(real_per_class=[2], synthetic_per_class=2, classic="flip", seeds=[0], base=load_config(None, None, BASE),
              gan_kimg=0.064, recipe=FAST, conditions=["real", "real+gan"], log=lambda s: None)
    with pytest.raises(ConfigError, match="--plot folder of .*afile: exists and is not a directory"):
        run_augment(None, work_dir=tmp_path / "w", plot_path=tmp_path / "afile" / "plot.png", **kw)
    assert not (tmp_path / "w").exists()  # nothing made, nothing trained
    out = run_augment(None, work_dir=tmp_path / "w", plot_path=tmp_path / "p.png", estimate=False, **kw)
    table = tmp_path / "w" / "augment.txt"
    assert out.table_path == str(table) and table.read_text() == out.table + "\n"
    assert table.stat().st_mtime_ns <= (tmp_path / "p.png").stat().st_mtime_ns


def test_progress_lines_say_steps_accuracy_and_time_left(tmp_path):
    logs = []
    run_augment(None, real_per_class=[2], classic="flip", seeds=[0], base=load_config(None, None, BASE),
                recipe=FAST, conditions=["real", "real+classic"], work_dir=tmp_path, log=logs.append, progress_s=0)
    plan, estimate = logs[0].splitlines()
    assert plan == "plan: 1 cell (K x seed); 2 classifiers of 40 steps, each tested on 359 images"
    assert estimate.startswith("estimate: ~") and "classifier step" in estimate
    steps = [m for m in logs if m.startswith("[1/2] K=2 seed=0 real: step ")]
    assert len(steps) == 19 and "step 2/40, batch accuracy 0." in steps[0] and ", ETA " in steps[0]
    assert logs[-1].startswith("[2/2] K=2 seed=0 real+classic: test accuracy 0.")
    assert any(m.startswith("[1/2] K=2 seed=0 real: test accuracy 0.") and "left" in m for m in logs)


def test_each_classifier_reaches_the_mlflow_parent_as_it_ends_and_an_interrupt_keeps_it(tmp_path):
    from raygan.tracking.augment import AugmentTracker
    from raygan.tracking.store import open_client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = AugmentTracker(uri, "aug", params={"per_class": "2"})
    seen = []

    def then_ctrl_c(k, cond, seed, acc, row):
        tracker.result(k, cond, seed, acc, row)
        seen.append(acc)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_augment(None, real_per_class=[2], classic="flip", seeds=[0], base=load_config(None, None, BASE),
                    recipe=FAST, conditions=["real", "real+classic"], work_dir=tmp_path / "w",
                    estimate=False, log=lambda s: None, on_result=then_ctrl_c, make_plot=False)
    tracker.fail()
    run = open_client(uri).get_run(tracker.run_id)
    assert run.info.status == "FAILED" and run.data.tags["raygan.kind"] == "augment"
    assert run.data.params["per_class"] == "2"
    assert run.data.metrics["acc/K2/real"] == pytest.approx(seen[0])
    assert run.data.metrics["acc_mean/K2/real_classic"] == pytest.approx(seen[1])
    assert run.data.metrics["acc_std/K2/real"] == 0.0


def test_init_from_starts_each_cells_conditional_gan_from_the_unconditional_pretrained_one(tmp_path, capsys):
    """The few-labels recipe: G pretrained without labels on the whole training set, each cell's
    conditional GAN starts from it (class inputs at zero: it first draws the source's images)."""
    from helpers import cli
    from raygan.api import load
    from raygan.models import build_models

    Trainer(load_config(None, None, BASE + ["train.total_kimg=0.064"]), tmp_path / "pre", evaluator=None).run()
    out = run_augment(None, real_per_class=[3], synthetic_per_class=2, classic="flip", seeds=[0], gan_kimg=0.032,
                      recipe=FAST, conditions=["real+gan"], work_dir=tmp_path / "w", log=lambda s: None,
                      init_from=str(tmp_path / "pre"), overrides=["loss.ac_weight=1.0"])  # + AC-GAN's class head
    info = out.gans["K=3 seed=0"]
    assert info["init_from"] == str(tmp_path / "pre") and info["train_images"] == 30
    assert out.protocol["gan_source"].endswith(f"from {tmp_path / 'pre'}")
    # the cell's run recorded its source, and after its few steps its G is still near the source's weights
    G, cfg, _ = load(tmp_path / "w" / "gan-K3-s0")
    assert cfg.model.conditional and cfg.train.init_from == str(tmp_path / "pre")
    src, _, _ = load(tmp_path / "pre")
    fresh = build_models("dcgan", resolution=28, channels=1, z_dim=16, num_classes=10, g={"ngf": 8})[0]
    w = lambda net: net.state_dict()["to_image.weight"]  # noqa: E731  (shared by both, same shape)
    near, far = (w(G) - w(src)).abs().mean(), (w(fresh) - w(src)).abs().mean()
    assert near < 0.1 * far, (near, far)
    code, _, err = cli(capsys, "augment", "--init-from", str(tmp_path / "nowhere"), "--no-tracking",
                       "--real-per-class", "3", "--seeds", "1", "--work-dir", str(tmp_path / "w2"))
    assert code == 2 and "no run there" in err
