"""Starting a run from another run's networks (`raygan train --init-from`, train.init_from): what
is copied and what starts fresh, an unconditional source under a class-conditional run (the first
images are the source's, for every class), FreezeD, lineage, and every bad source as one line
with the source untouched and no run dir left behind."""
import hashlib
from pathlib import Path

import pytest
import torch

from raygan import api
from raygan.config import load_config
from raygan.engine.loop import Trainer
from raygan.errors import ConfigError
from raygan.hosts.init_source import resolve_init
from raygan.models import build_models
from raygan.models.transfer import discriminator_blocks, freeze_blocks, transfer_state

from helpers import cli, isolated_dir, one_line, params

BASE = ["data.name=digits", "data.resolution=28", "model.arch=dcgan", "model.z_dim=16", "model.g={ngf: 8}",
        "model.d={ndf: 8}", "optim.batch_size=32", "ema.half_life_kimg=0.5", "train.tick_kimg=0.064",
        "train.total_kimg=0.128", "tracking.enabled=false", "eval.metrics=[]", "train.sample_ticks=100"]
RESNET = ["model.arch=resnet", "model.g={ch: 8}", "model.d={ch: 8}"]


def tiny(*extra):
    return load_config(None, None, [*BASE, *extra])


def digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A trained unconditional dcgan run (G, G_ema, D in its checkpoint)."""
    tmp = tmp_path_factory.mktemp("src")
    with isolated_dir(tmp):
        api.train(tiny(), run_dir=tmp / "A", progress=False)
    return tmp / "A"


def _trainer(cfg, init_from, **kw):
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": str(init_from)})})
    return Trainer(cfg, None, evaluator=None, init=resolve_init(cfg), **kw)


def test_init_from_copies_g_g_ema_and_d_with_fresh_optimisers_and_counters(source):
    from raygan.engine.checkpoint import latest_checkpoint, load_checkpoint

    st = load_checkpoint(latest_checkpoint(source / "checkpoints"))
    t = _trainer(tiny("seed=7"), source)
    for name in ("G", "G_ema", "D"):
        got = t.task.networks[name].state_dict()
        assert all(torch.equal(got[k], v) for k, v in st["models"][name].items()), name
    assert not torch.equal(st["models"]["G"]["convs.0.weight"], st["models"]["G_ema"]["convs.0.weight"])
    assert t.nimg == 0 and t.tick == 0
    assert all(not o.state_dict()["state"] for o in t.task.optimizers.values())  # Adam's moments start empty
    fresh = Trainer(tiny("seed=7"), None, evaluator=None)  # the same seed without --init-from: other weights
    assert not torch.equal(fresh.task.G_plain.convs[0].weight, t.task.G_plain.convs[0].weight)


@pytest.mark.parametrize("arch", [["model.arch=dcgan"], RESNET], ids=["dcgan", "resnet"])
def test_unconditional_source_in_a_conditional_run_draws_the_same_images_for_every_class(arch):
    torch.manual_seed(0)
    cfg = tiny(*arch)
    m = cfg.model
    G0, D0 = build_models(m.arch, resolution=28, channels=1, z_dim=16, g=dict(m.g), d=dict(m.d))
    with torch.no_grad():  # a "trained" source: BN affine and statistics away from their init
        for p in G0.parameters():
            p.add_(0.1 * torch.randn_like(p))
        G0(torch.randn(64, 16))
    G1, D1 = build_models(m.arch, resolution=28, channels=1, z_dim=16, num_classes=3, g=dict(m.g), d=dict(m.d))
    assert transfer_state(G1, G0.state_dict(), "G") > 0
    transfer_state(D1, D0.state_dict(), "D")
    z, y, x = torch.randn(6, 16), torch.tensor([0, 1, 2, 2, 1, 0]), torch.rand(6, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        for train in (False, True):  # running statistics (eval) and batch statistics (train)
            G0.train(train), G1.train(train)
            assert torch.allclose(G1(z, y), G0(z), atol=1e-5)
            assert torch.allclose(G1(z, (y + 1) % 3), G0(z), atol=1e-5)  # any class: the source's image
        assert torch.allclose(D1(x, y), D0(x), atol=1e-6)  # projection starts at zero
    G1.train()
    G1(z, y).square().mean().backward()  # ... and the class inputs learn: per-class BN and the label's weights
    first = G1.convs[0].weight.grad[16:] if hasattr(G1, "convs") else G1.linear.weight.grad[:, 16:]
    assert first.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for n, p in G1.named_parameters() if "gamma" in n)


SG2 = dict(z_dim=16, g=dict(w_dim=16, mapping_layers=2, fmaps=0.002, channel_max=8, mixing_prob=0.0),
           d=dict(fmaps=0.002, channel_max=8, mbstd_group=2))


def test_unconditional_stylegan2_in_a_conditional_run_draws_the_same_images_and_keeps_d_backbone():
    torch.manual_seed(0)
    G0, D0 = build_models("stylegan2", resolution=32, channels=1, **SG2)
    with torch.no_grad():  # a "trained" source: every weight and the tracked w average away from init
        for p in [*G0.parameters(), *D0.parameters()]:
            p.add_(0.1 * torch.randn_like(p))
        G0.mapping.w_avg.normal_()
    G1, D1 = build_models("stylegan2", resolution=32, channels=1, num_classes=3, **SG2)
    transfer_state(G1, G0.state_dict(), "G")
    transfer_state(D1, D0.state_dict(), "D")
    G0.eval(), G1.eval()
    z, y = torch.randn(6, 16), torch.tensor([0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        for psi in (1.0, 0.5):  # the same image for every class, truncated toward the source's w average too
            want = G0(z, psi=psi, noise_mode="const")
            assert torch.allclose(G1(z, y, psi=psi, noise_mode="const"), want, atol=1e-5)
            assert torch.allclose(G1(z, (y + 1) % 3, psi=psi, noise_mode="const"), want, atol=1e-5)
    d0, d1 = D0.state_dict(), D1.state_dict()
    assert all(torch.equal(d1[k], d0[k]) for k in d0 if k.startswith(("blocks.", "conv.", "fc.")))
    assert not torch.equal(d1["out.weight"][:1], d0["out.weight"])  # the cmap-wide head starts fresh
    G1.train()
    G1(z, y).square().mean().backward()  # the label's weights in the first mapping layer learn
    assert G1.mapping.fcs[0].weight.grad[:, 16:].abs().sum() > 0
    with pytest.raises(ConfigError, match="does not fit"):
        transfer_state(G0, G1.state_dict(), "G")  # conditional -> unconditional: refused


def test_conditional_run_from_the_source_starts_with_its_images(source):
    t = _trainer(tiny("model.conditional=true"), source)
    src = api.load(source)[0]
    z = torch.randn(10, 16)
    with torch.no_grad():
        assert torch.allclose(t.task.G_ema(z, torch.arange(10)), src(z), atol=1e-6)


def test_shapes_that_do_not_fit_name_the_tensors():
    G0, _ = build_models("dcgan", resolution=28, channels=1, z_dim=16, g={"ngf": 8})
    G1, _ = build_models("dcgan", resolution=28, channels=1, z_dim=16, g={"ngf": 16})
    with pytest.raises(ConfigError, match=r"G does not fit: shape convs\.0\.weight \(16, 16, 7, 7\) there, "
                                          r"\(16, 32, 7, 7\) here"):
        transfer_state(G1, G0.state_dict(), "G")
    G3, _ = build_models("dcgan", resolution=28, channels=1, z_dim=16, num_classes=3, g={"ngf": 8})
    with pytest.raises(ConfigError, match="only in the source: label_input.embed.weight"):
        transfer_state(G0, G3.state_dict(), "G")  # conditional -> unconditional: refused


@pytest.mark.parametrize("arch", [[], RESNET], ids=["dcgan", "resnet"])
def test_freeze_d_keeps_the_first_blocks_and_trains_the_rest(source, arch, tmp_path):
    if arch:
        cfg = tiny(*arch, "model.freeze_d=2", "train.total_kimg=0.064")
        t = Trainer(cfg, None, evaluator=None)
    else:
        t = _trainer(tiny("model.freeze_d=1", "train.total_kimg=0.064"), source)
    k = t.cfg.model.freeze_d
    blocks = discriminator_blocks(t.task.D_plain)
    before = [params(b) for b in blocks]
    t.run()
    after = [params(b) for b in blocks]
    for i, (a, b) in enumerate(zip(before, after)):
        same = all(torch.equal(a[n], b[n]) for n in a if "weight" in n or "bias" in n)
        assert same == (i < k), f"block {i}"


def test_freeze_d_beyond_the_blocks_and_without_blocks_is_one_line(in_tmp, capsys):
    code, _, err = cli(capsys, "train", "--preset", "dcgan", "--set", "model.freeze_d=9", "--dry-run")
    one_line(code, err, "model.freeze_d 9: the 'dcgan' discriminator has 3 blocks")  # the dry-run checks it too
    _, D = build_models("dcgan", resolution=28, channels=1, z_dim=16)
    with pytest.raises(ConfigError, match="model.freeze_d 3: the 'dcgan' discriminator has 2 blocks"):
        freeze_blocks(D, 3)
    with pytest.raises(ConfigError, match="does not name its discriminator blocks"):
        freeze_blocks(torch.nn.Linear(2, 2), 1)


@pytest.fixture(scope="module")
def repair_source(tmp_path_factory):
    """A trained run of another task (repair)."""
    tmp = tmp_path_factory.mktemp("repair")
    cfg = load_config(None, None, [
        "task=repair", "data.name=digits", "data.resolution=28", "model.arch=unet", "model.g={ngf: 8}",
        "model.d={ndf: 8}", "optim.batch_size=16", "repair.degradations=noise:sigma=0.1..0.4",
        "train.tick_kimg=0.016", "train.total_kimg=0.016", "eval.metrics=[]", "tracking.enabled=false"])
    with isolated_dir(tmp):
        Trainer(cfg, tmp / "R", evaluator=None).run()
    return tmp / "R"


def test_bad_sources_are_one_line_and_leave_the_source_untouched(source, repair_source, in_tmp, capsys):
    args = []
    for o in BASE:
        args += ["--set", o]
    before = digest(source), digest(repair_source)
    cases = [
        (["--init-from", "nowhere"], "no run there"),
        (["--init-from", str(source), "--set", "model.arch=resnet", "--set", "model.g={ch: 8}", "--set",
          "model.d={ch: 8}"], "another architecture (model.arch: 'dcgan' there, 'resnet' here"),
        (["--init-from", str(source), "--set", "model.z_dim=8"], "model.z_dim: 16 there, 8 here"),
        (["--init-from", str(repair_source)], "it is a 'repair' run; this run trains 'generate'"),
        (["--init-from", str(repair_source), "--set", "task=repair", "--set", "model.arch=unet", "--set", "model.g={}",
          "--set", "model.d={}", "--set", "ema.half_life_kimg=0"], "train.init_from (--init-from): task 'repair' "
                                                                   "does not use it"),
        (["--init-from", str(source / "checkpoints"), "--set", "data.channels=3"], "no run there"),
        (["--init-from", str(source), "--set", "data.channels=3"], "the source made 1-channel images"),
        (["--init-from", str(source), "--resume"], "--init-from starts a new run"),
    ]
    for extra, pattern in cases:
        code, _, err = cli(capsys, "train", "--run-dir", "new", "--no-progress", *args, *extra)
        one_line(code, err, pattern)
        assert not (in_tmp / "new").exists()
    assert (digest(source), digest(repair_source)) == before


def test_lineage_in_params_tags_and_record_and_a_registered_model_as_source(source, in_tmp, capsys):
    import mlflow

    from raygan.engine.checkpoint import latest_checkpoint, load_checkpoint

    cfg = load_config(None, None, [*(o for o in BASE if not o.startswith("tracking")), "train.total_kimg=0.064",
                                   f"tracking.uri=sqlite:///{in_tmp / 'mlflow.db'}", "tracking.register_model=ft"])
    summary = api.train(cfg, run_dir=in_tmp / "B", progress=False, init_from=str(source))
    assert summary["model_uri"] == "models:/ft/1"
    run = mlflow.tracking.MlflowClient(summary["tracking_uri"]).get_run(summary["mlflow_run_id"])
    assert run.data.params["train.init_from"] == str(source)
    assert run.data.tags["raygan.init_from"] == str(source)
    assert run.data.tags["raygan.init_from_checkpoint"].endswith("checkpoints/ckpt-0000000128")
    from raygan.hosts.runstore import RunStore

    record = RunStore(in_tmp / "B").read_record()
    assert record["init_from"] == str(source)
    capsys.readouterr()
    code, _, err = cli(capsys, "train", "--run-dir", str(in_tmp / "B"), "--resume", "--init-from", str(source))
    one_line(code, err, "--init-from starts a new run")
    # the registered model as a source: its G (the EMA one) for G and G_ema, D from the run dir that logged it
    init = resolve_init(cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": "models:/ft/1"})}))
    b = load_checkpoint(latest_checkpoint(in_tmp / "B" / "checkpoints"))["models"]
    for mine, theirs in (("G", "G_ema"), ("G_ema", "G_ema"), ("D", "D")):
        assert all(torch.equal(init.networks[mine][k], v) for k, v in b[theirs].items()), mine
    assert init.lineage["raygan.init_from_run_id"] == summary["mlflow_run_id"]
    assert init.lineage["raygan.init_from_checkpoint"].startswith(str(in_tmp / "B" / "checkpoints"))
