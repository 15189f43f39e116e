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

ROOT = Path(__file__).resolve().parents[1]
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


def one_line(code: int, err: str, pattern: str) -> str:
    import re

    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("raygan: error: "), err[-2000:]
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


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
    from raygan.runstore import RunStore

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
    from raygan.runstore import RunStore

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
    from raygan.runstore import RunStore

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
    from raygan.runstore import RunStore

    run = _run_dir(tmp_path)
    good = json.dumps({"fid": 9.0, "kimg": 0.128}) + "\n"
    (run / "metrics.jsonl").write_text(good + '{"kimg": 0.256, "fi')
    store = RunStore(run)
    assert store.metrics() == [{"kimg": 0.128, "fid": 9.0}]
    assert store.truncate_metrics_after(128) == 0
    assert (run / "metrics.jsonl").read_text() == good  # the fragment is gone before the next append
    store.append_metrics({"kimg": 0.256, "fid": 8.0})
    assert [r["kimg"] for r in store.metrics()] == [0.128, 0.256]
