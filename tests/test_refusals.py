"""Refusals that run in this process: a pickle in a model or checkpoint never runs, every float of a
config is finite, a run that diverges registers nothing, bad config files, run dirs, sample/eval
counts and tracking stores are one line, a full disk, WGAN without a constraint. Several processes,
kills and signals: hosts/test_killed_and_concurrent_runs.py; the cluster: distributed/. RELIABILITY.md
maps every case to its test."""
from __future__ import annotations

import io
import pickle
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
from PIL import Image

from helpers import isolated_dir
from reliability_util import (all_runs, cli, client, db_uri, error_after_start, one_line, run_id, tiny, tmpfs,
                              versions)

MODEL = "raygan-digits-mlp"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run (2 ticks) with a registered version, shared by the read-only checks."""
    tmp = tmp_path_factory.mktemp("trained")
    with isolated_dir(tmp):
        from raygan.cli import main

        code = main(["train", *tiny(tmp), "--run-dir", str(tmp / "run")])
    assert code == 0
    assert len(versions(tmp, MODEL)) == 1
    return tmp


@pytest.fixture
def here(in_tmp):
    """conftest's fresh working directory (own MLflow store and caches), by this module's name."""
    return in_tmp


# ============================================================================ 1. no code runs from a model
class Payload:
    """What an attacker puts in a model file: unpickling it calls exec and writes a marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def _version_folder(tmp: Path, version: str) -> Path:
    source = client(tmp).get_model_version(MODEL, version).source
    folder = Path(urlparse(source).path)
    assert (folder / "weights.pt").is_file() and (folder / "spec.json").is_file(), folder
    return folder


def test_malicious_pickle_in_a_registered_version_never_runs(trained, here, capsys):
    uri = f"models:/{MODEL}/1"
    code, out, err = cli(capsys, "sample", "--model-uri", uri, "--tracking-uri", db_uri(trained), "--num", "4",
                         "--out", "ok.png")
    assert code == 0, err
    assert Image.open("ok.png").size[0] > 0

    folder = _version_folder(trained, "1")
    saved = (folder / "weights.pt").read_bytes()
    marker = here / "marker"
    try:
        torch.save(Payload(marker), folder / "weights.pt")  # a real torch file whose pickle runs exec
        # control: the payload is live -- plain unpickling (what mlflow.pytorch.load_model does) runs it
        with open(folder / "weights.pt", "rb") as f:
            torch.load(io.BytesIO(f.read()), weights_only=False)
        assert marker.read_text() == "pwned"
        marker.unlink()

        for cmd in (["sample", "--out", "x.png"], ["eval", "--num-samples", "16"]):
            code, out, err = cli(capsys, *cmd, "--model-uri", uri, "--tracking-uri", db_uri(trained))
            one_line(code, err, r"weights\.pt is not a plain tensor file, refused")
            assert not marker.exists()
            assert not Path("x.png").exists()

        # a model folder without raygan's spec (e.g. an mlflow.pytorch pickle) is refused, not loaded
        (folder / "spec.json").rename(folder / "spec.json.bak")
        (folder / "model.pth").write_bytes(pickle.dumps(Payload(marker)))
        code, out, err = cli(capsys, "sample", "--out", "y.png", "--model-uri", uri, "--tracking-uri", db_uri(trained))
        one_line(code, err, r"not a raygan model.*not loaded, for safety")
        assert not marker.exists()
    finally:
        if (folder / "spec.json.bak").exists():
            (folder / "spec.json.bak").rename(folder / "spec.json")
        (folder / "model.pth").unlink(missing_ok=True)
        (folder / "weights.pt").write_bytes(saved)


def test_malicious_pickle_as_a_checkpoint_never_runs(trained, here, capsys):
    run = here / "run"
    shutil.copytree(trained / "run", run)
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    marker = here / "marker"
    torch.save(Payload(marker), ckpt / "state.pt")
    code, _, err = cli(capsys, "sample", "--run-dir", run, "--out", "z.png", "--num", "4")
    one_line(code, err, r"corrupt or unreadable")
    code, _, err = cli(capsys, "train", "--run-dir", run, "--resume", "--set", "train.total_kimg=1")
    one_line(code, err, r"corrupt or unreadable")
    assert not marker.exists() and not Path("z.png").exists()


# ============================================================================ 6. every float finite; no NaN model
@pytest.mark.parametrize("value,pattern", [
    ("optim.g_lr=.inf", r"config: optim\.g_lr: Input should be a finite number"),
    ("train.total_kimg=.inf", r"config: train\.total_kimg: Input should be a finite number"),
    ("optim.d_lr=.nan", r"config: optim\.d_lr: .*finite number"),
    ("ema.half_life_kimg=nan", r"config: ema\.half_life_kimg: Input should be a finite number"),
    ("optim.g_betas=[0.5, .nan]", r"config: optim\.g_betas\.1: .*finite number"),
    ("regularizer.kwargs={weight: .inf}", r"config: regularizer\.kwargs\.weight: must be a finite number"),
    ("model.g={hidden: [.nan]}", r"config: model\.g\.hidden\.0: must be a finite number"),
])
def test_every_float_in_the_config_is_finite(here, capsys, value, pattern):
    code, out, err = cli(capsys, "train", "--preset", "digits", "--run-dir", "r", "--set", value)
    one_line(code, err, pattern)
    assert not (here / "r").exists() and not (here / "mlflow.db").exists()


def test_a_run_that_diverges_on_its_last_tick_fails_and_registers_nothing(here, capsys):
    name = "diverge-test"
    run = here / "run"
    code, out, err = cli(capsys, "train", *tiny(here, "train.total_kimg=0.128", f"tracking.register_model={name}"),
                         "--run-dir", run)
    assert code == 0, err
    assert len(versions(here, name)) == 1
    good = sorted((run / "checkpoints").iterdir())
    assert [p.name for p in good] == ["ckpt-0000000128"]
    # one more tick, the last, with a learning rate that blows up (nan_ticks is 2: only the last-tick rule fires)
    code, out, err = cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress",
                         "--set", "train.total_kimg=0.256", "--set", "optim.g_lr=1e30", "--set", "optim.d_lr=1e30")
    error_after_start(code, err, r"training diverged: non-finite losses on the last tick at kimg 0\.3 .*"
                                 r"last good checkpoint: .*ckpt-0000000128")
    assert len(versions(here, name)) == 1  # no all-NaN version
    r = client(here).get_run(run_id(run))
    assert r.info.status == "FAILED" and "diverged" in r.data.tags["raygan.error"]
    assert sorted((run / "checkpoints").iterdir()) == good


# ============================================================================ 10. one line, exit 2
def test_config_file_binary_or_a_directory(here, capsys):
    (here / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    code, _, err = cli(capsys, "train", "--config", "bin.yaml", "--run-dir", "r")
    one_line(code, err, r"config file bin\.yaml is not text \(not UTF-8\)")
    (here / "adir").mkdir()
    code, _, err = cli(capsys, "train", "--config", "adir", "--run-dir", "r")
    one_line(code, err, r"config file adir is a directory")
    assert not (here / "r").exists()


@pytest.mark.parametrize("value,pattern", [
    ("seed=99999999999999999999999", r"config: seed: Input should be less than or equal to 4294967295"),
    ("seed=-1", r"config: seed: Input should be greater than or equal to 0"),
    ("eval.seed=4294967296", r"config: eval\.seed: .*less than or equal to 4294967295"),
    ("train.device=banana", r"config: train\.device: 'banana' is not a device"),
    ("train.device=mps", r"config: train\.device: 'mps' is not supported"),
])
def test_seed_and_device_checked_with_the_config(here, capsys, value, pattern):
    code, _, err = cli(capsys, "train", "--preset", "digits", "--dry-run", "--set", value)
    one_line(code, err, pattern)
    code, _, err = cli(capsys, "train", "--preset", "digits", "--run-dir", "r", "--set", value)
    one_line(code, err, pattern)
    assert list(here.iterdir()) == []  # nothing written, not even the MLflow store


def test_run_dir_a_file_or_not_writable(here, capsys):
    (here / "afile").write_text("x")
    code, _, err = cli(capsys, "train", *tiny(here), "--run-dir", "afile")
    one_line(code, err, r"run dir .*afile is a file, not a directory")
    code, _, err = cli(capsys, "train", *tiny(here), "--run-dir", "afile/sub")
    one_line(code, err, r"run dir .*afile/sub: .*afile is a file")
    with tmpfs(here / "ro", "64k", read_only=True, subdirs=["exists"]):
        code, _, err = cli(capsys, "train", *tiny(here), "--run-dir", "ro/exists")
        one_line(code, err, r"run dir .*ro/exists cannot be created or written \(.*ro/exists is not writable\)")
        code, _, err = cli(capsys, "train", *tiny(here), "--run-dir", "ro/new/deeper")
        one_line(code, err, r"run dir .*ro/new/deeper cannot be created or written \(.*/ro is not writable\)")
        assert not (here / "mlflow.db").exists()  # refused before the tracking store was touched


def test_sample_out_checked_before_the_model_is_loaded(trained, here, capsys):
    (here / "adir").mkdir()
    (here / "exists.png").write_bytes(b"old")
    cases = [("x", r"--out x: unknown or missing extension"),
             ("x.jpg", r"--out x\.jpg: unknown or missing extension"),
             ("adir", r"--out adir is a directory"),
             ("exists.png", r"--out exists\.png exists; pass --force")]
    for out, pattern in cases:  # --run-dir holds no run: the --out error comes first, so it was checked first
        code, _, err = cli(capsys, "sample", "--run-dir", "nowhere", "--out", out)
        one_line(code, err, pattern)
    with tmpfs(here / "ro", "64k", read_only=True):
        code, _, err = cli(capsys, "sample", "--run-dir", "nowhere", "--out", "ro/x.png")
        one_line(code, err, r"--out ro/x\.png: ro is not writable")
    code, _, err = cli(capsys, "sample", "--run-dir", trained / "run", "--out", "exists.png", "--num", "4", "--force")
    assert code == 0, err
    assert (here / "exists.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args,pattern", [
    (["--num-samples", "1"], r"--num-samples must be at least 2, got 1"),
    (["--num-samples", "0"], r"--num-samples must be at least 2, got 0"),
    (["--num-samples", "-5"], r"--num-samples must be at least 2, got -5"),
    (["--num-samples", "5", "--metrics", "is"], r"metric 'is' needs at least 10 samples, got --num-samples 5"),
    (["--num-samples", "2", "--metrics", "fid"], r"metric 'fid' needs at least 10 samples, got --num-samples 2"),
])
def test_eval_sample_counts(trained, here, capsys, args, pattern):
    code, _, err = cli(capsys, "eval", "--run-dir", trained / "run", *args)
    one_line(code, err, pattern)


def test_tracking_store_and_names(trained, here, capsys):
    t0 = time.time()
    code, _, err = cli(capsys, "runs", "list", "--tracking-uri", "http://127.0.0.1:1")
    one_line(code, err, r"MLflow server http://127\.0\.0\.1:1 is not reachable")
    assert time.time() - t0 < 15  # not minutes of retries
    code, _, err = cli(capsys, "runs", "list", "--tracking-uri", "foo://x")
    one_line(code, err, r"tracking URI 'foo://x': unknown scheme 'foo'")
    code, _, err = cli(capsys, "runs", "list", "--tracking-uri", db_uri(trained), "--sort", "bogus")
    one_line(code, err, r"--sort 'bogus': no run has that metric; sort by start, name, score or one of: .*fid")
    for value, pattern in [("tracking.uri=foo://x", r"unknown scheme 'foo'"),
                           ("tracking.uri=http://127.0.0.1:1", r"not reachable"),
                           ("tracking.register_model=a/b:c", r"tracking\.register_model: 'a/b:c' is not a valid"),
                           ("tracking.experiment=''", r"tracking\.experiment: must not be empty")]:
        code, _, err = cli(capsys, "train", *tiny(here), "--set", value, "--run-dir", "r")
        one_line(code, err, pattern)  # before training, not after it
        assert not (here / "r").exists()


def test_disk_full_during_a_checkpoint_write(here, capsys):
    """A real 10 MiB filesystem: the first checkpoint (~6.7 MB) fits, the second does not."""
    with tmpfs(here / "small", "10m") as small:
        run = small / "run"
        code, out, err = cli(capsys, "train", *tiny(here, "train.total_kimg=0.384", "train.snapshot_ticks=1"),
                             "--run-dir", run)
        error_after_start(code, err, rf"disk full while writing {run}/checkpoints")
        ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert ckpts == ["ckpt-0000000128"]  # the earlier checkpoint stays, no temp dir is left
        assert (run / "checkpoints" / ckpts[0] / "state.pt").stat().st_size > 1_000_000
        assert client(here).get_run(run_id(run)).info.status == "FAILED"
        torch.load(run / "checkpoints" / ckpts[0] / "state.pt", weights_only=True)  # still whole


# ============================================================================ 11. GAN practice
def test_wgan_without_constraint_warns_once_and_constrained_ones_do_not(capsys):
    from raygan.config import load_config
    from raygan.tasks.generate import checks as generate_checks
    from raygan.tasks.generate.checks import check_generate

    generate_checks._warned.clear()
    check_generate(load_config("digits", None, ["loss.name=wgan"]))
    check_generate(load_config("digits", None, ["loss.name=wgan"]))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("raygan: warning: loss 'wgan' with no regulariser")
    for extra in (["loss.name=wgan", "regularizer.name=wgan-gp"], ["loss.name=wgan", "regularizer.name=clip"],
                  ["loss.name=wgan", "model.spectral_norm=true"], ["loss.name=hinge"], []):
        check_generate(load_config("digits", None, extra))
    assert capsys.readouterr().err == ""


def _one_class_folder(root: Path) -> Path:
    root.mkdir()
    for i in range(8):
        Image.new("L", (28, 28), color=i * 30).save(root / f"{i}.png")
    return root


def test_one_class_conditional_model_is_refused(tmp_path):
    from raygan.config import load_config
    from raygan.data import load_dataset
    from raygan.errors import ConfigError
    from raygan.tasks.generate.checks import check_classes

    folder = _one_class_folder(tmp_path / "imgs")
    cfg = load_config("digits", None, ["data.name=folder", f"data.root={folder}", "model.conditional=true"])
    data = load_dataset("folder", root=folder, resolution=28, channels=1)
    with pytest.raises(ConfigError, match=r"config: model\.conditional: the folder training data has 1 class; "
                                          r"a class-conditional model needs at least 2"):
        check_classes(cfg, data)
    check_classes(cfg.model_copy(update={"model": cfg.model.model_copy(update={"conditional": False})}), data)
    check_classes(load_config("digits", None, ["model.conditional=true"]),
                  load_dataset("digits", resolution=28))  # ten classes: fine


def test_wgan_warning_from_the_cli_and_the_run_continues(here, capsys):
    from raygan.tasks.generate import checks as generate_checks

    generate_checks._warned.clear()
    code, out, err = cli(capsys, "train", *tiny(here, "loss.name=wgan", "train.total_kimg=0.128"), "--run-dir", "r")
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if "critic is unconstrained" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("raygan: warning: loss 'wgan' with no regulariser")
    assert (here / "r" / "checkpoints").is_dir()


def test_one_class_conditional_refused_from_the_cli(here, capsys):
    folder = _one_class_folder(here / "imgs")
    code, _, err = cli(capsys, "train", *tiny(here, "data.name=folder", f"data.root={folder}", "optim.batch_size=8",
                                              "model.conditional=true"), "--run-dir", "r")
    one_line(code, err, r"model\.conditional: the folder training data has 1 class")
    assert not (here / "r").exists() and all_runs(here) == []


# ============================================================================ what held (issue summary), rechecked
@pytest.mark.parametrize("cmd,name,pattern", [
    ("train", "../x", r"run name '\.\./x': no slashes"),
    ("train", "a/b", r"run name 'a/b': no slashes"),
    ("tune", "../x", r"sweep name '\.\./x': no slashes"),
])
def test_held_run_and_sweep_names_cannot_leave_the_storage(here, capsys, cmd, name, pattern):
    extra = ["--workers", "1"] if cmd == "train" else []
    code, _, err = cli(capsys, cmd, "--preset", "digits", *extra, "--name", name, "--storage", here / "st")
    one_line(code, err, pattern)
    assert not (here / "st").exists() and not (here / "x").exists()
