"""Ray Train host: DDP really averages gradients, a killed worker is survived, --resume
continues the same run, and bad input fails in seconds with one line.

One local Ray instance (2 CPUs) serves the whole module; each training uses 2 CPU workers on
gloo with one torch thread each."""
import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

from raygan.cli import main  # noqa: E402
from raygan.config import load_config  # noqa: E402
from raygan.distributed import cluster  # noqa: E402
from raygan.hosts import storage  # noqa: E402
from raygan.distributed.launch import train_ray  # noqa: E402
from raygan.distributed.options import RayOptions  # noqa: E402
from raygan.distributed.reporter import FAULT_ENV, SCORE_ATTR, RayReporter  # noqa: E402
from raygan.distributed.worker import WorkerSpec  # noqa: E402
from raygan.tracking.store import pin  # noqa: E402
from helpers import free_port, sets  # noqa: E402

TICK = 0.128  # kimg: 4 steps of 32 images


def tiny(tmp_path, *extra):
    """--set overrides for a seconds-long run on digits (offline), MLflow in tmp."""
    return [
        "data.name=digits", "data.resolution=28", "model.arch=mlp", "model.z_dim=16",
        "model.g={hidden: [32]}", "model.d={hidden: [32]}", "optim.batch_size=32", "ema.half_life_kimg=0.5",
        f"train.tick_kimg={TICK}", "train.snapshot_ticks=2", "train.sample_ticks=2", "train.eval_ticks=0",
        "train.threads=1", "eval.final_num_samples=128", "eval.batch_size=128", "eval.inception_weights=random",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", "tracking.register_model=null", *extra]


@pytest.fixture(scope="module")
def ray_local():
    if ray.is_initialized():
        ray.shutdown()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # the dashboard stays on: without it Ray Train's placement-group cleaner may ask another Ray
    # instance's State API on this host whether our controller lives, and kill our workers
    ray.init(num_cpus=2, log_to_driver=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYGAN_CACHE", str(tmp_path / "cache"))  # forwarded to the workers
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(FAULT_ENV, raising=False)
    return tmp_path


def mlflow_runs(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("raygan")
    return client, client.search_runs([exp.experiment_id])


# ---------------------------------------------------------------------------- correctness
def _ddp_equivalence_worker(config):
    """Several D and G steps on the same global batches and latents, each rank taking its slice.

    Plain SGD instead of Adam: Adam's first step is lr * g / (|g| + eps), which turns the
    float-rounding noise of a gradient that is ~0 into an lr-sized difference; with SGD a
    parameter difference is a gradient difference, which is what this test is about."""
    import ray.train
    import ray.train.torch
    import torch

    from raygan.config import build_config
    from raygan.engine.loop import Trainer

    torch.set_num_threads(1)
    cfg = build_config(config["cfg"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    tr = Trainer(cfg, None, prepare_model=ray.train.torch.prepare_model, device=torch.device("cpu"), evaluator=None)
    tr.task.step.opt_d = torch.optim.SGD(tr.task.D_plain.parameters(), lr=config["lr"])
    tr.task.step.opt_g = torch.optim.SGD(tr.task.G_plain.parameters(), lr=config["lr"])
    init = {"G": {k: v.clone() for k, v in tr.task.G_plain.state_dict().items()},
            "D": {k: v.clone() for k, v in tr.task.D_plain.state_dict().items()}}
    B = cfg.optim.batch_size
    b = B // world
    assert tr.task.ctx.batch == b
    gen = torch.Generator().manual_seed(1234)
    n = len(tr.task.data.labels)
    mine = slice(rank * b, (rank + 1) * b)
    for _ in range(config["steps"]):
        idx = torch.randperm(n, generator=gen)[:B]
        real = tr.task.data.images[idx].float().div(127.5).sub(1.0)
        z_d = torch.randn(B, cfg.model.z_dim, generator=gen)
        z_g = torch.randn(B, cfg.model.z_dim, generator=gen)
        tr.task.step.d_step(real[mine], None, z=z_d[mine])
        tr.task.step.g_step(b, z=z_g[mine])
    torch.save({"G": tr.task.G_plain.state_dict(), "D": tr.task.D_plain.state_dict(), "init": init,
                "wrapped": [type(tr.task.G).__name__, type(tr.task.D).__name__]},
               Path(config["out"]) / f"world{world}-rank{rank}.pt")


def _fit(fn, config, workers, tmp_path, name):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    TorchTrainer(fn, train_loop_config=config, torch_config=TorchConfig(backend="gloo"),
                 scaling_config=ScalingConfig(num_workers=workers),
                 run_config=RunConfig(name=name, storage_path=str(tmp_path / "ray"))).fit()


def test_two_workers_average_gradients_like_one_worker_with_double_batch(ray_local, env):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # tests/ is not importable by workers
    cfg = load_config(None, None, tiny(env, "model.g={hidden: [32, 32]}", "model.d={hidden: [32, 32]}"))
    out = env / "params"
    out.mkdir()
    config = {"cfg": cfg.to_dict(), "steps": 5, "lr": 0.05, "out": str(out)}
    _fit(_ddp_equivalence_worker, config, 1, env, "one")  # 1 worker x batch 32
    _fit(_ddp_equivalence_worker, config, 2, env, "two")  # 2 workers x batch 16
    one = torch.load(out / "world1-rank0.pt")
    r0, r1 = torch.load(out / "world2-rank0.pt"), torch.load(out / "world2-rank1.pt")
    assert r0["wrapped"] == ["DistributedDataParallel"] * 2 and one["wrapped"] == ["Generator", "Discriminator"]
    for net in ("G", "D"):
        for k, v in one[net].items():
            assert torch.equal(r0[net][k], r1[net][k]), f"{net}.{k} differs across ranks"
            moved = (v - one["init"][net][k]).abs().max()
            assert moved > 1e-4, f"{net}.{k} did not train"
            diff = (r0[net][k] - v).abs().max()
            assert diff <= 1e-6 + 1e-4 * moved, f"{net}.{k}: 2 workers x 16 vs 1 worker x 32 differ by {diff:.2e}"


# ---------------------------------------------------------------------------- faults
def test_killed_worker_restarts_from_checkpoint_in_the_same_mlflow_run(ray_local, env, monkeypatch):
    marker = env / "killed.json"
    # checkpoints every 2 ticks (0.256 kimg); rank 1 SIGKILLs itself at tick 3, after the first one
    monkeypatch.setenv(FAULT_ENV, f"rank=1,kimg={3 * TICK},marker={marker}")
    total = 6 * TICK
    cfg = load_config(None, None, tiny(env, f"train.total_kimg={total}"))
    summary = train_ray(pin(cfg), RayOptions(workers=2, storage=str(env / "store"), name="fault", max_failures=1),
                        progress=False)
    killed = json.loads(marker.read_text())
    assert killed["rank"] == 1 and killed["kimg"] == pytest.approx(3 * TICK)
    # 1. the run finished at the requested kimg, on the restarted group
    assert summary["kimg"] == pytest.approx(total) and summary["world_size"] == 2
    assert Path(summary["checkpoint"]).name == f"ckpt-{round(total * 1000):010d}"
    assert (Path(summary["checkpoint"]) / "state.pt").is_file()
    # 2. one MLflow run, finished, its metric history reaching the final kimg
    client, runs = mlflow_runs(f"sqlite:///{env}/mlflow.db")
    assert len(runs) == 1 and runs[0].info.run_id == summary["mlflow_run_id"]
    assert runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    restart = client.get_metric_history(run_id, "restart_kimg")
    assert len(restart) == 1
    restart_kimg = restart[0].value
    # 3. resumed from the latest checkpoint: at most one checkpoint interval (2 ticks) lost
    assert restart_kimg == pytest.approx(2 * TICK)
    assert killed["kimg"] - restart_kimg <= 2 * TICK + 1e-9
    # every tick exactly once in the history: the ticks redone after the restart are not logged twice
    steps = sorted(m.step for m in client.get_metric_history(run_id, "kimg"))
    assert steps == [round(k * TICK * 1000) for k in range(1, 7)]
    rows = [json.loads(line) for line in (env / "store" / "fault" / "metrics.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in rows] == pytest.approx([k * TICK for k in range(1, 7)])


def test_init_from_reaches_every_worker_and_the_lineage_is_recorded(ray_local, env):
    """--init-from with --workers: the workers build their networks from the source run (a learning rate
    of 1e-12 keeps them there for the one tick), and the driver records the lineage."""
    from raygan import api
    from raygan.engine.checkpoint import load_checkpoint

    src = env / "src"
    api.train(load_config(None, None, tiny(env, f"train.total_kimg={TICK}", "tracking.enabled=false")),
              run_dir=src, progress=False)
    cfg = load_config(None, None, tiny(env, f"train.total_kimg={TICK}", "optim.g_lr=1e-12", "optim.d_lr=1e-12",
                                       f"train.init_from={src}"))
    summary = train_ray(pin(cfg), RayOptions(workers=2, storage=str(env / "store"), name="ft"), progress=False)
    before = load_checkpoint(next((src / "checkpoints").iterdir()))["models"]
    after = load_checkpoint(Path(summary["checkpoint"]))["models"]
    for net in ("G", "D"):
        assert all(torch.allclose(after[net][k], v, atol=1e-6) for k, v in before[net].items()), net
    client, runs = mlflow_runs(f"sqlite:///{env}/mlflow.db")
    tags = client.get_run(summary["mlflow_run_id"]).data.tags
    assert tags["raygan.init_from"] == str(src) and tags["raygan.init_from_checkpoint"].startswith(str(src))
    assert json.loads((env / "store" / "ft" / "run.json").read_text())["init_from"] == str(src)


# ---------------------------------------------------------------------------- resume via the CLI
def test_cli_fresh_name_clash_resume_and_eval(ray_local, env, capsys):
    store = env / "store"
    first = ["train", "--preset", "digits", *sets(tiny(env, f"train.total_kimg={2 * TICK}")),
             "--workers", "2", "--storage", str(store), "--name", "r", "--no-progress"]
    assert main(first) == 0
    run = store / "r"
    assert (run / "config.yaml").is_file() and (run / "run.json").is_file()
    ckpt = run / "checkpoints" / f"ckpt-{round(2 * TICK * 1000):010d}"
    assert {p.name for p in ckpt.iterdir()} >= {"state.pt", "meta.json", "rng-rank0.pt", "rng-rank1.pt"}
    run_id = json.loads((run / "run.json").read_text())["run_id"]
    capsys.readouterr()

    # a fresh run must not silently continue an old one of the same name
    assert main(first) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err and len(err.strip().splitlines()) == 1

    # --resume: same name + storage, the run's own config plus --set
    assert main(["train", "--workers", "2", "--storage", str(store), "--name", "r", "--resume", "--no-progress",
                 "--set", f"train.total_kimg={4 * TICK}"]) == 0
    assert (run / "checkpoints" / f"ckpt-{round(4 * TICK * 1000):010d}" / "state.pt").is_file()
    client, runs = mlflow_runs(f"sqlite:///{env}/mlflow.db")
    assert [r.info.run_id for r in runs] == [run_id]
    assert max(m.step for m in client.get_metric_history(run_id, "kimg")) == round(4 * TICK * 1000)
    assert [m.value for m in client.get_metric_history(run_id, "restart_kimg")] == [pytest.approx(2 * TICK)]
    # rank 0 logged the pictures (stepped images), the resolved config and the model as artifacts
    arts = {a.path for a in client.list_artifacts(run_id)}
    assert {"images", "config.yaml", "summary.json", "model"} <= arts, arts
    assert client.get_run(run_id).data.tags["raygan.model_uri"] == f"runs:/{run_id}/model"
    assert len([a for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]) >= 2
    # and the run dir on storage has a local run's contents
    assert len(list((run / "samples").glob("grid-*.png"))) >= 2 and (run / "metrics.jsonl").is_file()
    assert (run / "curves.png").is_file() and (run / "summary.json").is_file()

    # the stored run has a local run's layout: `raygan eval --run-dir` reads it
    capsys.readouterr()
    assert main(["eval", "--run-dir", str(run), "--num-samples", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"]["source"].endswith(f"ckpt-{round(4 * TICK * 1000):010d}") and "fid" in out["values"]
    # and `raygan train --run-dir DIR --resume` continues it on Ray with its own workers
    assert main(["train", "--run-dir", str(run), "--resume", "--no-progress",
                 "--set", f"train.total_kimg={5 * TICK}"]) == 0
    assert (run / "checkpoints" / f"ckpt-{round(5 * TICK * 1000):010d}" / "rng-rank1.pt").is_file()


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("extra, expect", [
    (["--workers", "4"], "cannot place 4 workers"),
    (["--workers", "1", "--gpus-per-worker", "1"], "'GPU': 1.0"),
    (["--workers", "2", "--cpus-per-worker", "2"], "cannot place 2 workers"),
    (["--workers", "2", "--storage", "/proc/raygan-nope"], "not writable"),
    (["--workers", "2", "--storage", "foo://bucket/x"], "unknown scheme"),
    (["--workers", "2", "--address", "127.0.0.1:{port}"], "no Ray cluster at 127.0.0.1"),
    (["--storage", "/tmp/x"], "add --workers"),
    (["--workers", "3", "--set", "optim.batch_size=32"], "does not split evenly"),
])
def test_bad_input_is_one_line_and_fast(ray_local, env, capsys, extra, expect):
    extra = [e.format(port=free_port()) for e in extra]
    if "--storage" not in extra:
        extra += ["--storage", str(env / "store")]
    t0 = time.time()
    rc = main(["train", "--preset", "digits", *sets(tiny(env)), "--name", "bad", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert expect in err and len(err.splitlines()) == 1, err
    assert time.time() - t0 < 15
    assert not (env / "store" / "bad").exists()  # nothing written for a run that cannot start


def test_resume_of_unknown_run_is_an_error(env, capsys):
    assert main(["train", "--workers", "2", "--storage", str(env / "store"), "--name", "nope", "--resume"]) == 2
    assert "holds no run" in capsys.readouterr().err


# ---------------------------------------------------------------------------- pieces
def test_bundles_fit_per_node_not_in_total():
    two_small = [{"CPU": 2.0}, {"CPU": 2.0}]
    assert cluster.bundles_that_fit(two_small, {"CPU": 1.0}) == 4
    assert cluster.bundles_that_fit(two_small, {"CPU": 3.0}) == 0  # 4 CPUs in all, but no node has 3
    assert cluster.bundles_that_fit([{"CPU": 8.0, "GPU": 2.0}], {"CPU": 1.0, "GPU": 1.0}) == 2
    cluster.check_resources(4, 1, 0, nodes_fn=lambda: two_small)
    with pytest.raises(cluster.ClusterError, match="2 nodes with 4 CPUs and 0 GPUs"):
        cluster.check_resources(1, 1, 1, nodes_fn=lambda: two_small)


def test_resource_wait_sees_nodes_that_join():
    calls = []

    def nodes():
        calls.append(1)
        return [{"CPU": 2.0}] * (1 if len(calls) < 2 else 2)

    cluster.check_resources(3, 1, 0, wait_s=5, poll_s=0.05, nodes_fn=nodes)
    assert len(calls) >= 2


def test_checkpointed_reports_always_carry_the_score(monkeypatch, tmp_path):
    import ray.train

    sent = []
    monkeypatch.setattr(ray.train, "report", lambda m, checkpoint=None, checkpoint_dir_name=None:
                        sent.append((m, checkpoint_dir_name)))
    rep = RayReporter(WorkerSpec(config={}, objective="fid", keep_best=True), rank=1)
    ckpt = tmp_path / "c"
    ckpt.mkdir()
    rep.report({"kimg": 0.256, "loss_d": 1.0, "protocol": {"x": "y"}}, str(ckpt))
    rep.report({"kimg": 0.512, "fid": 12.5, "final": {"fid": 12.5}}, str(ckpt))
    rep.report({"kimg": 0.640, "loss_d": 1.0})
    (m1, n1), (m2, n2), (m3, n3) = sent
    assert m1[SCORE_ATTR] == float("inf") and "protocol" not in m1 and n1 == "checkpoints/ckpt-0000000256"
    assert m2[SCORE_ATTR] == 12.5 and m2["final_fid"] == 12.5
    assert SCORE_ATTR not in m3 and n3 is None


def test_storage_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYGAN_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert storage.resolve(None) == str(tmp_path / "runs")
    assert storage.resolve("s3://bucket/x/") == "s3://bucket/x"
    assert storage.resolve("file:///tmp/y") == "/tmp/y"
    monkeypatch.setenv("RAYGAN_STORAGE", "gs://b/p")
    assert storage.resolve(None) == "gs://b/p"
    storage.check_writable(str(tmp_path / "deep" / "er"))
    assert (tmp_path / "deep" / "er").is_dir() and not list((tmp_path / "deep" / "er").iterdir())


def test_keep_best_keeps_the_lowest_fid_checkpoint_and_the_latest(ray_local, env):
    store = env / "store"
    overrides = tiny(env, f"train.total_kimg={5 * TICK}", "train.snapshot_ticks=1", "train.eval_ticks=1",
                     "train.keep_checkpoints=1", "eval.num_samples=64", "eval.final_num_samples=64")
    assert main(["train", "--preset", "digits", *sets(overrides), "--workers", "1", "--storage", str(store),
                 "--name", "kb", "--keep", "best", "--no-progress"]) == 0
    run_id = json.loads((store / "kb" / "run.json").read_text())["run_id"]
    client, _ = mlflow_runs(f"sqlite:///{env}/mlflow.db")
    fid = {m.step: m.value for m in client.get_metric_history(run_id, "fid")}
    assert len(fid) == 5  # every tick was scored and checkpointed
    best, last = min(fid, key=fid.get), max(fid)
    kept = {p.name for p in (store / "kb" / "checkpoints").iterdir() if p.name.startswith("ckpt-")}
    assert kept == {f"ckpt-{best:010d}", f"ckpt-{last:010d}"}, fid
