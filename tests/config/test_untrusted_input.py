"""What raygan parses from files and the command line before it builds anything: YAML configs and
--set values, search-space files, a run dir's config.yaml / run.json / metrics.jsonl, a model's
spec.json and a checkpoint's config. A hostile or broken file is one line, exit 2, and never a
memory bomb. Memory-bomb cases run as real subprocesses under an address-space limit, so a
regression fails (MemoryError / bad_alloc) instead of swapping the machine."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from raygan.config import load_config, parse_override
from raygan.config.load import _read_yaml
from raygan.errors import ConfigError, RunDirError
from helpers import isolated_dir
from helpers import one_line

ROOT = Path(__file__).resolve().parents[2]
#: importing torch maps ~3.3 GB of address space; 5 GB leaves room for a run, not for a bomb
MEMORY_LIMIT = 5 << 30


def laughs(levels: int = 9) -> str:
    """A YAML 'billion laughs': 9 aliases per level, 9 levels -> 9**9 values, a few hundred bytes."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "model:\n  g:\n" + "".join(f"    {ln}\n" for ln in lines)


def raygan(args, cwd: Path, timeout: float = 120):
    """`python -m raygan ARGS` in a subprocess limited to MEMORY_LIMIT bytes of address space."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAYGAN_CACHE": str(cwd / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    p = subprocess.run([sys.executable, "-m", "raygan", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout, preexec_fn=limit)
    return p.returncode, p.stdout, p.stderr


# ============================================================================ YAML and --set
def test_yaml_billion_laughs_is_refused_when_read():
    assert len(laughs()) < 600
    with pytest.raises(ConfigError, match=r"more than 100000 values \(aliases"):
        _read_yaml(laughs(), "cfg.yaml")
    # aliases as such stay usable: a small shared block is fine
    data = _read_yaml("base: &b {batch_size: 32}\noptim: *b\n", "cfg.yaml")
    assert data["optim"] == {"batch_size": 32}


def test_yaml_billion_laughs_config_is_one_line_in_a_real_process(tmp_path):
    (tmp_path / "bomb.yaml").write_text(laughs())
    code, out, err = raygan(["train", "--config", "bomb.yaml", "--dry-run"], tmp_path)
    one_line(code, err, r"bomb\.yaml: more than 100000 values")
    assert out == "" and not (tmp_path / "runs").exists()


def test_deeply_nested_yaml_and_set_values_are_one_line():
    with pytest.raises(ConfigError, match=r"cfg\.yaml: nested deeper than 32 levels \(line 2\)"):
        _read_yaml("model:\n  g: " + "[" * 5000 + "]" * 5000 + "\n", "cfg.yaml")
    with pytest.raises(ConfigError, match=r"--set model\.g\.x: nested deeper than"):
        parse_override("model.g.x=" + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match=r"--set .*nested deeper than 32"):
        parse_override(".".join(["a"] * 40) + "=1")
    with pytest.raises(ConfigError, match=r"nested deeper than"):
        parse_override("model.g.x=" + "[" * 30 + "]" * 30)  # 3 key levels + 30: over the limit together


def test_duplicate_yaml_keys_are_refused_naming_key_and_line(tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text("optim:\n  batch_size: 32\n  g_lr: 0.001\n  batch_size: 64\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml: duplicate key 'batch_size' \(line 4; first given on line 2\)"):
        load_config(None, str(f))
    with pytest.raises(ConfigError, match=r"--set model\.g: duplicate key 'ngf'"):
        parse_override("model.g={ngf: 32, ngf: 64}")
    # a merge key overriding a merged value is not a duplicate
    data = _read_yaml("b: &b {batch_size: 32, g_lr: 0.001}\noptim:\n  <<: *b\n  batch_size: 64\n", "m.yaml")
    assert data["optim"] == {"batch_size": 64, "g_lr": 0.001}


def test_a_number_too_long_to_read_is_one_line():
    with pytest.raises(ConfigError, match=r"cfg\.yaml: not valid YAML"):
        _read_yaml("seed: " + "9" * 5000 + "\n", "cfg.yaml")


# ============================================================================ search-space files
def test_binary_or_deeply_nested_search_space_file_is_one_line(tmp_path):
    from raygan.distributed.sweep.space import SearchSpace, SearchSpaceError

    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(SearchSpaceError, match=r"search space file .*bin\.yaml is not text \(not UTF-8\)"):
        SearchSpace.load(str(tmp_path / "bin.yaml"))
    (tmp_path / "deep.yaml").write_text("parameters: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n")
    with pytest.raises(SearchSpaceError, match=r"deep\.yaml: nested deeper than 32 levels"):
        SearchSpace.load(str(tmp_path / "deep.yaml"))
    (tmp_path / "bomb.yaml").write_text(laughs().replace("model:\n  g:", "parameters:"))
    with pytest.raises(SearchSpaceError, match=r"bomb\.yaml: more than 100000 values"):
        SearchSpace.load(str(tmp_path / "bomb.yaml"))


# ============================================================================ a run dir's own files
def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(load_config("digits").to_yaml())
    return run


def test_binary_or_bomb_config_yaml_in_a_run_dir_is_one_line(tmp_path):
    from raygan.hosts.runstore import RunStore

    run = _run_dir(tmp_path)
    assert RunStore(run).read_config().data.name == "digits"
    (run / "config.yaml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(RunDirError, match=r"config\.yaml is not text \(not UTF-8\)"):
        RunStore(run).read_config()
    (run / "config.yaml").write_text(laughs())
    with pytest.raises(RunDirError, match=r"config\.yaml: more than 100000 values"):
        RunStore(run).read_config()
    (run / "config.yaml").write_text("- a list\n")
    with pytest.raises(RunDirError, match=r"config\.yaml: expected a mapping"):
        RunStore(run).read_config()


def test_run_json_that_is_not_an_object_is_one_line_on_resume(tmp_path):
    from raygan.hosts.runstore import RunStore

    run = _run_dir(tmp_path)
    (run / "run.json").write_text("[1, 2]")
    with pytest.raises(RunDirError, match=r"run\.json is not a run record \(a JSON object expected, got list\)"):
        RunStore(run).read_record()
    (run / "run.json").write_text('{"host": "ray-train", "workers": "many"}')
    code, out, err = raygan(["train", "--run-dir", "run", "--resume"], tmp_path)
    one_line(code, err, r"run\.json: its workers / cpus_per_worker / gpus_per_worker are not a valid Ray setup")
    (run / "run.json").write_text('{"a": ' * 5000 + "1" + "}" * 5000)
    with pytest.raises(RunDirError, match=r"run\.json is not valid JSON|run\.json: nested deeper"):
        RunStore(run).read_record()


def test_bad_metrics_line_names_the_file_and_line(tmp_path):
    from raygan.hosts.runstore import RunStore

    run = _run_dir(tmp_path)
    rows = [{"kimg": 0.128, "fid": 9.0}, {"kimg": 0.256, "fid": 8.0}]
    (run / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\nnot json\n" + json.dumps(rows[1]) + "\n")
    with pytest.raises(RunDirError, match=r"metrics\.jsonl line 2 is not a metrics row"):
        RunStore(run).truncate_metrics_after(128)
    (run / "metrics.jsonl").write_text(json.dumps(rows[0]) + '\n{"kimg": "lots"}\n')
    with pytest.raises(RunDirError, match=r"metrics\.jsonl line 2 is not a metrics row"):
        RunStore(run).metrics()


def test_torn_last_metrics_line_after_a_crash_is_dropped_on_resume(tmp_path):
    """A crash mid-append leaves a last line without its newline: it is a tick past the last
    checkpoint, so a resume drops it (rewriting the file) and redoes that tick."""
    from raygan.hosts.runstore import RunStore

    run = _run_dir(tmp_path)
    good = json.dumps({"fid": 9.0, "kimg": 0.128}) + "\n"
    (run / "metrics.jsonl").write_text(good + '{"kimg": 0.256, "fi')
    store = RunStore(run)
    assert store.metrics() == [{"kimg": 0.128, "fid": 9.0}]
    assert store.truncate_metrics_after(128) == 0
    assert (run / "metrics.jsonl").read_text() == good  # the fragment is gone before the next append
    store.append_metrics({"kimg": 0.256, "fid": 8.0})
    assert [r["kimg"] for r in store.metrics()] == [0.128, 0.256]


# ============================================================================ a trained model's files
MODEL = "raygan-digits-mlp"
TINY = ["--preset", "digits", "--no-progress", "--set", "train.total_kimg=0.128", "--set", "train.tick_kimg=0.128",
        "--set", "eval.num_samples=16", "--set", "eval.final_num_samples=16", "--set", "train.threads=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run with a registered version; tests tamper with copies or restore what they change."""
    tmp = tmp_path_factory.mktemp("trained")
    with isolated_dir(tmp):
        from raygan.cli import main

        assert main(["train", *TINY, "--set", f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
                     "--run-dir", str(tmp / "run")]) == 0
    return tmp


def _spec_file(tmp: Path) -> Path:
    from urllib.parse import urlparse

    from mlflow.tracking import MlflowClient

    source = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}").get_model_version(MODEL, "1").source
    return Path(urlparse(source).path) / "spec.json"


def _load_uri(tmp: Path):
    from raygan import api

    return api.load(model_uri=f"models:/{MODEL}/1", tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")


def _nested_bomb(levels: int = 9):
    """Shared nested lists: 9**levels values when walked, a few hundred bytes pickled or in memory."""
    x = ["lol"] * 9
    for _ in range(levels - 1):
        x = [x] * 9
    return x


SPEC_CASES = [
    (lambda s: s["model_spec"].update(channels=1e9), r"model models:/\S+: model spec channels must be an integer from 1 to 4, got 1000000000\.0$"),
    (lambda s: s["model_spec"].update(channels=10**9), r"model spec channels must be an integer from 1 to 4"),
    (lambda s: s["model_spec"].update(num_classes=10**9), r"model spec num_classes must be an integer from 0 to"),
    (lambda s: s["model_spec"].update(channels="abc"), r"model spec channels must be an integer"),
    (lambda s: s["model_spec"].update(channels=True), r"model spec channels must be an integer"),
    (lambda s: s.pop("model_spec"), r"spec\.json has no 'model_spec' object"),
    (lambda s: s["model_spec"].pop("channels"), r"model spec has no 'channels'"),
    (lambda s: s["config"]["model"].update(z_dim=10**9), r"config: model\.z_dim: Input should be less than"),
    (lambda s: s["config"]["model"]["g"].update(hidden=[10**8, 10**8]), r"model\.g\.hidden\.0: 100000000 is too large"),
    (lambda s: s["config"]["model"]["g"].update(hidden=[16000] * 3), r"generator would have 5\d\dM parameters"),
    (lambda s: s.update(padding="x" * (2 << 20)), r"spec\.json .*is larger than 1024 KiB"),  # JSON cannot alias
]


def test_hostile_spec_json_is_one_line_before_anything_is_built(trained):
    from raygan.tracking.models import ModelLoadError

    spec_file = _spec_file(trained)
    saved = spec_file.read_text()
    try:
        _load_uri(trained)  # control: the untouched model loads
        for change, pattern in SPEC_CASES:
            spec = json.loads(saved)
            change(spec)
            spec_file.write_text(json.dumps(spec))
            with pytest.raises(ModelLoadError, match=pattern):
                _load_uri(trained)
        for text, pattern in (("[1, 2]", r"spec\.json is not a model spec \(a JSON object expected, got list\)"),
                              ("{" * 100000, r"spec\.json is not valid JSON"),
                              ('{"config": ' * 50 + "{}" + "}" * 50, r"spec\.json: nested deeper than 32")):
            spec_file.write_text(text)
            with pytest.raises(ModelLoadError, match=pattern):
                _load_uri(trained)
        spec_file.write_bytes(b"\xff\xfe" + bytes(range(256)))
        with pytest.raises(ModelLoadError, match=r"spec\.json .*is not text \(not UTF-8\)"):
            _load_uri(trained)
    finally:
        spec_file.write_text(saved)


def test_spec_json_asking_for_terabytes_is_one_line_in_a_real_process(trained, tmp_path):
    """A billion classes (a 512 GB embedding), through `raygan sample` under a 5 GB address-space limit."""
    spec_file = _spec_file(trained)
    saved = spec_file.read_text()
    try:
        for change, pattern in ((lambda s: s["model_spec"].update(num_classes=10**9), r"num_classes must be"),):
            spec = json.loads(saved)
            change(spec)
            spec_file.write_text(json.dumps(spec))
            code, out, err = raygan(["sample", "--model-uri", f"models:/{MODEL}/1", "--tracking-uri",
                                     f"sqlite:///{trained / 'mlflow.db'}", "--out", "x.png"], tmp_path)
            one_line(code, err, pattern)
            assert not (tmp_path / "x.png").exists()
    finally:
        spec_file.write_text(saved)


def test_checkpoint_config_with_shared_nested_lists_is_one_line(trained, tmp_path):
    """A checkpoint is loaded with weights_only=True, which allows shared references: a config
    holding 9 lists of the same 9 lists ... (9**9 values when walked) in a few hundred bytes."""
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(trained / "run" / "checkpoints", run / "checkpoints")
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    state = torch.load(ckpt / "state.pt", weights_only=True)
    state["config"]["model"]["g"]["bomb"] = _nested_bomb()
    torch.save(state, ckpt / "state.pt")
    assert (ckpt / "state.pt").stat().st_size < (trained / "run" / "checkpoints" / ckpt.name / "state.pt").stat().st_size + 4096
    code, out, err = raygan(["sample", "--run-dir", "run", "--out", "x.png"], tmp_path)
    one_line(code, err, r"checkpoint .*ckpt-\d+: more than 1000000 values")
    assert not (tmp_path / "x.png").exists()
    del state["config"]["model"]["g"]["bomb"]
    state["model_spec"]["channels"] = 10**9
    torch.save(state, ckpt / "state.pt")
    from raygan import api

    with pytest.raises(ConfigError, match=r"model spec channels must be an integer from 1 to 4, got 1000000000"):
        api.load(run_dir=str(run))


# ============================================================================ numbers and sizes
def test_booleans_are_not_numbers_in_the_typed_config():
    for item, field in (("optim.batch_size=true", "optim.batch_size"), ("train.eval_ticks=false", "train.eval_ticks"),
                        ("optim.g_lr=true", "optim.g_lr"), ("optim.g_betas=[true, 0.9]", "optim.g_betas.0"),
                        ("translate.domain_a=true", "translate.domain_a"), ("seed=true", "seed")):
        with pytest.raises(ConfigError, match=rf"config: {field}.*not true/false"):
            load_config("digits", None, [item])
    assert load_config("digits", None, ["optim.batch_size=32"]).optim.batch_size == 32


def test_config_sizes_are_bounded_before_anything_is_built():
    for item, pattern in (("model.z_dim=1000000000", r"model\.z_dim: Input should be less than or equal to 16384"),
                          ("eval.num_samples=10000000000000", r"eval\.num_samples: Input should be less than"),
                          ("optim.batch_size=1000000000", r"optim\.batch_size: Input should be less than"),
                          ("eval.batch_size=1000000", r"eval\.batch_size: Input should be less than"),
                          ("model.g.hidden=[100000000]", r"model\.g\.hidden\.0: 100000000 is too large"),
                          ("model.d.hidden=" + str([8] * 100), r"model\.d\.hidden: 100 entries \(at most 64"),
                          ("model.g.hidden=[16000, 16000, 16000]", r"the generator would have 525M parameters"),
                          ("task=translate", None)):
        if pattern is None:  # an image-to-image network's depth option: blocks are modules, bounded like layers
            with pytest.raises(ConfigError, match=r"model\.g\.n_blocks: 10000 layers/blocks \(at most 64\)"):
                load_config(None, None, ["task=translate", "translate.domain_a=0", "translate.domain_b=1",
                                         "model.arch=resnet-translator", "model.g.n_blocks=10000",
                                         "eval.metrics=[fid]", "ema.half_life_kimg=0"])
            continue
        with pytest.raises(ConfigError, match=pattern):
            load_config("digits", None, [item])


def test_dry_run_checks_network_and_regulariser_options_and_the_tune_seed(in_tmp, capsys):
    """What a real run refuses when it builds its networks and losses, --dry-run refuses too."""
    from raygan.cli import main

    for args, pattern in (
            (["train", "--set", "model.g.bogus=1"], r"architecture 'mlp': unknown generator option\(s\) bogus"),
            (["train", "--set", "model.arch=dcgan", "--set", "model.g.ngf=abc"], r"ngf must be a positive int"),
            (["train", "--set", "model.g.norm=xyz"], r"generator norm must be 'none' or 'bn'"),
            (["train", "--set", "regularizer.name=r1", "--set", "regularizer.kwargs.bogus=1"],
             r"regularizer 'r1': .*unexpected keyword argument 'bogus'"),
            (["train", "--set", "model.arch=dcgan", "--set", "model.g.ngf=4000"], r"generator would have \d+M parameters"),
            (["tune", "--seed", str(2**70)], r"--seed must be at most 4294967295"),
            (["tune", "--seed", "-1"], r"--seed must not be negative")):
        code = main([args[0], "--preset", "digits", *args[1:], "--dry-run"])
        out, err = capsys.readouterr()
        one_line(code, err, pattern)
        assert out == ""
    assert main(["train", "--preset", "digits", "--dry-run"]) == 0
    assert not (in_tmp / "runs").exists()


def test_huge_seed_num_and_num_samples_are_one_line(trained, tmp_path):
    from raygan import api

    run = str(trained / "run")
    with pytest.raises(ConfigError, match=r"^seed must be an integer from 0 to 4294967295"):  # the API names its parameter
        api.sample(run, num=4, seed=2**70)
    with pytest.raises(ConfigError, match=r"^seed must be an integer from 0 to 4294967295"):
        api.evaluate(run, num_samples=16, seed=2**70)
    with pytest.raises(ConfigError, match=r"^num_samples must be at most 1000000"):
        api.evaluate(run, num_samples=10**13)
    with pytest.raises(ConfigError, match=r"^num 100000000: that many images need \d+\.\d GiB at once"):
        api.sample(run, num=10**8)
    assert api.sample(run, num=4, seed=2**32 - 1)[0].shape[0] == 4
    code, out, err = raygan(["sample", "--run-dir", run, "--num", str(10**12), "--out", "x.png"], tmp_path)
    one_line(code, err, r"--num 1000000000000: that many images need")
    assert not (tmp_path / "x.png").exists()
