"""The `raygan` command end to end on a tiny run, and every bad input as one line + exit 2."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from raygan.cli import main
from helpers import one_line as one_line_error

TINY = ["--preset", "digits", "--no-progress", "--set", "train.total_kimg=0.768", "--set", "train.tick_kimg=0.384",
        "--set", "eval.num_samples=200", "--set", "eval.final_num_samples=300", "--set", "train.threads=1"]


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def trained(in_tmp, capsys):
    code, out, err = run(capsys, "train", *TINY, "--run-dir", "runs/a")
    assert code == 0, err
    return in_tmp, out


def test_train_end_to_end_prints_grid_fid_protocol_and_ui(trained):
    tmp, out = trained
    run_dir = tmp / "runs" / "a"
    assert f"picture:     {run_dir}/samples/grid-0000000768.png" in out
    assert (run_dir / "samples" / "grid-0000000768.png").is_file()
    words = " ".join(out.split())  # the protocol is wrapped to the terminal's width
    assert "fid " in out and "extractor fmnist-cnn@" in out and "300 generated vs 359 digits:test@28px" in words
    db = (tmp / "mlflow.db").resolve()
    assert f"mlflow ui --backend-store-uri sqlite:///{db}" in out
    for f in ("config.yaml", "run.json", "metrics.jsonl", "summary.json", "curves.png"):
        assert (run_dir / f).is_file(), f
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in rows] == [0.384, 0.768]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    r = client.get_run(run_id)
    assert r.info.status == "FINISHED"
    assert r.data.params["optim.g_lr"] == "0.0005" and r.data.params["model.arch"] == "mlp"
    assert "final_fid" in r.data.metrics and r.data.tags["final.protocol.num_samples"] == "300"
    assert [m.step for m in client.get_metric_history(run_id, "loss_d")] == [384, 768]
    arts = {a.path for a in client.list_artifacts(run_id)}
    assert {"images", "config.yaml", "curves.png", "summary.json", "model"} <= arts
    # registered per dataset and architecture: a digits smoke run never touches a Fashion-MNIST model
    versions = client.search_model_versions("name='raygan-digits-mlp'")
    assert len(versions) == 1 and versions[0].run_id == run_id
    assert float(versions[0].tags["fid"]) == pytest.approx(r.data.metrics["final_fid"], rel=1e-5)
    assert r.data.tags["mlflow.source.name"].startswith("raygan train")


def test_resume_continues_same_run_and_sample_eval(trained, capsys):
    tmp, _ = trained
    run_dir = tmp / "runs" / "a"
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    code, out, err = run(capsys, "train", "--run-dir", "runs/a", "--resume", "--no-progress",
                         "--set", "train.total_kimg=1.152")
    assert code == 0, err
    assert json.loads((run_dir / "run.json").read_text())["run_id"] == run_id
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{(tmp / 'mlflow.db').resolve()}")
    assert [m.step for m in client.get_metric_history(run_id, "loss_d")] == [384, 768, 1152]

    code, out, err = run(capsys, "sample", "--run-dir", "runs/a", "--num", "16", "--out", "grid.png")
    assert code == 0, err
    assert Image.open(tmp / "grid.png").size == (4 * 30 + 2, 4 * 30 + 2)  # 4x4 tiles of 28 px + 2 px padding

    code, out, err = run(capsys, "sample", "--model-uri", "models:/raygan-digits-mlp/2", "--num", "4", "--out", "m.png")
    assert code == 0, err
    assert (tmp / "m.png").is_file()

    code, out, err = run(capsys, "eval", "--run-dir", "runs/a", "--metrics", "fid,kid", "--num-samples", "300", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert set(res["values"]) == {"fid", "kid", "kid_std"} and res["protocol"]["num_samples"] == 300


def test_dry_run_prints_config_and_writes_nothing(in_tmp, capsys):
    code, out, err = run(capsys, "train", "--preset", "quickstart", "--dry-run", "--set", "optim.d_lr=0.001")
    assert code == 0
    import yaml

    d = yaml.safe_load(out)
    assert d["optim"]["d_lr"] == 0.001 and d["model"]["arch"] == "dcgan" and d["preset"] == "quickstart"
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize("args,pattern", [
    (["--set", "optim.lr=1"], r"config: optim.lr: unknown key"),
    (["--set", "optim.batch_size=many"], r"config: optim.batch_size: .*integer"),
    (["--set", "model.arch=stylegan"], r"unknown architecture 'stylegan'; choose one of: dcgan, mlp, resnet"),
    (["--set", "loss.name=bce"], r"unknown loss 'bce'; choose one of"),
    (["--set", "data.name=mnist"], r"mnist.*not found: looked for.*to get it"),
])
def test_bad_config_is_one_line_exit_2(in_tmp, capsys, monkeypatch, args, pattern):
    monkeypatch.setenv("RAYGAN_DATA", str(in_tmp / "empty"))
    code, out, err = run(capsys, "train", "--preset", "digits", "--run-dir", "r", *args)
    one_line_error(code, err, pattern)
    assert not (in_tmp / "r" / "config.yaml").exists()


def test_run_dir_corrupt_and_foreign_checkpoints(trained, capsys):
    tmp, _ = trained
    run_dir = tmp / "runs" / "a"
    snapshot = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    code, _, err = run(capsys, "train", *TINY, "--run-dir", "runs/a")
    one_line_error(code, err, r"already holds a run; pass --resume")

    code, _, err = run(capsys, "train", "--run-dir", "runs/a", "--resume", "--set", "model.arch=dcgan")
    one_line_error(code, err, r"made for another model")

    code, _, err = run(capsys, "train", "--run-dir", "runs/nothing", "--resume")
    one_line_error(code, err, r"holds no run")

    code, _, err = run(capsys, "train", "--run-dir", "runs/a", "--resume", "--preset", "digits")
    one_line_error(code, err, r"--resume continues with the run's own config")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == snapshot  # nothing touched

    # a corrupt latest checkpoint: refused, and left in place
    bad = tmp / "runs" / "b"
    shutil.copytree(run_dir, bad)
    ckpt = sorted((bad / "checkpoints").iterdir())[-1]
    (ckpt / "state.pt").write_bytes(b"\x00garbage")
    code, _, err = run(capsys, "train", "--run-dir", "runs/b", "--resume", "--set", "train.total_kimg=2")
    one_line_error(code, err, r"corrupt or unreadable")
    assert (ckpt / "state.pt").read_bytes() == b"\x00garbage"
    assert (bad / "config.yaml").read_bytes() == (run_dir / "config.yaml").read_bytes()


def test_other_commands_bad_input(in_tmp, capsys, monkeypatch):
    monkeypatch.setenv("RAYGAN_DATA", str(in_tmp / "empty"))
    code, _, err = run(capsys, "data", "info", "cifar10")
    one_line_error(code, err, r"cifar10.*not found")
    code, _, err = run(capsys, "eval", "--run-dir", "nowhere")
    one_line_error(code, err, r"holds no run")
    code, out, err = run(capsys, "data", "info", "digits")
    assert code == 0 and "1797" in out.replace(",", "") or "1438" in out


def test_console_script(in_tmp):
    exe = shutil.which("raygan") or str(Path(sys.executable).parent / "raygan")
    p = subprocess.run([exe, "presets"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "quickstart" in p.stdout
    p = subprocess.run([exe, "train", "--preset", "quickstart", "--set", "optim.g_lr=-1"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "optim.g_lr" in p.stderr
