"""CLI manners: --version, defaults in --help, presets wrapped at word boundaries, a closed pipe,
one spelling per metric (the other accepted), API errors that name API parameters, and commands
that start without importing torch, Ray or MLflow where they do not need them."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from raygan.cli import main

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}


def raygan_modules(args, heavy=("torch", "ray", "mlflow")):
    """(exit code, stdout, the heavy modules imported) of `raygan ARGS` in a fresh interpreter."""
    code = textwrap.dedent(f"""
        import json, sys
        from raygan.cli import main
        try:
            rc = main({list(args)!r})
        except SystemExit as e:
            rc = e.code
        sys.stdout.flush()
        print(json.dumps({{"rc": rc, "heavy": sorted(m for m in {list(heavy)!r} if m in sys.modules)}}),
              file=sys.stderr)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=REPO,
                       timeout=300)
    info = json.loads(p.stderr.strip().splitlines()[-1])
    return info["rc"], p.stdout, info["heavy"]


def test_help_presets_and_version_import_no_torch_ray_or_mlflow():
    for args in (["--help"], ["presets"], ["train", "--help"], ["tune", "--help"], ["runs", "list", "--help"]):
        rc, out, heavy = raygan_modules(args)
        assert rc == 0 and out and heavy == [], (args, heavy)


def test_tune_dry_run_imports_no_ray_or_mlflow():
    rc, out, heavy = raygan_modules(["tune", "--preset", "digits", "--dry-run", "--samples", "2"])
    assert rc == 0 and "objective:    fid (minimise)" in out and "ray" not in heavy and "mlflow" not in heavy


def test_version():
    p = subprocess.run([sys.executable, "-m", "raygan", "--version"], capture_output=True, text=True, env=ENV,
                       timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("raygan 0.") and "torch 2." in p.stdout and "mlflow 3." in p.stdout


def test_a_closed_pipe_ends_quietly():
    r, w = os.pipe()
    os.close(r)  # `raygan presets | head -0`: the reader is gone before anything is written
    p = subprocess.run([sys.executable, "-m", "raygan", "presets"], stdout=w, stderr=subprocess.PIPE, text=True,
                       env=ENV, timeout=120)
    os.close(w)
    assert p.returncode == 141 and p.stderr == "", p.stderr


@pytest.mark.parametrize("command,expected", [
    (["eval"], "(default: the run's eval.extractor)"),
    (["sample"], "how many images (default 64)"),
    (["augment"], "1 seed: no spread) (default: 3)"),
    (["augment"], "(default: fmnist-cgan-100pc)"),
    (["augment"], "(default: 1000)"),
])
def test_help_shows_defaults(capsys, command, expected):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    assert expected in " ".join(capsys.readouterr().out.split())


def test_presets_are_wrapped_at_word_boundaries_not_cut(capsys, monkeypatch):
    from raygan.cli.tools import preset_description
    from raygan.config import preset_names

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    entries, name = {}, None
    for line in out.splitlines():
        assert len(line) <= 80, line
        if not line.startswith(" "):
            name, task, *words = line.split()
            entries[name] = words
        else:
            entries[name] += line.split()
    assert sorted(entries) == preset_names()
    for name, words in entries.items():  # every description whole, word for word
        assert " ".join(words) == " ".join(preset_description(name).split()) and len(words) > 3, name
    assert " ".join(entries["mlp"]).startswith("The classic dense GAN (Goodfellow et al. style MLPs)")


def test_one_spelling_per_metric_and_the_other_accepted():
    from raygan.config.schema import EvalConfig
    from raygan.metric_names import SPECS, canonical, direction, kind
    from raygan.metrics.registry import METRICS

    assert all("-" not in name for name in SPECS) and sorted(SPECS) == METRICS.names()
    assert EvalConfig(metrics=["fid", "domain-acc", "cycle-psnr", "gan-test"]).metrics == \
        ["fid", "domain_acc", "cycle_psnr", "gan_test"]
    assert METRICS.get("domain-acc") is METRICS.get("domain_acc") and "fid-a2b" in METRICS
    assert direction("domain-acc") == direction("domain_acc") == "max" and kind("cycle-psnr") == "translation"
    assert canonical("fid-a2b") == "fid_a2b"


def test_sweep_objective_accepts_either_spelling():
    from raygan.config import load_config
    from raygan.distributed.sweep.options import SweepOptions, objective

    cfg = load_config("fmnist-sneaker2boot", None, [])
    assert cfg.eval.metrics == ["fid", "domain_acc", "cycle_psnr"]
    assert objective(cfg, SweepOptions(objective="domain-acc")) == objective(cfg, SweepOptions(objective="domain_acc")) \
        == "domain_acc"


def test_api_errors_name_api_parameters_and_the_cli_names_flags(capsys):
    from raygan import api
    from raygan.config import load_config
    from raygan.errors import ArgumentError, RayganError

    with pytest.raises(ArgumentError, match=r"^num must be at least 1, got 0$"):
        api.sample(run_dir="nowhere", num=0)
    with pytest.raises(ArgumentError, match=r"^metric 'fid' needs at least 10 samples, got num_samples 5$"):
        api.check_sample_count(load_config("digits", None, []), 5)
    with pytest.raises(RayganError, match=r"^give run_dir or model_uri \(one of them\)$"):
        api.load()
    with pytest.raises(RayganError, match=r"train\(resume=True\) needs run_dir"):
        api.train(resume=True)
    assert main(["sample", "--run-dir", "nowhere", "--num", "0", "--out", "x.png"]) == 2
    assert capsys.readouterr().err.strip() == "raygan: error: --num must be at least 1, got 0"


def test_tune_dry_run_says_how_each_objective_is_judged(capsys):
    assert main(["tune", "--preset", "fmnist-denoise", "--objective", "psnr", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "proxy:        psnr on 2000 samples" in out  # PSNR uses no feature extractor
    assert "x 3 new evaluation seeds" in out
    assert main(["tune", "--preset", "fmnist-sneaker2boot", "--objective", "domain-acc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "objective:    domain_acc (maximise)" in out and "x one evaluation (it draws nothing at random)" in out


def test_augment_help_defaults_match_the_modules_that_define_them():
    from raygan.cli import augment
    from raygan.experiments.augment import CONDITIONS
    from raygan.metrics.classify import RECIPE

    assert augment.CONDITIONS == CONDITIONS
    assert (augment.RECIPE_STEPS, augment.RECIPE_BATCH_SIZE) == (RECIPE.steps, RECIPE.batch_size)
