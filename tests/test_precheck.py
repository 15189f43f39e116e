"""raygan.precheck: a config checked without torch is the config the task layer builds, and the
manifest it reads (raygan/precheck/names.json) is what the registries say. Import checks, not timings."""
import json
import subprocess
import sys
import textwrap

import pytest

from helpers import one_line

HEAVY = ("torch", "ray", "mlflow", "optuna", "raygan.tasks")


def _modules_after(args, cwd):
    """(exit code, stdout, heavy modules loaded) of `raygan ARGS` in a fresh interpreter."""
    code = textwrap.dedent(f"""
        import sys
        from raygan.cli import main
        rc = main({args!r})
        print(__import__("json").dumps([rc, [m for m in {HEAVY!r} if m in sys.modules]]), file=sys.stderr)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)
    rc, heavy = json.loads(p.stderr.strip().splitlines()[-1])
    return rc, p.stdout, heavy


def test_the_manifest_is_what_the_registries_say():
    from raygan.precheck.write import PATH, expected

    assert json.loads(PATH.read_text()) == expected(), "names.json is stale: run `python -m raygan.precheck.write`"


#: (preset, overrides) whose checks precheck vouches for, and ones it must leave to the task layer
VOUCHED = [(None, []), ("quickstart", []), ("quickstart", ["optim.d_lr=0.001", "train.total_kimg=5"]),
           ("digits", ["regularizer.name=r1", "regularizer.kwargs.weight=0.01", "augment.diffaugment=color,cutout"]),
           ("dcgan", []), ("mlp", []), ("resnet", []), ("wgan-gp", []), ("fmnist-cgan-100pc", []),
           ("folder-dcgan-128", [])]
DEFERRED = [("digits", ["model.g.bogus=1"]), ("digits", ["model.z_dim=7"]), ("digits", ["loss.kwargs.x=1"]),
            ("digits", ["regularizer.name=r1", "regularizer.kwargs.every=0"]),
            ("digits", ["regularizer.name=r1", "regularizer.kwargs.every=2.5"]),
            ("digits", ["augment.diffaugment=color,none"]), ("digits", ["train.device=cuda:x"]),
            ("digits", ["eval.metrics=[psnr]"]), ("digits", ["eval.metrics=[cas]"]), ("digits", ["data.name=nope"]),
            ("digits", ["repair.l1_weight=3"]), ("digits", ["seed=-1"]), ("fmnist-denoise", []),
            ("digits", ["data.resolution=48"]), ("digits", ["data.resolution=4096"]), ("digits", ["data.crop=16"])]


def test_a_vouched_config_is_the_task_layers_config_and_anything_else_is_left_to_it():
    cases = VOUCHED + DEFERRED
    code = textwrap.dedent(f"""
        import json, sys
        from raygan.config.load import config_data
        from raygan.precheck import _quick
        out = []
        for preset, overrides in {cases!r}:
            cfg = _quick(config_data(preset, None, overrides))
            out.append(None if cfg is None else cfg.to_yaml())
        print(json.dumps([out, [m for m in {HEAVY!r} if m in sys.modules]]))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    quick, heavy = json.loads(p.stdout.strip().splitlines()[-1])
    assert heavy == []  # judged without torch
    from raygan.tasks import load_config

    for (preset, overrides), text in zip(cases, quick):
        if (preset, overrides) in DEFERRED:
            assert text is None, (preset, overrides)
        else:
            assert text == load_config(preset, None, overrides).to_yaml(), (preset, overrides)


def test_what_precheck_assumes_of_regularisers_losses_devices_and_the_generate_task():
    """The rules precheck vouches with hold for the real registries: every positive number (an
    int where the default is one) is a valid regulariser option, every loss builds without options,
    the devices it accepts are devices, and the generate task's search space and evaluation seed."""
    import inspect

    from raygan.config import load_config
    from raygan.engine.device import check_device_name
    from raygan.losses import LOSSES, build_loss
    from raygan.precheck import _device, default_search_space, eval_uses_seed, manifest
    from raygan.regularizers import REGULARIZERS
    from raygan.tasks import task_class

    for name, options in manifest()["regularizers"].items():
        assert list(inspect.signature(REGULARIZERS.get(name)).parameters) == list(options)
        for k, default in options.items():
            for v in ((1, 2, 10**6) if isinstance(default, int) else (1e-9, 0.5, 1, 1e6)):
                REGULARIZERS.build(name, **{k: v})
    for name in LOSSES.names():
        build_loss(name, {})
    for d in ("auto", "cpu", "cuda", "cuda:0", "cuda:99"):
        assert _device(d)
        check_device_name(d)
    assert not _device("cuda:x") and not _device("mps")
    for overrides in ([], ["data.per_class=10"]):
        cfg = load_config("digits", None, overrides)
        assert default_search_space(cfg) == task_class("generate").default_search_space(cfg)
        assert eval_uses_seed(cfg) is task_class("generate").eval_uses_seed(cfg) is True


def test_dry_runs_import_no_torch_and_a_bad_name_is_still_one_line(tmp_path):
    for args in (["train", "--dry-run"], ["train", "--preset", "quickstart", "--set", "optim.d_lr=0.001", "--dry-run"],
                 ["tune", "--preset", "quickstart", "--dry-run"]):
        rc, out, heavy = _modules_after(args, tmp_path)
        assert rc == 0 and out and heavy == [], (args, heavy)
    p = subprocess.run([sys.executable, "-m", "raygan", "train", "--preset", "quickstart", "--dry-run", "--set",
                        "model.arch=nope"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    one_line(p.returncode, p.stderr, r"unknown architecture 'nope'; choose one of: ")
    assert p.stdout == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["loss.name=nope", "data.name=nope"])
def test_a_bad_name_in_a_dry_run_reads_as_before(bad, capsys):
    from raygan.cli import main

    code = main(["train", "--preset", "digits", "--dry-run", "--set", bad])
    one_line(code, capsys.readouterr().err, r"unknown (loss|dataset) 'nope'; choose one of: ")
