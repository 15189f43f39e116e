"""`raygan augment` from the command line: outputs checked before any training, the plan and
its expected time up front, the table once with its columns explained, MLflow filled as each
classifier ends, the plot last; tiny digits GANs and 40-step classifiers."""
import functools

import pytest

from helpers import AUGMENT_BASE as BASE
from helpers import cli as run
from helpers import one_line as _one_line

one_line = functools.partial(_one_line, warnings=True)

TINY = [a for o in BASE for a in ("--set", o)] + ["--no-tracking", "--real-per-class", "2", "--seeds", "1",
                                                   "--gan-kimg", "0.064", "--clf-steps", "8", "--clf-batch-size", "16",
                                                   "--synthetic-per-class", "3"]


@pytest.mark.parametrize("where,pattern", [
    (("--plot", "{f}/plot.png"), "--plot folder of {f}: exists and is not a directory"),
    (("--plot", "{t}/plot.xyz"), "matplotlib cannot write '.xyz' files"),
    (("--plot", "{t}/old.png"), "exists; it is not overwritten"),
    (("--table", "{t}/old.png"), "exists; it is not overwritten"),
    (("--table", "{t}"), "is a directory"),
    (("--work-dir", "{f}/w"), "--work-dir {f}/w: cannot write there"),
])
def test_every_output_path_is_checked_before_any_training(tmp_path, capsys, where, pattern):
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "old.png").write_bytes(b"the user's picture")
    fmt = dict(f=tmp_path / "afile", t=tmp_path)
    args = [where[0], where[1].format(**fmt)] + ([] if where[0] == "--work-dir" else ["--work-dir", tmp_path / "w"])
    code, out, err = run(capsys, "augment", *TINY, *args)
    one_line(code, err, pattern.format(**fmt))
    assert "plan:" not in out and not list(tmp_path.glob("**/gan-*"))  # nothing measured, nothing trained
    assert (tmp_path / "old.png").read_bytes() == b"the user's picture"


def test_help_shows_the_defaults_and_the_knobs(capsys):
    with pytest.raises(SystemExit):
        run(capsys, "augment", "--help")
    text = " ".join(capsys.readouterr().out.split())
    for option, default in (("--clf-steps", "1000"), ("--seeds", "3"), ("--synthetic-per-class", "1000"),
                            ("--real-per-class", "10,50,100"), ("--preset", "fmnist-cgan-100pc")):
        assert option in text and f"(default: {default})" in text.split(option, 2)[-1], option
    assert "--dry-run" in text and "--table" in text and "--conditions" in text


def test_dry_run_prints_the_plan_and_its_time_and_trains_nothing(tmp_path, capsys):
    code, out, err = run(capsys, "augment", *TINY, "--real-per-class", "2,5", "--work-dir", tmp_path / "w",
                         "--dry-run")
    assert code == 0, err
    assert "plan: 2 cells (K x seed); 2 GANs to train" in out and "8 classifiers of 8 steps" in out
    assert "estimate: ~" in out and "shorten with --clf-steps" in out
    assert not list((tmp_path / "w").glob("gan-*")) and not (tmp_path / "mlflow.db").exists()


def test_a_run_says_its_plan_first_prints_the_table_once_and_fills_mlflow(in_tmp, capsys):
    uri = f"sqlite:///{in_tmp / 'm.db'}"
    args = [a for a in TINY if a != "--no-tracking"]
    code, out, err = run(capsys, "augment", *args, "--conditions", "real,real+gan", "--work-dir", "w",
                         "--tracking-uri", uri, "--experiment", "aug")
    assert code == 0, err
    lines = out.splitlines()
    first_gan = next(i for i, ln in enumerate(lines) if "GAN trained" in ln)
    assert any(ln.startswith("estimate: ~") for ln in lines[:first_gan])  # before any training
    assert out.count("test accuracy % (") == 1  # the table once
    row = next(ln for ln in lines if ln.split()[:1] == ["2"])
    assert "1 seed, so no spread" in out and "±" not in row and len(row.split()) == 3  # K, real, real+gan
    assert "real+gan          the real subset + 3 GAN-made images per class" in out
    assert "images per classifier: K=2: real 20, +gan 50" in out
    assert "[3/3] K=2 seed=0 real+gan: test accuracy" in out
    assert (in_tmp / "w" / "augment.txt").read_text().startswith("test accuracy % (1 seed")
    assert (in_tmp / "w" / "augment.png").read_bytes()[:4] == b"\x89PNG"

    from raygan.tracking.store import open_client

    client = open_client(uri)
    pid = out.split("mlflow run:")[1].split()[0]
    parent = client.get_run(pid)
    assert parent.info.status == "FINISHED" and parent.data.tags["raygan.kind"] == "augment"
    assert {"acc/K2/real", "acc_mean/K2/real_gan", "acc_std/K2/real"} <= set(parent.data.metrics)
    assert {a.path for a in client.list_artifacts(pid, "augment")} >= {"augment/table.txt", "augment/augment.png"}

    code, listing, err = run(capsys, "runs", "list", "--tracking-uri", uri, "--experiment", "aug")
    assert code == 0, err
    head, _, *rows = listing.splitlines()
    at = head.index(" role ") + 1
    roles = [ln[at:].split()[0] for ln in rows if ln.strip()]
    assert sorted(roles) == ["augment", "augment-cell", "augment-cell"], listing


def test_a_plot_that_fails_at_the_end_loses_neither_table_nor_mlflow(in_tmp, capsys, monkeypatch):
    import raygan.experiments.augment as exp

    def disk_trouble(result, path):  # the one failure an up-front check cannot rule out
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(exp, "plot", disk_trouble)
    uri = f"sqlite:///{in_tmp / 'm.db'}"
    args = [a for a in TINY if a != "--no-tracking"]
    code, out, err = run(capsys, "augment", *args, "--conditions", "real", "--work-dir", "w",
                         "--tracking-uri", uri, "--experiment", "aug")
    one_line(code, err, "--plot w/augment.png: could not write it")
    assert "the table is in w/augment.txt and MLflow run" in err
    assert (in_tmp / "w" / "augment.txt").read_text().startswith("test accuracy %")

    from raygan.tracking.store import open_client

    pid = out.split("mlflow run:")[1].split()[0]
    run_ = open_client(uri).get_run(pid)
    assert run_.info.status == "FINISHED" and "acc_mean/K2/real" in run_.data.metrics
