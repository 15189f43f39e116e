"""StyleGAN2 trained by the generate task: path length as G's lazy "Greg" phase (its optimiser
corrected as StyleGAN2-ADA's), style mixing, w-average tracking copied into the EMA generator,
conditional through the label embedding, with ADA + DiffAugment and lazy R1; and an exact resume
(every network, buffer, optimiser, pl_mean and the G clock), on a generator a few channels wide."""
import pytest
import torch

from raygan.config import load_config
from raygan.engine.checkpoint import list_checkpoints
from raygan.engine.loop import Trainer

from conftest import HAS_FMNIST
from helpers import assert_bitwise_equal, params, uninterrupted_and_resumed

TOTAL = 0.048  # 6 steps of 8 images
TINY = ["data.name=digits", "data.resolution=32", "data.limit=64", "model.arch=stylegan2", "model.z_dim=8",
        "model.conditional=true",
        "model.g={w_dim: 8, mapping_layers: 1, fmaps: 0.002, channel_max: 8, pl_every: 2, mixing_prob: 0.9}",
        "model.d={fmaps: 0.002, channel_max: 8, mapping_layers: 1, mbstd_group: 4}",
        "optim.batch_size=8", "optim.g_lr=0.0025", "optim.d_lr=0.0025", "optim.g_betas=[0.0, 0.99]",
        "optim.d_betas=[0.0, 0.99]", "ema.half_life_kimg=0.5", "ema.rampup=0.05",
        "augment.diffaugment=translation", "augment.ada={target: 0.6, speed_kimg: 1, interval: 1}",
        "regularizer.name=r1", "regularizer.kwargs={weight: 0.1, every: 3}", "train.tick_kimg=0.024",
        "train.snapshot_ticks=1", "train.eval_ticks=1", "train.sample_ticks=100", "train.keep_checkpoints=4",
        "tracking.enabled=false", f"train.total_kimg={TOTAL}"]


def state(tr):
    t = tr.task
    return {"networks": {k: params(m) for k, m in t.networks.items()},
            "optim": {k: o.state_dict() for k, o in t.optimizers.items()},
            "task": t.state(), "nimg": tr.nimg}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sg2")
    one, second = uninterrupted_and_resumed(load_config(None, None, TINY), root)
    return one, second, root / "one"


def test_resume_is_bitwise_exact_with_path_length_mixing_ada_and_r1(runs):
    one, resumed, _ = runs
    a, b = state(one), state(resumed)
    assert a["task"]["g_steps"] == 6 and "g_regularizer" in a["task"] and "augment" in a["task"]
    assert_bitwise_equal(a, b)


def test_path_length_runs_as_gs_lazy_phase(runs):
    one, _, _ = runs
    t = one.task
    assert [p.name for p in t.phase_list] == ["Gmain", "Greg", "Dmain", "Dreg"]
    assert t.phase_list[1].every == 2 and not t.phase_list[1].main
    # G's optimiser corrected for the lazy phase (c = 2/3) as D's is for R1 every 3 (c = 3/4)
    g, d = t.opt_g.param_groups[0], t.opt_d.param_groups[0]
    assert g["lr"] == pytest.approx(0.0025 * 2 / 3) and g["betas"][1] == pytest.approx(0.99 ** (2 / 3))
    assert d["lr"] == pytest.approx(0.0025 * 3 / 4)
    pl_mean = float(t.g_regularizer.pl_mean)
    # 3 penalties (every 2nd of 6 G steps), each moving pl_mean (from 0) 1% of the way toward a batch's mean
    # length: pl_mean = 0.01 * (l1 * 0.99^2 + l2 * 0.99 + l3), positive and far below the lengths themselves
    assert 0 < pl_mean
    stats = t.read_stats()
    assert set(stats) >= {"pl_penalty", "pl_mean"}


def test_w_average_is_tracked_and_reaches_the_ema_generator(runs):
    one, _, _ = runs
    G, G_ema = one.task.G_plain, one.task.G_ema
    assert G.w_avg.abs().sum() > 0
    assert torch.equal(G_ema.w_avg, G.w_avg)  # EMA copies buffers
    assert one.task.eval_network() is G_ema and not G_ema.training


def test_conditional_generator_follows_its_labels(runs):
    one, _, _ = runs
    G = one.task.G_ema
    z = torch.randn(4, 8)
    a = G(z, torch.zeros(4, dtype=torch.long))
    b = G(z, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(a, b) and G.mapping.embed is not None


def test_without_path_length_there_is_no_greg_phase():
    cfg = load_config(None, None, [*TINY, "model.g={w_dim: 8, mapping_layers: 1, fmaps: 0.002, channel_max: 8, "
                                          "pl_weight: 0}"])
    tr = Trainer(cfg, None, evaluator=None)
    assert [p.name for p in tr.task.phase_list] == ["Gmain", "Dmain", "Dreg"]
    assert tr.task.g_regularizer is None and tr.task.opt_g.param_groups[0]["lr"] == 0.0025


def test_presets_build_the_documented_networks_and_search_their_own_space():
    from raygan.distributed.sweep.space import load_space
    from raygan.models import build_models
    from raygan.tasks import task_class

    counts = {"fmnist-stylegan2": (1, 329_195, 288_929), "folder-stylegan2-256": (3, 23_191_522, 24_001_089)}
    for preset, (channels, g_count, d_count) in counts.items():
        cfg = load_config(preset, None, ["data.root=/nonexistent"] if preset.startswith("folder") else [])
        m = cfg.model
        with torch.device("meta"):
            G, D = build_models(m.arch, resolution=cfg.data.resolution, channels=channels, z_dim=m.z_dim,
                                g=dict(m.g), d=dict(m.d))
        assert (sum(p.numel() for p in G.parameters()), sum(p.numel() for p in D.parameters())) == (g_count, d_count)
        assert task_class(cfg.task).default_search_space(cfg) == "stylegan2"
        space = load_space("stylegan2", cfg.to_dict())
        assert "model.g.pl_weight" in space.describe() and "model.g.mapping_layers" in space.describe()


@pytest.mark.skipif(not HAS_FMNIST, reason="Debian's dataset-fashion-mnist is not installed")
def test_fmnist_preset_trains_on_cpu(tmp_path):
    """The CPU preset as shipped (widths, path length, mixing, R1, EMA), 4 steps of 32 real images."""
    cfg = load_config("fmnist-stylegan2", None, ["optim.batch_size=32", "train.total_kimg=0.128",
                                                 "train.tick_kimg=0.128", "data.limit=512", "eval.metrics=[]",
                                                 "tracking.enabled=false", "train.device=cpu"])
    tr = Trainer(cfg, tmp_path / "run", evaluator=None)
    tr.run()
    assert tr.nimg == 128 and tr.task.state()["g_steps"] == 4
    assert float(tr.task.g_regularizer.pl_mean) > 0  # path length ran at G step 4
    assert list_checkpoints(tmp_path / "run" / "checkpoints")
    img = tr.task.G_ema(torch.randn(2, 128))
    assert img.shape == (2, 1, 32, 32) and torch.isfinite(img).all()


def test_exported_generator_loads_back_from_mlflow_and_the_run_dir(runs, tmp_path):
    """The EMA generator through MLflow's model registry (a real sqlite store) and the run dir's checkpoint:
    same weights, same w average, same images for the same (z, label), truncation included."""
    from raygan import api
    from raygan.tracking.models import log_model
    from raygan.tracking.store import get_or_create_experiment, open_client

    one, _, run_dir = runs
    exported = one.task.export()
    module = exported.module.eval()
    z, y = exported.example, torch.arange(exported.example.shape[0]) % 10
    want = module(z, y)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = open_client(uri)
    run_id = client.create_run(get_or_create_experiment(client, "sg2", uri), run_name="sg2").info.run_id
    logged = log_model(client, run_id, exported, register_as="sg2-contract")
    for how, kwargs in (("registry", {"model_uri": logged.registered, "tracking_uri": uri}),
                        ("run dir", {"run_dir": run_dir})):
        loaded, cfg, _ = api.load(**kwargs, expect_task="generate")
        assert cfg.model.arch == "stylegan2" and loaded.style_based and not loaded.training, how
        assert_bitwise_equal(params(loaded), params(module))
        assert torch.equal(loaded(z, y), want), how
        assert torch.equal(loaded(z, y, psi=0.5), module(z, y, psi=0.5)), how


# ------------------------------------------------------------------------------ DDP

def _ddp_worker(rank, world, init_file, out):
    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    cfg = load_config(None, None, [*TINY, "augment.ada=null", "ema.half_life_kimg=0"])
    t = Trainer(cfg, None, prepare_model=DDP, evaluator=None).task
    for step in range(4):  # path length (through the wrapped G, every 2nd G step) and R1 (every 3rd D step)
        t.train_step(step * 8)
    torch.save({"G": dict(t.G_plain.named_parameters()), "D": dict(t.D_plain.named_parameters()),
                "pl_mean": t.g_regularizer.pl_mean, "wrapped": type(t.G).__name__}, f"{out}.{rank}")
    tdist.destroy_process_group()


def test_two_ddp_ranks_keep_identical_weights_through_path_length(tmp_path):
    """Each rank draws its own latents, mixing cutoffs and path-length noise; the all-reduced gradients
    (the Greg phase included: every G parameter takes part in its backward) keep both ranks' weights
    bit-identical."""
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "out")), nprocs=2)
    r0, r1 = (torch.load(f"{tmp_path / 'out'}.{r}") for r in (0, 1))
    assert r0["wrapped"] == "DistributedDataParallel"
    for net in ("G", "D"):
        for k, v in r0[net].items():
            assert torch.equal(r1[net][k], v), f"{net}.{k}"
    assert float(r0["pl_mean"]) > 0 and float(r0["pl_mean"]) != float(r1["pl_mean"])  # per-rank batches differ
