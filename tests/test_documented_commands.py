"""Every documented command works as written: each `raygan ...` line of README.md's bash blocks and
of every subcommand's --help examples is parsed by the real argparse parser (an unknown flag fails),
its presets, `--set` keys, metrics, search spaces and model names are checked against what raygan
ships, and then it is run, in a temp dir: with --dry-run where the command has one, on tiny real
runs (placeholders such as R, x.png, photos/ mapped to fixtures, big sample counts made small)
where it reads a run, or listed in NOT_RUN with the reason it cannot run here. The README's Python
API block is executed with a tiny budget."""
import argparse
import ast
import inspect
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import needs_fmnist
from raygan.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TINY = ["train.total_kimg=0.256", "train.tick_kimg=0.128", "eval.num_samples=64", "eval.final_num_samples=64",
        "train.threads=1", "tracking.enabled=false"]


# ---- extraction --------------------------------------------------------------------------------------------------

def _blocks(text: str, lang: str):
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def _command_lines(text: str):
    """`raygan ...` commands of shell text: continuation lines joined, comments cut, `&&` chains split,
    `[--opt X]` optional parts kept, `a | b` alternatives of the help texts expanded."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        for part in line.split("&&"):
            part = re.sub(r"^\S*/bin/", "", part.strip())  # .venv/bin/raygan
            if not part.startswith("raygan "):
                continue
            if " | " in part:  # "raygan submit --status ID | --logs ID [--follow] | --stop ID"
                head, *alts = part.split(" | ")
                first = head.split()[:2]
                out += [" ".join(head.split())] + [" ".join(first + a.split()) for a in alts]
            else:
                out.append(" ".join(part.split()))
    return [re.sub(r"\[([^\]]+)\]", r"\1", c) for c in out]


def readme_commands():
    return [c for block in _blocks(README, "bash") for c in _command_lines(block)]


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def help_commands():
    out = []
    for name, p in _subparsers(build_parser()):
        out += [(name, c) for c in _command_lines(p.epilog or "")]
    return out


DOCUMENTED = [("README", c) for c in readme_commands()] + [(f"{n} --help", c) for n, c in help_commands()]
IDS = [f"{src}: {cmd}"[:150] for src, cmd in DOCUMENTED]

# What cannot run here, and why (each is still parsed and statically checked).
NOT_RUN = [
    (r"^raygan submit", "needs a Ray cluster's job server"),
    (r"^raygan augment", "trains a GAN per K and seed (minutes); tests/experiments/test_augment_run.py runs it small"),
    (r"^raygan extractor train", "trains the fmnist-cnn extractor for minutes; tests/metrics/test_extractors.py covers it"),
    (r"^raygan tune --resume", "needs an interrupted sweep; tests/distributed/test_tune.py resumes one"),
    (r"(?=.*--resume)(?=.*--storage s3://)", "needs the Ray run on S3"),
    (r"^raygan runs", "needs runs in an MLflow store; tests/tracking/test_runs.py runs every subcommand"),
    (r"--model-uri", "needs a trained preset registered in an MLflow store (the name is checked against the presets)"),
    (r"--mask", "needs an inpainting run; tests/cli/test_task_cli.py repairs with masks"),
    (r"--metrics \S*cas", "trains a classifier on generated images (minutes); tests/metrics/test_classify.py covers cas"),
    (r"^raygan --version", "prints the version: parsed only"),
    (r"^raygan sample .*--class ", "needs a class-conditional run; tests/cli/test_sample_cli.py samples one class"),
    (r"^raygan sample .*--mix", "needs a stylegan2 run; tests/tasks/test_sampling.py checks the mixing grid"),
    (r"^raygan data prepare .*--ray", "starts a Ray cluster; tests/distributed/test_prepare_ray.py runs it on a local one"),
]


def not_run_reason(cmd: str):
    return next((why for pattern, why in NOT_RUN if re.search(pattern, cmd)), None)


# ---- static checks -----------------------------------------------------------------------------------------------

def _registered_names():
    from raygan import api
    from raygan.config import preset_names
    from raygan.tracking.store import model_name

    return {model_name(api.config(p)) for p in preset_names()}


def _static_check(argv):
    """Parse with the real parser and check every name the command gives."""
    import raygan.tasks  # noqa: F401  (registers the metrics)
    from raygan import api
    from raygan.config import preset_names
    from raygan.distributed.sweep.space import shipped_spaces
    from raygan.metrics.registry import METRICS, direction

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code == 0:  # --version / --help: printed and done
            return None
        pytest.fail(f"argparse rejected it (exit {e.code})")
    if getattr(args, "command", None) == "submit" and args.job_command:
        inner = [a for a in args.job_command if a != "--"]
        return _static_check(inner)
    preset = getattr(args, "preset", None)
    if preset is not None:
        assert preset in preset_names(), f"no preset {preset!r}"
    overrides = getattr(args, "overrides", None) or []
    if args.command in ("train", "tune", "augment") and not getattr(args, "resume", False):
        api.config(preset, getattr(args, "config", None), overrides)  # unknown keys and bad values fail
    elif overrides:
        api.config(None, None, overrides)
    for m in (getattr(args, "metrics", None) or "").split(","):
        assert not m or m in METRICS.names(), f"no metric {m!r}"
    if getattr(args, "objective", None):
        direction(args.objective)
    space = getattr(args, "search_space", None)
    if space and not space.endswith(".yaml"):
        assert space in shipped_spaces(), f"no shipped search space {space!r}"
    uri = getattr(args, "model_uri", None)
    if uri and "NAME" not in uri:
        name = re.match(r"models:/([^/@]+)", uri).group(1)
        assert name in _registered_names(), f"{name} is a model name that no preset registers"
    return args


# ---- fixtures: tiny real runs and files ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A working dir with one tiny run per task, images and the files the docs name."""
    import os

    root = tmp_path_factory.mktemp("documented")
    old = os.getcwd()
    os.chdir(root)
    old_cache = os.environ.get("RAYGAN_CACHE")
    os.environ["RAYGAN_CACHE"] = str(root / "cache")
    try:
        sets = [a for t in TINY for a in ("--set", t)]
        runs = {"generate": "fx/gen", "repair": "fx/repair", "translate": "fx/translate"}
        assert main(["train", "--preset", "digits", "--run-dir", runs["generate"], "--no-progress", *sets]) == 0
        from conftest import HAS_FMNIST

        if HAS_FMNIST:
            assert main(["train", "--preset", "fmnist-denoise", "--run-dir", runs["repair"], "--no-progress", *sets,
                         "--set", "eval.metrics=[psnr]"]) == 0
            assert main(["train", "--preset", "fmnist-sneaker2boot", "--run-dir", runs["translate"], "--no-progress",
                         *sets, "--set", "eval.metrics=[cycle-psnr]"]) == 0
        img = (np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)
        for folder in ("photos", "damaged"):
            Path(folder).mkdir()
            for i in range(2):
                Image.fromarray(img).save(f"{folder}/{i}.png")
        for name in ("x.png", "noisy.png", "sneaker.png"):
            Image.fromarray(img).save(name)
        Path("my.yaml").write_text("optim: {g_lr: 0.0001}\n")
        for name in ("my-space.yaml", "my_space.yaml"):
            Path(name).write_text("parameters:\n  optim.g_lr: {loguniform: [1.0e-4, 1.0e-3]}\n")
        yield {"root": root, "runs": runs, "has_fmnist": HAS_FMNIST}
    finally:
        os.chdir(old)
        if old_cache is None:
            os.environ.pop("RAYGAN_CACHE", None)
        else:
            os.environ["RAYGAN_CACHE"] = old_cache


def _task_of(argv):
    text = " ".join(argv)
    if argv[0] == "repair" or re.search(r"--metrics \S*psnr,ssim", text):
        return "repair"
    if argv[0] == "translate" or re.search(r"cycle[-_]psnr|domain[-_]acc", text):
        return "translate"
    return "generate"


SMALL = {"--num-samples": "64", "--num": "16"}


def _runnable(argv, world):
    """The command with placeholders mapped to fixtures and sample counts made small, or None and why not."""
    out, i = [], 0
    task = _task_of(argv)
    while i < len(argv):
        a = argv[i]
        if a in SMALL and i + 1 < len(argv):
            out += [a, SMALL[a]]
            i += 2
            continue
        if a == "--run-dir" and (argv[0] != "train" or "--resume" in argv):
            out += [a, world["runs"][task]]
            i += 2
            continue
        out.append(a)
        i += 1
    if (task != "generate" or "fashion-mnist" in argv) and not world["has_fmnist"]:
        return None
    if out[0] in ("eval", "sample", "repair", "translate") and "--out" in out:
        # a fresh output per command, since the docs reuse names (grid.png) and nothing is overwritten
        j = out.index("--out") + 1
        out[j] = f"out/{len(list(Path('.').glob('out/*')))}-{out[j]}"
        Path("out").mkdir(exist_ok=True)
    return out


# ---- the tests ------------------------------------------------------------------------------------------------

def test_the_docs_show_commands_of_every_subcommand():
    cmds = {c.split()[1] for _, c in DOCUMENTED}
    assert {"train", "eval", "sample", "repair", "translate", "augment", "tune", "runs", "submit"} <= cmds
    assert len(readme_commands()) > 50


@pytest.mark.parametrize("src,cmd", DOCUMENTED, ids=IDS)
def test_documented_command_works(src, cmd, world, capsys):
    argv = shlex.split(cmd)[1:]
    if _static_check(argv) is None or not_run_reason(cmd):
        return  # parsed and checked only: see NOT_RUN for why
    run = _runnable(argv, world)
    if run is None:
        pytest.skip("needs Debian's dataset-fashion-mnist")
    if run[0] in ("train", "tune"):
        run = run + ["--dry-run"]
    rc = main(run)
    captured = capsys.readouterr()
    assert rc == 0, f"{' '.join(run)} -> exit {rc}: {captured.err.strip()[-500:]}"


def test_champion_alias_only_after_a_tune_in_the_same_block():
    """`@champion` exists only once `raygan tune` has registered a winner; a newcomer's first commands
    use a version (models:/NAME/1) instead."""
    for block in _blocks(README, "bash"):
        tuned = False
        for cmd in _command_lines(block):
            tuned = tuned or cmd.startswith("raygan tune")
            assert "@champion" not in cmd or tuned, f"{cmd}: @champion before any `raygan tune` in its block"
    for name, p in _subparsers(build_parser()):
        for cmd in _command_lines(p.epilog or ""):
            assert "@champion" not in cmd or name == "tune", f"raygan {name} --help: {cmd} (no alias before a tune)"


def test_static_checks_catch_a_wrong_flag_preset_or_model_name():
    """What the per-command test relies on: a flag, preset or name the code does not have fails it."""
    from raygan.errors import RayganError

    for bad, why in [("train --preset quickstart --no-such-flag", "argparse rejected it"),
                     ("submit -- train --preset quickstart --no-such-flag", "argparse rejected it"),
                     ("train --preset no-such-preset", "no preset"),
                     ("train --preset quickstart --set train.no_such_key=1", "no_such_key"),
                     ("repair --model-uri models:/raygan-repair-fashion-mnist-unet/1 --in x.png --out y.png",
                      "no preset registers"),
                     ("eval --run-dir R --metrics fid,no-such-metric", "no metric"),
                     ("tune --preset digits --search-space no-such-space", "no shipped search space")]:
        with pytest.raises((pytest.fail.Exception, AssertionError, RayganError), match=why):
            _static_check(shlex.split(bad))


# ---- the Python API block ---------------------------------------------------------------------------------------

def _python_block():
    blocks = [b for b in _blocks(README, "python") if "import raygan.api" in b]
    assert len(blocks) == 1
    return blocks[0]


@needs_fmnist
def test_readme_python_api_block_runs_as_written(in_tmp):
    """The block runs top to bottom with a tiny budget (given through the documented `overrides` and
    `num_samples`); `rg.tune` (a Ray sweep, minutes) is called with exactly the block's arguments up to
    the point of starting Ray: its options build and bind to the signature, and the `@champion` model
    loaded after it is the one a tune of that config registers."""
    import raygan.api as rg
    from raygan.tracking.store import model_name

    code = _python_block()
    for old, new in [('"train.total_kimg=20"', ", ".join(f'"{t}"' for t in TINY[:-1])),
                     ("num_samples=5000", "num_samples=64")]:
        assert old in code, f"the README's python block no longer has {old}: update this test's substitution"
        code = code.replace(old, new)
    tree = ast.parse(code)
    ns, tuned = {}, False
    for stmt in tree.body:
        src = ast.get_source_segment(code, stmt)
        call = stmt.value if isinstance(stmt, (ast.Assign, ast.Expr)) else None
        if isinstance(call, ast.Call) and ast.unparse(call.func) == "rg.tune":
            args = [eval(ast.unparse(a), ns) for a in call.args]  # noqa: S307 (the README's own expressions)
            inspect.signature(rg.tune).bind(*args)
            assert isinstance(args[1], rg.SweepOptions)
            ns["_tune_cfg"], tuned = args[0], True
            continue
        if "@champion" in src:
            assert tuned, f"{src}: loads @champion before rg.tune registered one"
            name = re.search(r"models:/([^@\"']+)@champion", src).group(1)
            assert name == model_name(ns["_tune_cfg"]), f"{name}: not the model tuning this config registers"
            continue
        exec(compile(ast.Module([stmt], []), "README.md", "exec"), ns)  # noqa: S102
    assert tuned and ns["images"].shape[0] == 16 and "fid" in ns["values"]
    assert ns["summary"]["model_uri"].endswith("/1")
