"""What a newcomer's walkthrough hit (issue: one engine for many tasks): plain log lines flushed per
tick, the run dir and MLflow run id printed at the start, the shipped extractor weights never
replaced by default, samples for external FID tools, preset descriptions, the Python API."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from raygan.cli import main

TINY = ["--set", "train.total_kimg=0.512", "--set", "train.tick_kimg=0.128", "--set", "eval.num_samples=64",
        "--set", "eval.final_num_samples=64", "--set", "train.threads=1", "--set", "eval.metrics=[fid]"]


def test_no_progress_flushes_a_line_per_tick_while_running(in_tmp):
    """`> log` (a pipe, not a terminal): each tick's line arrives while the run is still going."""
    args = [sys.executable, "-m", "raygan", "train", "--preset", "digits", "--run-dir", "r", "--no-progress",
            "--set", "train.total_kimg=2.56", "--set", "train.tick_kimg=0.128", "--set", "train.eval_ticks=0",
            "--set", "eval.final_num_samples=64", "--set", "train.threads=1", "--set", "tracking.enabled=false"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=in_tmp,
                         env={**os.environ, "PYTHONUNBUFFERED": ""})
    try:
        first = p.stderr.readline()  # the start line: where the run lives
        assert first.startswith("raygan: training generate in ") and first.rstrip().endswith("/r"), first
        line = p.stderr.readline()
        assert line.startswith("kimg 0.1  loss_d "), line
        assert p.poll() is None  # the line came while the run was still training
    finally:
        out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert err.count("kimg ") >= 19  # 20 ticks, one line each


def test_start_line_names_run_dir_and_mlflow_run(in_tmp, capsys):
    from raygan.tasks.generate import eval as generate_eval

    generate_eval._WARNED.clear()  # said once per process: earlier tests may have said it
    assert main(["train", "--preset", "digits", "--run-dir", "r", "--no-progress", *TINY]) == 0
    err = capsys.readouterr().err
    run_id = json.loads((in_tmp / "r" / "run.json").read_text())["run_id"]
    assert err.splitlines()[0] == f"raygan: training generate in {in_tmp / 'r'}  (MLflow run {run_id})"
    # digits judged by the Fashion-MNIST extractor: said plainly, and kept in the protocol
    assert "fmnist-cnn features were learnt on fashion-mnist, not digits" in err
    summary = json.loads((in_tmp / "r" / "summary.json").read_text())
    assert "not digits" in summary["protocol"]["domain_warning"]


def test_extractor_train_never_replaces_the_shipped_weights_by_default(in_tmp, capsys):
    from pathlib import Path

    from raygan.metrics.extractors import fmnist_cnn

    SHIPPED_WEIGHTS = Path(fmnist_cnn.SHIPPED_WEIGHTS)
    before = SHIPPED_WEIGHTS.read_bytes()
    assert main(["extractor", "train", "--out", str(SHIPPED_WEIGHTS)]) == 2
    assert "--replace-shipped" in capsys.readouterr().err
    (in_tmp / "w.pt").write_bytes(b"x")
    assert main(["extractor", "train", "--out", "w.pt"]) == 2  # an existing file needs --force
    assert "--force" in capsys.readouterr().err
    assert SHIPPED_WEIGHTS.read_bytes() == before and (in_tmp / "w.pt").read_bytes() == b"x"


@pytest.fixture
def conditional_run(in_tmp, capsys):
    assert main(["train", "--preset", "digits", "--run-dir", "c", "--no-progress", "--set", "model.conditional=true",
                 "--set", "tracking.enabled=false", *TINY]) == 0
    capsys.readouterr()
    return in_tmp / "c"


def test_sample_formats_for_external_fid_tools(conditional_run, capsys):
    run = str(conditional_run)
    assert main(["sample", "--run-dir", run, "--num", "12", "--out", "s.npz"]) == 0
    z = np.load("s.npz")
    assert z["images"].dtype == np.uint8 and z["images"].shape == (12, 1, 28, 28)
    assert z["labels"].tolist() == [i % 10 for i in range(12)]  # a conditional G: classes in turn
    assert main(["sample", "--run-dir", run, "--num", "5", "--out", "pngs", "--format", "png-dir"]) == 0
    files = sorted(os.listdir("pngs"))
    assert files == [f"{i:06d}.png" for i in range(5)] and Image.open(f"pngs/{files[0]}").size == (28, 28)
    # same seed, same images in every format
    grid_a = np.load("s.npz")["images"][:5]
    assert np.array_equal(np.stack([np.array(Image.open(f"pngs/{f}")) for f in files])[:, None], grid_a)
    capsys.readouterr()
    for bad, pattern in [(["--out", "s.txt"], "unknown or missing extension"), (["--out", "pngs"], "is a directory"),
                         (["--out", "s.npz"], "exists; pass --force"),
                         (["--out", "/proc/x/y.png"], "not writable")]:
        assert main(["sample", "--run-dir", run, *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert pattern in err and len(err.splitlines()) == 1, err


def test_presets_have_descriptions(capsys):
    assert main(["presets"]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith(" ")}
    assert "quick DCGAN" in lines["quickstart"] and "generate" in lines["quickstart"]
    assert all(len(ln.split()) > 3 for ln in lines.values())  # every preset says what it is for


def test_missing_data_hint_names_flags_each_command_has(in_tmp, capsys, monkeypatch):
    monkeypatch.setenv("RAYGAN_DATA", str(in_tmp / "empty"))
    assert main(["data", "info", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "raygan data info NAME --download" in err and "data.download=true" in err


def test_python_api_train_evaluate_sample(in_tmp):
    import raygan.api as rg

    cfg = rg.config("digits", overrides=["train.total_kimg=0.256", "train.tick_kimg=0.128", "eval.metrics=[fid]",
                                         "eval.final_num_samples=64", "tracking.enabled=false"])
    t0 = time.time()
    summary = rg.train(cfg, run_dir="api-run", progress=False)
    assert summary["kimg"] == pytest.approx(0.256) and time.time() - t0 < 120
    values, protocol = rg.evaluate("api-run", metrics=["fid", "kid"], num_samples=64)
    assert set(values) == {"fid", "kid", "kid_std"} and protocol["num_samples"] == 64
    images, labels = rg.sample("api-run", num=7, seed=3)
    assert images.shape == (7, 1, 28, 28) and labels is None
    again, _ = rg.sample("api-run", num=7, seed=3)
    assert (images == again).all()
