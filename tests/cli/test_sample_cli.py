"""Using a trained generator through `raygan sample` / `raygan eval` and raygan.api: class,
truncation, interpolation and mixing grids, reproducible by seed; `eval --trunc` and the
truncation sweep (table, PNG, MLflow run); every bad input one line + exit 2, nothing written.
Two tiny digits dcgans (unconditional and class-conditional) are trained once for the module."""
import hashlib
import json
import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image

import raygan.api as rg
from helpers import cli as run
from helpers import conditional_tiny, isolated_dir, one_line

TINY = ["data.name=digits", "data.resolution=28", "model.arch=dcgan", "model.z_dim=16", "model.g={ngf: 8}",
        "model.d={ndf: 8}", "optim.batch_size=32", "train.total_kimg=0.256", "train.tick_kimg=0.256",
        "train.eval_ticks=0", "train.sample_ticks=100", "eval.metrics=[]", "eval.num_samples=64",
        "eval.final_num_samples=64", "tracking.enabled=false", "train.threads=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sample")
    with isolated_dir(tmp):
        rg.train(rg.config(overrides=TINY), run_dir=tmp / "plain", progress=False)
        rg.train(conditional_tiny("train.total_kimg=0.256", "train.threads=1"), run_dir=tmp / "cond",
                 progress=False)
    return tmp


@pytest.fixture
def here(runs, in_tmp):
    return {"plain": str(runs / "plain"), "cond": str(runs / "cond")}


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def umask():
    m = os.umask(0o022)
    os.umask(m)
    return m


def npz(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# ------------------------------------------------------------------------------------------ sample
def test_same_seed_same_bytes_for_every_kind_of_grid(here, capsys, in_tmp):
    for extra in ([], ["--trunc", "0.6"], ["--interp", "5", "--num", "3"]):
        for name in ("a.png", "b.png", "c.png"):
            seed = "2" if name == "c.png" else "1"
            code, out, err = run(capsys, "sample", "--run-dir", here["plain"], "--seed", seed, "--out", name, *extra)
            assert code == 0, err
        assert sha("a.png") == sha("b.png") and sha("a.png") != sha("c.png"), extra
        for name in ("a.png", "b.png", "c.png"):
            (in_tmp / name).unlink()


def test_trunc_zero_is_the_mean_latent_and_trunc_scales_z(here, capsys):
    from raygan.metrics import to_uint8

    images, _ = rg.sample(here["plain"], num=6, seed=3, trunc=0.0)
    assert all(torch.equal(images[0], images[i]) for i in range(6))  # every image G(0)
    G, _, _ = rg.load(here["plain"])
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(images[0], to_uint8(G(torch.zeros(1, 16)))[0])
        assert torch.equal(rg.sample(here["plain"], num=6, seed=3, trunc=0.5)[0], to_uint8(G(0.5 * z)))
        assert torch.equal(rg.sample(here["plain"], num=6, seed=3)[0], to_uint8(G(z)))  # psi 1: as before
    code, out, err = run(capsys, "sample", "--run-dir", here["plain"], "--num", "4", "--trunc", "0", "--out", "t.npz")
    assert code == 0, err
    imgs = npz("t.npz")["images"]
    assert imgs.shape == (4, 1, 28, 28) and (imgs == imgs[:1]).all()


def test_interp_grid_rows_start_at_the_plain_samples(here, capsys):
    code, out, err = run(capsys, "sample", "--run-dir", here["plain"], "--interp", "4", "--num", "3", "--seed", "5",
                         "--out", "i.npz")
    assert code == 0, err
    grid = npz("i.npz")["images"].reshape(3, 4, 1, 28, 28)
    plain, _ = rg.sample(here["plain"], num=3, seed=5)  # the rows' first latents are the first draws
    assert np.array_equal(grid[:, 0], plain.numpy())
    assert not np.array_equal(grid[:, 0], grid[:, 3])
    code, out, err = run(capsys, "sample", "--run-dir", here["plain"], "--interp", "4", "--num", "3", "--out", "i.png")
    assert code == 0, err and "wrote 12 samples" in out
    assert Image.open("i.png").size == (4 * 30 + 2, 3 * 30 + 2)  # 4 columns, 3 rows, torchvision's 2 px padding
    assert mode("i.png") == mode("i.npz") == 0o666 & ~umask()  # the user's usual mode, not the temp file's 0600


def test_class_k_gives_every_image_class_k(here, capsys):
    code, out, err = run(capsys, "sample", "--run-dir", here["cond"], "--class", "3", "--num", "5", "--out", "c.npz")
    assert code == 0, err
    got = npz("c.npz")
    assert got["labels"].tolist() == [3] * 5
    same, _ = rg.sample(here["cond"], num=5, labels=[3] * 5)
    assert np.array_equal(got["images"], same.numpy())
    other, _ = rg.sample(here["cond"], num=5, class_=4)
    assert not np.array_equal(got["images"], other.numpy())
    images, labels = rg.sample(here["cond"], num=2, interp=3, class_=7)
    assert labels.tolist() == [7] * 6 and images.shape[0] == 6


@pytest.mark.parametrize("model,args,pattern", [
    ("plain", ["--trunc", "1.5"], "--trunc must be a number from 0 (the mean latent) to 1 (no truncation), got 1.5"),
    ("plain", ["--trunc", "-0.1"], "--trunc must be a number from 0"),
    ("plain", ["--trunc", "nan"], "--trunc must be a number from 0"),
    ("plain", ["--class", "3"], "--class 3: this generator is unconditional"),
    ("cond", ["--class", "10"], "--class 10: this generator has 10 classes, 0 to 9"),
    ("cond", ["--class", "-1"], "--class -1: this generator has 10 classes"),
    ("plain", ["--mix"], "--mix: style mixing needs a style-based generator (model.arch stylegan2); this one is dcgan"),
    ("plain", ["--interp", "1"], "--interp must be an integer from 2 to 64"),
])
def test_bad_sample_input_is_one_line_and_writes_nothing(here, capsys, in_tmp, model, args, pattern):
    code, out, err = run(capsys, "sample", "--run-dir", here[model], *args, "--out", "x.png")
    one_line(code, err, pattern)
    assert not (in_tmp / "x.png").exists()


def test_argparse_refuses_interp_with_mix(here, capsys):
    with pytest.raises(SystemExit) as e:
        run(capsys, "sample", "--run-dir", here["plain"], "--mix", "--interp", "3", "--out", "x.png")
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- eval
def test_eval_trunc_scores_the_truncated_generator_and_records_psi(here, capsys):
    args = ["eval", "--run-dir", here["plain"], "--metrics", "fid", "--num-samples", "64", "--json"]
    values = {}
    for psi in (None, "1.0", "0.0"):
        code, out, err = run(capsys, *args, *(["--trunc", psi] if psi else []))
        assert code == 0, err
        res = json.loads(out)
        values[psi] = res["values"]["fid"]
        assert res["protocol"].get("truncation_psi") == (float(psi) if psi else None)
    assert values["1.0"] == values[None]  # psi 1 is no truncation
    assert values["0.0"] > values[None]  # one image 64 times: far from the data
    code, out, err = run(capsys, "eval", "--run-dir", here["plain"], "--metrics", "fid", "--num-samples", "64",
                         "--trunc", "0.7")
    assert code == 0, err
    assert "truncation psi 0.7 in z" in " ".join(out.split())
    code, out, err = run(capsys, "eval", "--run-dir", here["plain"], "--trunc", "2", "--num-samples", "64")
    one_line(code, err, "--trunc must be a number from 0")


def test_trunc_sweep_table_plot_and_mlflow_run(here, capsys, in_tmp):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{in_tmp / 'mlflow.db'}"
    code, out, err = run(capsys, "eval", "--run-dir", here["plain"], "--trunc-sweep", "1.0,0.0,0.5",
                         "--num-samples", "64", "--plot", "curve.png", "--tracking-uri", uri)
    assert code == 0, err
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("psi "))
    assert lines[head].split() == ["psi", "fid", "precision", "recall"]
    table = [[float(v) for v in ln.split()] for ln in lines[head + 1:head + 4]]
    assert [r[0] for r in table] == [0.0, 0.5, 1.0]
    assert table[0][1] > table[2][1]  # psi 0: one image 64 times, far from the data
    assert table[0][3] == 0.0  # and its k-NN ball (radius 0) covers no real image: no diversity at all
    with Image.open("curve.png") as im:
        assert im.size == (810, 315)
    assert mode("curve.png") == 0o666 & ~umask()
    run_id = out.split("mlflow run ")[1].split()[0]
    client = MlflowClient(uri)
    r = client.get_run(run_id)
    assert r.data.tags["raygan.kind"] == "truncation" and r.info.status == "FINISHED"
    hist = client.get_metric_history(run_id, "fid")
    assert [m.step for m in hist] == [0, 500, 1000]
    assert [round(m.value, 3) for m in hist] == [round(r[1], 3) for r in table]
    assert {a.path for a in client.list_artifacts(run_id, "truncation")} == {"truncation/curve.png",
                                                                              "truncation/sweep.json"}
    # nothing existing is replaced; a bad list is one line; both before any evaluation
    code, out, err = run(capsys, "eval", "--run-dir", here["plain"], "--trunc-sweep", "0.5,1", "--plot", "curve.png")
    one_line(code, err, "--plot curve.png exists; name a new file")
    code, out, err = run(capsys, "eval", "--run-dir", here["plain"], "--trunc-sweep", "0.5,1.2")
    one_line(code, err, "--trunc-sweep must be a number from 0 (the mean latent) to 1 (no truncation), got 1.2")
    code, out, err = run(capsys, "eval", "--run-dir", here["plain"], "--trunc-sweep", "0.5,x")
    one_line(code, err, "--trunc-sweep 0.5,x: give psi values separated by commas")
    assert not (in_tmp / "truncation.png").exists()


def test_trunc_sweep_without_tracking_writes_no_store(here, in_tmp):
    result = rg.trunc_sweep([0.5, 1.0], here["plain"], metrics=["fid"], num_samples=64, plot="c.png")
    assert [r["psi"] for r in result["rows"]] == [0.5, 1.0] and set(result["rows"][0]) == {"psi", "fid"}
    assert result["mlflow_run_id"] is None and not (in_tmp / "mlflow.db").exists()
    assert (in_tmp / "c.png").is_file() and result["protocol"]["truncation_space"] == "z"
