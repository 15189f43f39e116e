"""The GPU acceptance script in its CPU smoke mode (torch only: Ray and MLflow blocked), and the GPU
presets' descriptions against the cost bench/preset_cost.py computes."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # bench-only code, tested here

RUN_BLOCKED = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('ray', 'mlflow', 'optuna'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
sys.argv = ['bench/gpu_acceptance.py', '--cpu-smoke', '--json', sys.argv[1]]
try:
    runpy.run_path('bench/gpu_acceptance.py', run_name='__main__')
except SystemExit as e:
    code = e.code
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow', 'optuna'))
print('IMPORTED:', ','.join(bad))
sys.exit(code)
"""


def test_gpu_acceptance_cpu_smoke_prints_its_table_all_ok(tmp_path):
    out = tmp_path / "rows.json"
    p = subprocess.run([sys.executable, "-c", RUN_BLOCKED, str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert lines[-1] == "IMPORTED: "  # torch only: nothing of Ray, MLflow or Optuna was imported
    rows = json.loads(out.read_text())
    expected = [("env", "cpu-smoke"), ("train", "dcgan 32px fp32"), ("train", "dcgan 32px bf16"),
                ("train", "resnet 32px fp32"), ("train", "dcgan 128px fp32"), ("exact resume", "dcgan 32px fp32"),
                ("streamed data", "dcgan 32px")]
    assert [(r["check"], r["setting"]) for r in rows] == expected, rows
    has_prepared = importlib.util.find_spec("raygan.data.prepare") is not None
    for r in rows:
        if r["check"] == "streamed data" and not has_prepared:
            assert r["status"] == "skip" and r["result"].startswith("not available"), r
        else:
            assert r["status"] == "ok", r
    assert "bitwise equal, max |diff| 0" in rows[5]["result"]
    assert "amp bf16 runs float32 off CUDA" in rows[2]["result"]  # said, not passed off as bf16
    # the printed table: a header, one line per row with its status, and the summary
    head = lines.index(next(ln for ln in lines if ln.startswith("check ")))
    assert lines[head].split() == ["check", "setting", "result", "ok", "time_s"]
    for r, line in zip(rows, lines[head + 2:]):
        assert line.startswith(r["check"]) and r["setting"] in line and line.split()[-2] == r["status"]
    assert lines[-2].startswith(f"{6 + has_prepared} ok, 0 FAIL")


@pytest.mark.parametrize("preset", ["folder-dcgan-128", "folder-resnet-256"])
def test_gpu_presets_state_the_cost_bench_computes(preset):
    from preset_cost import cost

    c = cost(preset, tflops=60.0)
    text = (ROOT / "raygan" / "presets" / f"{preset}.yaml").read_text()
    for fact in (f"G {c['G params (M)']:.1f}M + D {c['D params (M)']:.1f}M", f"{c['GPU mem GiB (fp32 act)']:.1f} GiB",
                 f"{c['GFLOP/img']:.3g} GFLOP per image", f"batch {c['batch']}",
                 f"about {c['h total'] * 60:.0f} min" if c["h total"] < 1 else f"about {c['h total']:.1f} h",
                 f"{c['total_kimg']:.0f} kimg"):
        assert fact in text, fact


def test_the_gpu_plan_covers_what_the_issue_asks():
    """What the GPU run would do (it cannot run here): every row it plans, by check and setting."""
    import gpu_acceptance

    dev, trains, stream, resumes, compiled = gpu_acceptance.plan(cpu=False)
    planned = {(c, s) for c, s, _ in trains + resumes + compiled}
    for arch in ("dcgan", "resnet"):
        for res in (64, 256):
            for amp in ("fp32", "bf16", "fp16"):
                assert ("train", f"{arch} {res}px {amp}") in planned
    for res in (64, 256):
        assert ("channels_last off", f"dcgan {res}px bf16") in planned
        assert ("compile", f"dcgan {res}px bf16") in planned
    assert {("exact resume", "dcgan 64px fp32"), ("exact resume", "dcgan 64px fp16")} <= planned
    assert {("preset", "folder-dcgan-128 bf16"), ("preset", "folder-resnet-256 bf16"),
            ("preset", "folder-stylegan2-256 bf16"), ("exact resume", "fmnist-stylegan2 32px fp32")} <= planned
    assert dev == "cuda" and stream["res"] == 256 and all(kw["compile"] for _, _, kw in compiled)


def _python312_without_pydantic():
    import shutil

    for exe in ("python3.12", "/root/.pyenv/versions/3.12.1/bin/python3"):
        path = shutil.which(exe)
        if not path or subprocess.run([path, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
                                      capture_output=True).returncode != 0:
            continue  # absent, or a shim that is not a working 3.12
        if subprocess.run([path, "-c", "import pydantic"], capture_output=True).returncode != 0:
            return path
    return None


def test_bootstrap_installs_the_wheels_where_pydantic_is_missing(tmp_path):
    """What the GPU machine does first: pydantic from .whl/ into a target dir, importable from there."""
    exe = _python312_without_pydantic()
    if not list((ROOT / ".whl").glob("pydantic-*.whl")) or exe is None:
        pytest.skip("needs .whl/ (bench/gpu_wheels.sh) and a CPython 3.12 without pydantic, like the GPU image")
    code = ("import sys; sys.path.insert(0, 'bench'); import gpu_bootstrap; "
            f"print(gpu_bootstrap.bootstrap({str(tmp_path / 'site')!r})); import pydantic; print(pydantic.__file__)")
    p = subprocess.run([exe, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    state, where = p.stdout.split()
    assert state == "installed" and where.startswith(str(tmp_path / "site"))


def test_rows_that_would_overrun_the_budget_are_fail_not_silence(tmp_path, capsys, monkeypatch):
    import torch

    import gpu_acceptance

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # main sets it: restored after the test
    out, threads = tmp_path / "rows.json", torch.get_num_threads()
    try:
        assert gpu_acceptance.main(["--cpu-smoke", "--budget-s", "0", "--json", str(out)]) == 1
    finally:
        torch.set_num_threads(threads)
    rows = json.loads(out.read_text())
    assert rows[0]["check"] == "env" and rows[0]["status"] == "ok"
    assert len(rows) == 7 and all(r["status"] == "FAIL" and r["result"] == "not run: over the time budget"
                                  for r in rows[1:])
    assert "1 ok, 6 FAIL, 0 skip" in capsys.readouterr().out
