"""`raygan runs` over an MLflow store written the way training and sweeps write it (no training
here: runs are made with the MLflow reporter and a tiny registered generator), and
`raygan sample --model-uri models:/NAME@champion`."""
import json
import re
import shutil

import pytest

from raygan.cli import main
from raygan.config import load_config
from helpers import isolated_dir
from helpers import one_line as one_line_error

PROTOCOL = {"extractor": "fmnist-cnn", "weights_hash": "4ee6f29081423406d181cfdf15fba006", "num_samples": 300,
            "reference": "digits:test@28px", "reference_count": 359, "resize": "gray-crop28|bilinear28"}


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _run(uri, tmp, name, overrides, fids, experiment="e1", tags=None, parent=None):
    from raygan.hosts.runstore import RunStore
    from raygan.tracking.reporter import MLflowReporter

    cfg = load_config("digits", None, overrides)
    run_dir = RunStore(tmp / name)
    run_dir.write_config(cfg)
    rep = MLflowReporter(cfg.to_dict(), run_dir, uri=uri, experiment=experiment, run_name=name, tags=tags,
                         parent_run_id=parent)
    rep.start({"world_size": 1})
    for i, f in enumerate(fids[:-1], 1):
        rep.report({"kimg": 0.5 * i, "tick": i, "loss_d": 1.0, "loss_g": 2.0, "fid": f, "protocol": PROTOCOL})
    k = 0.5 * len(fids)
    rep.report({"kimg": k, "tick": len(fids), "loss_d": 1.0, "loss_g": 2.0, "fid": fids[-1], "protocol": PROTOCOL,
                "final": {"fid": fids[-1]}})
    rep.finish({"kimg": k, "final": {"fid": fids[-1]}, "protocol": PROTOCOL})
    return rep


@pytest.fixture(scope="module")
def written_store(tmp_path_factory):
    """The store, written once per module; its artifacts stay here, read-only for the tests."""
    tmp = tmp_path_factory.mktemp("runs-store")
    with isolated_dir(tmp):
        return tmp, _write_store(tmp)


@pytest.fixture
def store(written_store, in_tmp):
    """Each test gets its own copy of the database, as ./mlflow.db (the default store)."""
    src, ids = written_store
    shutil.copyfile(src / "mlflow.db", in_tmp / "mlflow.db")
    return {**ids, "uri": f"sqlite:///{in_tmp}/mlflow.db"}


def _write_store(in_tmp):
    from mlflow.tracking import MlflowClient

    from raygan.models import build_models
    from raygan.tasks import ExportedModel
    from raygan.tracking.models import log_model

    uri = f"sqlite:///{in_tmp}/mlflow.db"
    a = _run(uri, in_tmp, "run-a", ["optim.g_lr=0.001", "loss.name=ns"], [50.0, 40.0])
    b = _run(uri, in_tmp, "run-b", ["optim.g_lr=0.0002", "loss.name=hinge"], [45.0, 35.0])
    parent = MlflowClient(uri).create_run(
        MlflowClient(uri).get_experiment_by_name("e1").experiment_id, run_name="sweep-x",
        tags={"raygan.role": "sweep"}).info.run_id
    c = _run(uri, in_tmp, "trial-c", ["optim.g_lr=0.0004"], [60.0, 39.0], experiment="e2",
             tags={"raygan.trial_id": "c", "raygan.sampled": '{"optim.g_lr": 0.0004}'})
    d = _run(uri, in_tmp, "trial-d", ["optim.g_lr=0.0003"], [50.0, 37.0], experiment="e2",
             tags={"raygan.trial_id": "d"})
    client = MlflowClient(uri)
    # the sweep's honest re-evaluation: c is better than d, whatever their proxies said
    for rid, mean, std in ((c.run_id, 36.5, 0.4), (d.run_id, 38.2, 0.3)):
        client.log_metric(rid, "reeval_fid_mean", mean)
        client.log_metric(rid, "reeval_fid_std", std)
        for k, v in {**PROTOCOL, "num_samples": 1000, "seeds": "[124, 125, 126]"}.items():
            client.set_tag(rid, f"reeval.protocol.{k}", str(v))
    # a tiny generator registered from run a, alias champion
    gcfg = load_config("digits", None, ["model.z_dim=8", "model.g={hidden: [16]}", "model.d={hidden: [16]}"])
    G, _ = build_models("mlp", resolution=28, channels=1, z_dim=8, g={"hidden": [16]}, d={"hidden": [16]})
    spec = {"task": "generate", "network": "G", "config": gcfg.to_dict(), "model_spec": {"channels": 1, "num_classes": 0}}
    logged = log_model(client, a.run_id, ExportedModel(G.eval(), spec), "g-test")
    client.set_registered_model_alias("g-test", "champion", logged.version)
    return {"uri": uri, "a": a.run_id, "b": b.run_id, "c": c.run_id, "d": d.run_id, "parent": parent}


def test_list_sorts_filters_and_limits(store, capsys):
    code, out, _ = run(capsys, "runs", "list")  # the default store: ./mlflow.db
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["run_id", "name", "experiment", "role"]
    for rid in ("a", "b", "c", "d"):
        assert store[rid][:12] in out
    code, out, _ = run(capsys, "runs", "list", "--experiment", "e1", "--sort", "score", "--tracking-uri", store["uri"])
    rows = [ln for ln in out.splitlines()[2:] if ln.strip()]
    assert [r.split()[0] for r in rows] == [store[k][:12] for k in ("b", "a", "parent")]  # 35 < 40 < no FID
    assert "final_fid" in rows[0] and " 35 " in rows[0] and "experiment" not in out.splitlines()[0]
    # by score: c's honest re-evaluated FID (36.5) beats d's (38.2), though d's last tick (37) beat c's (39)
    code, out, _ = run(capsys, "runs", "list", "--experiment", "e2", "--sort", "score", "--limit", "1")
    assert store["c"][:12] in out and store["d"][:12] not in out and "(1 more: --limit N)" in out
    assert "36.5 ± 0.4" in out and "reeval_fid_mean" in out
    code, out, _ = run(capsys, "runs", "list", "--experiment", "e2", "--sort", "fid", "--limit", "1")  # a metric
    assert store["d"][:12] in out
    code, out, _ = run(capsys, "runs", "list", "--experiment", "e2", "--json")
    rows = json.loads(out)
    assert {r["run_id"] for r in rows} == {store["c"], store["d"]}
    assert next(r for r in rows if r["run_id"] == store["c"])["value"] == 36.5
    code, _, err = run(capsys, "runs", "list", "--sort", "bogus")
    one_line_error(code, err, r"--sort 'bogus': no run has that metric")


def test_list_sorts_a_metric_best_first_shows_it_and_whole_names(store, capsys):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["uri"])
    client.log_metric(store["a"], "psnr", 20.0)
    client.log_metric(store["b"], "psnr", 25.0)
    code, out, _ = run(capsys, "runs", "list", "--experiment", "e1", "--sort", "psnr")
    lines = out.splitlines()
    assert code == 0 and "psnr" in lines[0].split()  # the sorted column is shown
    rows = [ln for ln in lines[2:] if ln.strip() and not ln.startswith("(")]
    assert [r.split()[0] for r in rows] == [store[k][:12] for k in ("b", "a", "parent")]  # higher PSNR first
    assert " 25 " in rows[0] and " 20 " in rows[1] and "(sorted by psnr: highest, the best, first)" in out
    code, out, _ = run(capsys, "runs", "list", "--experiment", "e1", "--sort", "fid")  # lower FID first
    assert [r.split()[0] for r in out.splitlines()[2:4]] == [store[k][:12] for k in ("b", "a")]
    long_exp, long_run = "tune-quickstart-20261121-101500-fashion", "trial-00003-lr-0.0002-hinge-r1-long"
    exp_id = client.create_experiment(long_exp)
    client.create_run(exp_id, run_name=long_run)
    code, out, _ = run(capsys, "runs", "list")
    assert long_exp in out.split() and long_run in out.split()  # whole names, so a copied name works
    copied = next(w for w in out.split() if w.startswith("tune-quickstart-"))
    code, out, _ = run(capsys, "runs", "list", "--experiment", copied)
    assert code == 0 and long_run in out


def test_runs_list_into_a_closed_pipe_is_quiet_and_imports_no_torch(store):
    import os
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)  # `raygan runs list | head -1`, the reader long gone
    p = subprocess.run([sys.executable, "-m", "raygan", "runs", "list", "--tracking-uri", store["uri"]], stdout=w,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    os.close(w)
    assert p.returncode == 141 and p.stderr == "", p.stderr
    code = ("import sys; from raygan.cli import main; main(['runs', 'list', '--sort', 'score', '--tracking-uri', "
            f"{store['uri']!r}]); print(sorted(m for m in ('torch', 'ray') if m in sys.modules), file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert store["a"][:12] in p.stdout and p.stderr.strip().splitlines()[-1] == "[]", p.stderr


def test_runs_list_reads_the_embedded_store_as_mlflow_does(store):
    """The direct sqlite reader (no MLflow import) prints what the MlflowClient reader prints, on a
    real store with a NaN metric, a metric at several steps, equal start times, a deleted run and a
    deleted experiment; a store at another schema revision is not read directly."""
    import sqlite3
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from raygan.tracking import sqlread
    from raygan.tracking.runs import list_runs

    uri, client = store["uri"], MlflowClient(store["uri"])
    client.log_metric(store["a"], "psnr", float("nan"))
    for step, v in ((0, 3.0), (5, 1.0), (2, 9.0)):
        client.log_metric(store["b"], "loss_x", v, step=step)
    e3 = client.create_experiment("e3")
    twins = [client.create_run(e3, run_name=f"twin-{i}", start_time=1700000000000).info.run_id for i in range(3)]
    client.delete_run(twins[0])
    gone = client.create_experiment("gone")
    client.create_run(gone, run_name="in-a-deleted-experiment")
    client.delete_experiment(gone)
    cases = [{}, {"sort": "score"}, {"sort": "name"}, {"sort": "fid"}, {"sort": "psnr"}, {"sort": "loss_x"},
             {"experiment": "e1", "sort": "score"}, {"experiment": "e3"}, {"limit": 2}, {"as_json": True},
             {"experiment": "e2", "as_json": True, "sort": "score"}]
    for kw in cases:
        assert list_runs(uri, **kw) == list_runs(uri, via_mlflow=True, **kw), kw
    for kw, pattern in (({"experiment": "gone"}, r"no MLflow experiment named 'gone'"),
                        ({"sort": "nope"}, r"--sort 'nope': no run has that metric")):
        for via in (False, True):
            with pytest.raises(Exception, match=pattern):
                list_runs(uri, via_mlflow=via, **kw)
    out = list_runs(uri, experiment="e3")
    assert "twin-1" in out and "twin-2" in out and "twin-0" not in out
    db = Path(uri[len("sqlite:///"):])
    con = sqlread.connect(db)
    assert con is not None  # this MLflow's store is at sqlread.SCHEMA
    con.close()
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    con.close()
    assert sqlread.connect(db) is None  # another revision: MlflowClient reads (and migrates) it


def test_runs_list_imports_no_mlflow(store):
    import subprocess
    import sys

    code = ("import sys; from raygan.cli import main; main(['runs', 'list', '--sort', 'score', '--tracking-uri', "
            f"{store['uri']!r}]); print(sorted(m for m in ('torch', 'ray', 'mlflow', 'sqlalchemy', 'alembic') "
            "if m in sys.modules), file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert store["a"][:12] in p.stdout and p.stderr.strip().splitlines()[-1] == "[]", p.stderr


def test_ui_command_starts_one_worker_without_job_runners():
    import click
    from mlflow.cli import cli
    from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION

    from raygan.tracking.store import ui_command

    cmd = ui_command("sqlite:////x/mlflow.db")
    assert cmd.startswith(f"{MLFLOW_SERVER_ENABLE_JOB_EXECUTION.name}=false mlflow ui --backend-store-uri sqlite:////x/")
    assert "--workers 1" in cmd and cmd.endswith("# Ctrl-C stops it")
    ui = cli.get_command(click.Context(cli), "ui")  # `mlflow ui` is `mlflow server` in mlflow 3
    flags = {f for p in ui.params for f in p.opts}  # the flags exist in the installed mlflow
    assert {"--backend-store-uri", "--default-artifact-root", "--workers"} <= flags


def test_show_prints_params_final_metrics_with_protocol_and_artifacts(store, capsys):
    code, out, _ = run(capsys, "runs", "show", store["a"])
    assert code == 0
    assert f"run         {store['a']}  (run-a)" in out and "experiment  e1" in out and "status      FINISHED" in out
    assert re.search(r"final_fid\s+40\.0000\s+extractor fmnist-cnn@4ee6f2908142, 300 generated vs 359 digits:test@28px",
                     out)
    assert re.search(r"optim\.g_lr\s+0\.001\n", out) and re.search(r"data\.name\s+digits", out)
    assert re.search(r"file://\S+/artifacts/config\.yaml", out) and "/artifacts/summary.json" in out
    assert "models:/g-test@champion" in out and "models:/g-test/1" in out
    code, out2, _ = run(capsys, "runs", "show", store["a"][:8])  # a unique prefix
    assert out2 == out
    code, out, _ = run(capsys, "runs", "show", store["a"], "--json")
    assert json.loads(out)["params"]["optim.g_lr"] == "0.001"
    code, out, _ = run(capsys, "runs", "show", store["c"])
    assert re.search(r"reeval_fid_mean\s+36\.5000 ± 0\.4000\s+extractor fmnist-cnn@.*1000 generated.*"
                     r"seeds 124, 125, 126", out)


def test_compare_shows_only_differing_params_and_metrics(store, capsys):
    code, out, _ = run(capsys, "runs", "compare", store["a"], store["b"])
    assert code == 0
    lines = out.splitlines()
    assert "run-a (" in lines[0] and "run-b (" in lines[0]
    assert re.search(r"^optim\.g_lr\s+0\.001\s+0\.0002$", out, re.M)
    assert re.search(r"^loss\.name\s+ns\s+hinge$", out, re.M)
    assert re.search(r"^final_fid\s+40\s+35$", out, re.M)
    assert not re.search(r"^data\.name", out, re.M) and not re.search(r"^tracking\.", out, re.M)
    assert "(2 params differ," in out


def test_best_prefers_the_honest_fid_and_prints_model_uris(store, capsys):
    code, out, _ = run(capsys, "runs", "best", "--experiment", "e1")
    assert code == 0 and out.startswith(f"best run    {store['b']}  (run-b)")
    assert "35.0000  [final_fid, min]" in out and "model       none logged" in out
    code, out, _ = run(capsys, "runs", "best", "--experiment", "e2")
    # d's last proxy FID (37) beats c's (39), but c wins the re-evaluation (36.5 vs 38.2)
    assert out.startswith(f"best run    {store['c']}") and "36.5000 ± 0.4000  [reeval_fid_mean, min]" in out
    assert "seeds 124, 125, 126" in out and 'sampled     {"optim.g_lr": 0.0004}' in out


def test_sample_loads_a_registered_model_by_alias(store, capsys):
    code, out, err = run(capsys, "sample", "--model-uri", "models:/g-test@champion", "--num", "9", "--out", "g.png")
    assert code == 0, err
    from PIL import Image

    assert Image.open("g.png").size[0] > 28


def test_unknown_experiment_run_or_store_is_one_line(store, capsys, tmp_path):
    code, _, err = run(capsys, "runs", "list", "--experiment", "nope")
    one_line_error(code, err, r"no MLflow experiment named 'nope' in sqlite:///.*\(experiments: Default, e1, e2\)")
    code, _, err = run(capsys, "runs", "best", "--experiment", "nope")
    one_line_error(code, err, r"no MLflow experiment named 'nope'")
    code, _, err = run(capsys, "runs", "show", "0123456789abcdef")
    one_line_error(code, err, r"no run '0123456789abcdef' in sqlite:///")
    code, _, err = run(capsys, "runs", "compare", store["a"], "deadbeef")
    one_line_error(code, err, r"no run 'deadbeef'")
    code, _, err = run(capsys, "runs", "compare", store["a"])
    one_line_error(code, err, r"compare needs at least two run ids")
    code, _, err = run(capsys, "runs", "list", "--tracking-uri", f"sqlite:///{tmp_path}/elsewhere/mlflow.db")
    one_line_error(code, err, r"no MLflow store at .*elsewhere/mlflow\.db")
    code, _, err = run(capsys, "sample", "--model-uri", "models:/g-test@nope", "--out", "x.png")
    one_line_error(code, err, r"cannot fetch model models:/g-test@nope")


def test_model_uri_fetches_two_files_and_leaves_no_temp_copy(store, capsys, tmp_path, monkeypatch):
    """Each --model-uri used to leave a raygan-model-* copy in the temp dir (a local directory URI
    a copy of its whole tree); now just spec.json + weights.pt are fetched, into a temp dir that
    is gone afterwards, also when the load fails; `..` in a URI is refused."""
    import tempfile
    from pathlib import Path
    from urllib.parse import urlparse

    from mlflow.tracking import MlflowClient

    from raygan.tracking.models import model_files

    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    client = MlflowClient(store["uri"])
    folder = Path(urlparse(client.get_run(store["a"]).info.artifact_uri).path) / "model"
    (folder / "big.bin").write_bytes(b"x" * 2**20)  # anything else in the model's folder is not copied

    for uri in ("models:/g-test@champion", f"runs:/{store['a']}/model", f"runs:/{store['a']}"):
        with model_files(uri, store["uri"]) as d:
            assert sorted(p.name for p in d.iterdir()) == ["spec.json", "weights.pt"], uri
            assert d.parent == tmp
        assert list(tmp.iterdir()) == [], uri
    with model_files(str(folder), store["uri"]) as d:  # a local directory: read in place
        assert d == folder
    assert list(tmp.iterdir()) == []

    code, _, err = run(capsys, "sample", "--model-uri", "models:/g-test/1", "--num", "4", "--out", "a.png")
    assert code == 0, err
    code, _, err = run(capsys, "sample", "--model-uri", str(folder), "--num", "4", "--out", "b.png")
    assert code == 0, err
    assert list(tmp.iterdir()) == []

    # a failed load cleans up too
    good = (folder / "weights.pt").read_bytes()
    (folder / "weights.pt").write_bytes(b"not a tensor file")
    code, _, err = run(capsys, "sample", "--model-uri", "models:/g-test/1", "--out", "c.png")
    one_line_error(code, err, r"weights\.pt is not a plain tensor file, refused")
    (folder / "weights.pt").write_bytes(good)
    code, _, err = run(capsys, "sample", "--model-uri", "models:/g-test@nope", "--out", "c.png")
    one_line_error(code, err, r"cannot fetch model models:/g-test@nope")
    assert list(tmp.iterdir()) == []

    # `..` would reach the whole experiment (every run's artifacts): refused before anything is fetched
    for uri in (f"runs:/{store['a']}/../..", f"runs:/{store['a']}/model/../../../", "models:/g-test/1/..",
                f"runs:/{store['a']}/%2e%2e"):
        code, _, err = run(capsys, "sample", "--model-uri", uri, "--out", "d.png")
        one_line_error(code, err, r"'\.\.' is not allowed")
    assert list(tmp.iterdir()) == [] and not Path("d.png").exists()
