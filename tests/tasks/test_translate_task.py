"""Task `translate` (CycleGAN): exact resume with pools and lr decay, losses by hand, the lr
schedule reaching the optimisers, export/load/translate both ways, metrics and their baselines,
bad configs refused before data, two DDP ranks equal to one process with the double batch."""
import copy
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from raygan.config import load_config
from raygan.engine.checkpoint import list_checkpoints
from raygan.errors import CheckpointError, ConfigError, DataError
from raygan.metrics.registry import direction, kind
from raygan.tasks.translate.cycle import lr_factor
from raygan.tasks.loading import load_model
from raygan.tasks.translate import TranslateTask
from raygan.tasks.translate.net import CycleTranslator
from raygan.tasks.translate.eval import TranslateEvaluator
from raygan.tasks.translate.infer import translate_path
from raygan.engine.loop import Trainer

from conftest import needs_fmnist
from helpers import Preempted, StopAt, assert_bitwise_equal, params

pytestmark = needs_fmnist
BATCH = 8


def tiny(*extra):
    return load_config(None, None, [
        "task=translate", "data.name=fashion-mnist", "translate.domain_a=sneaker", "translate.domain_b=ankle boot",
        "data.resolution=28", "data.limit=64", "model.arch=resnet-translator", "model.g={ngf: 4, n_blocks: 1}",
        "model.d={ndf: 4, norm: instance}", "loss.name=lsgan", f"optim.batch_size={BATCH}",
        "translate.pool_size=12", "translate.lr_decay_start=0.25", "train.total_kimg=0.128",
        "train.tick_kimg=0.032", "train.snapshot_ticks=1", "train.eval_ticks=1", "train.sample_ticks=2",
        "tracking.enabled=false",
        "eval.metrics=[fid, domain-acc, cycle-psnr]", "eval.num_samples=24", "eval.batch_size=16", *extra])


class RecordingEvaluator:
    """A real metric pass would be slow here; this one still runs the translator it is given
    (as the real evaluator does, without any RNG) to prove evaluation cannot disturb training."""

    def __call__(self, net, n):
        with torch.no_grad():
            y = net(torch.zeros(2, 1, 28, 28), "a2b")
        return {"fid": float(y.abs().mean())}, {"num_samples": n}


# ------------------------------------------------------------------------------ resume


def test_exact_resume_is_bitwise_including_pools_and_lr_decay_and_spoiled_rng_breaks_it(tmp_path):
    """2T in one go vs a 2T run preempted at T and resumed (lr decay starts at T/2); then the
    control: the same resume with the restored RNG spoiled differs."""
    half, total = 64, 128
    one = Trainer(tiny(), tmp_path / "one", evaluator=RecordingEvaluator())
    init = params(one.task.G_AB_plain)
    one.run()
    first = Trainer(tiny(), tmp_path / "two", reporter=StopAt(half), evaluator=RecordingEvaluator())
    with pytest.raises(Preempted):
        first.run()
    assert first.nimg == half and len(first.task.pool_a) == 12  # pools full at the resume point
    ckpt = list_checkpoints(tmp_path / "two" / "checkpoints")[-1]
    resumed = []
    for spoil in (False, True):
        second = Trainer(tiny(), tmp_path / f"resumed-{spoil}", evaluator=RecordingEvaluator())
        second.load(ckpt)
        assert 0 < lr_factor(half, total, 0.25) < 1  # the decayed lr is re-applied on resume
        assert second.task.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * lr_factor(half, total, 0.25))
        assert_bitwise_equal(second.task.pool_a.state_dict(), first.task.pool_a.state_dict())
        if spoil:
            torch.manual_seed(12345)  # spoil the restored RNG (it drives the pools' choices)
        second.run()
        resumed.append(second)
    second, spoiled = resumed
    assert one.nimg == second.nimg == total
    for name in ("G_AB", "G_BA", "D_A", "D_B"):
        assert_bitwise_equal(params(one.task.networks[name]), params(second.task.networks[name]))
    for pool in ("pool_a", "pool_b"):
        assert_bitwise_equal(getattr(one.task, pool).state_dict(), getattr(second.task, pool).state_dict())
    assert one.task.sampler_b.state_dict() == second.task.sampler_b.state_dict()
    assert one.task.opt_d.param_groups[0]["lr"] == second.task.opt_d.param_groups[0]["lr"] < 2e-4
    assert any(not torch.equal(a, b) for a, b in
               zip(params(one.task.D_A_plain).values(), params(spoiled.task.D_A_plain).values()))
    # and it trained: G_AB left its initialisation
    assert any(not torch.equal(a, b) for a, b in zip(init.values(), params(one.task.G_AB_plain).values()))


# ------------------------------------------------------------------------------ schedule and losses


def test_lr_factor_reaches_both_optimisers_at_chosen_kimg():
    t = Trainer(tiny("train.total_kimg=1", "optim.g_lr=0.0003", "optim.d_lr=0.0001",
                     "translate.lr_decay_start=0.5"), None, evaluator=None).task
    for nimg, factor in ((0, 1.0), (400, 1.0), (500, 1.0), (750, 0.5), (992, 0.016)):
        t.train_step(nimg)
        assert t.opt_g.param_groups[0]["lr"] == pytest.approx(3e-4 * factor)
        assert t.opt_d.param_groups[0]["lr"] == pytest.approx(1e-4 * factor)
        assert t.end_tick(nimg)["lr_factor"] == pytest.approx(factor)


def test_reported_losses_equal_hand_computed_values():
    t = Trainer(tiny("translate.lambda_cycle=7", "translate.lambda_identity=0.3"), None, evaluator=None).task
    ia, ib = copy.deepcopy(t.sampler_a).next(), copy.deepcopy(t.sampler_b).next()
    a = t.data_a.images[ia].float() / 127.5 - 1
    b = t.data_b.images[ib].float() / 127.5 - 1
    G_AB, G_BA, D_A, D_B = (copy.deepcopy(t.networks[k]) for k in ("G_AB", "G_BA", "D_A", "D_B"))
    with torch.no_grad():
        fake_b, fake_a = G_AB(a), G_BA(b)
        cyc_a = (G_BA(fake_b) - a).abs().mean()
        cyc_b = (G_AB(fake_a) - b).abs().mean()
        idt_a, idt_b = (G_BA(a) - a).abs().mean(), (G_AB(b) - b).abs().mean()
        adv_ab = 0.5 * (D_B(fake_b) - 1).square().mean()  # lsgan's g_loss
        adv_ba = 0.5 * (D_A(fake_a) - 1).square().mean()
        total = adv_ab + adv_ba + 7 * (cyc_a + cyc_b) + 0.3 * 7 * (idt_a + idt_b)
        # D sees the same (pre-update) fakes: an empty pool returns the batch as it fills
        d_a = 0.5 * 0.5 * ((D_A(a) - 1).square().mean() + D_A(fake_a).square().mean())
        d_b = 0.5 * 0.5 * ((D_B(b) - 1).square().mean() + D_B(fake_b).square().mean())
    t.train_step(0)
    s = t.read_stats()
    for key, want in (("loss_cycle_a", cyc_a), ("loss_cycle_b", cyc_b), ("loss_idt_a", idt_a),
                      ("loss_idt_b", idt_b), ("g_adv_a2b", adv_ab), ("g_adv_b2a", adv_ba), ("loss_g", total),
                      ("loss_d_a", d_a), ("loss_d_b", d_b), ("loss_d", d_a + d_b)):
        assert s[key] == pytest.approx(float(want), rel=1e-5), key
    assert len(t.pool_a) == len(t.pool_b) == BATCH


# ------------------------------------------------------------------------------ export and inference


def _save_png(path, arr):
    Image.fromarray(arr).save(path)
    return path


def test_exported_model_loads_and_translates_a_larger_image_both_ways(tmp_path, in_tmp):
    tr = Trainer(tiny("train.total_kimg=0.032", "eval.metrics=[cycle-psnr]"), tmp_path / "run")
    tr.run()
    ckpt = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    loaded = load_model(ckpt, expect_task="translate")
    assert isinstance(loaded.module, CycleTranslator) and loaded.network == "G_AB+G_BA"
    x = tr.task.grid_a
    for d in ("a2b", "b2a"):
        assert torch.equal(loaded.module(x, d), tr.task.translator.eval()(x, d))
    big = torch.rand(2, 1, 56, 56) * 2 - 1  # twice the training resolution
    assert loaded.module(big, "a2b").shape == loaded.module(big, "b2a").shape == (2, 1, 56, 56)
    exported = tr.task.export()
    assert exported.spec["network"] == "G_AB+G_BA" and exported.module(exported.example).shape == (4, 1, 28, 28)
    # files: a 58 px grey image (not a multiple of 4), a folder, bad direction, wrong channels
    rng = np.random.default_rng(0)
    img = _save_png(tmp_path / "in.png", rng.integers(0, 255, (58, 58), dtype=np.uint8))
    for d in ("a2b", "b2a"):
        (out,) = translate_path(loaded.module, img, tmp_path / f"out-{d}.png", d)
        assert np.asarray(Image.open(out)).shape == (58, 58)
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    _save_png(tmp_path / "dir" / "sub" / "x.png", rng.integers(0, 255, (28, 28), dtype=np.uint8))
    written = translate_path(loaded.module, tmp_path / "dir", tmp_path / "dir-out", "b2a")
    assert [p.relative_to(tmp_path / "dir-out").as_posix() for p in written] == ["sub/x.png"]
    with pytest.raises(ConfigError, match="direction must be one of a2b, b2a"):
        translate_path(loaded.module, img, tmp_path / "o.png", "ab")
    rgb = _save_png(tmp_path / "rgb.png", rng.integers(0, 255, (28, 28, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="3 channels") as e:
        translate_path(loaded.module, rgb, tmp_path / "o.png", "a2b")
    assert "\n" not in str(e.value) and not (tmp_path / "o.png").exists()


def test_a_generation_checkpoint_is_refused(tmp_path):
    cfg = load_config(None, None, ["data.name=fashion-mnist", "data.limit=64", "data.resolution=28",
                                   "model.arch=dcgan", "model.z_dim=8",
                                   "model.g={ngf: 4}", "model.d={ndf: 4}", "optim.batch_size=32",
                                   "train.total_kimg=0.032", "train.tick_kimg=0.032", "tracking.enabled=false"])
    Trainer(cfg, tmp_path / "gen", evaluator=None).run()
    ckpt = list_checkpoints(tmp_path / "gen" / "checkpoints")[-1]
    with pytest.raises(CheckpointError, match="is a 'generate' model; this command needs a 'translate' model"):
        load_model(ckpt, expect_task="translate")
    with pytest.raises(ConfigError, match="not a translation checkpoint"):
        TranslateTask.exported_state({"G": {}, "D": {}})


# ------------------------------------------------------------------------------ metrics


def test_metric_names_kinds_and_directions():
    assert kind("domain-acc") == kind("cycle-psnr") == kind("fid-a2b") == "translation"
    assert direction("fid_a2b") == direction("fid_b2a") == "min"
    assert direction("domain_acc") == direction("cycle_psnr_a") == direction("cycle_ssim") == "max"
    with pytest.raises(ConfigError):
        direction("baseline_fid_a2b")  # a constant of the protocol, never "best"


def test_doing_nothing_scores_exactly_the_baseline(in_tmp):
    cfg = tiny("eval.num_samples=40")
    ev = TranslateEvaluator(cfg, torch.device("cpu"), channels=1)
    values, protocol = ev(CycleTranslator(nn.Identity(), nn.Identity()), 40)
    for d in ("a2b", "b2a"):
        assert values[f"fid_{d}"] == pytest.approx(values[f"baseline_fid_{d}"], rel=1e-9)
        assert values[f"domain_acc_{d}"] == values[f"baseline_domain_acc_{d}"] < 0.2
    exact = 10 * math.log10(255**2 * 28 * 28)  # an exact 8-bit match: one grey level off at one pixel
    assert values["baseline_fid"] > 5 and values["cycle_psnr_a"] == pytest.approx(exact) and values["cycle_ssim_b"] == 1
    assert protocol["num_samples_a"] == 40 and protocol["target_class"] == {"a2b": 9, "b2a": 7}
    assert protocol["reference_count_b"] == 1000  # the whole test class is the reference


def test_a_patch_trained_translator_is_scored_on_full_size_or_centre_crops_and_says_which(in_tmp):
    """data.crop 16: the default scores whole 28 px test images; translate.eval_size crop their fixed
    16 px centres (cycle-PSNR of the identity: the exact-match value of a 16 x 16 image)."""
    for extra, side, note in (([], 28, "full-size"), (["translate.eval_size=crop"], 16, "centre 16px crops")):
        cfg = tiny("data.crop=16", "eval.metrics=[cycle-psnr]", "eval.num_samples=8", *extra)
        ev = TranslateEvaluator(cfg, torch.device("cpu"), channels=1)
        values, protocol = ev(CycleTranslator(nn.Identity(), nn.Identity()), 8)
        assert ev.test["a"].shape[-2:] == (side, side) and protocol["images"] == note
        assert values["cycle_psnr_a"] == pytest.approx(10 * math.log10(255**2 * side * side))


# ------------------------------------------------------------------------------ config checks


@pytest.mark.parametrize("extra, message", [
    (["translate.domain_b=boots"], "unknown fashion-mnist class 'boots'"),
    (["translate.domain_b=Sneaker"], "the same fashion-mnist class 'Sneaker'"),
    (["model.arch=no-such-net"], "unknown image-to-image generator 'no-such-net'"),
    (["model.g={ngf: 4, width: 3}"], "generator 'resnet-translator'"),
    (["model.d_arch=nope"], "unknown image-to-image discriminator 'nope'"),
    (["eval.metrics=[kid]"], "'kid' is not computed for task 'translate'"),
    (["translate.domain_a=null"], "needs two classes"),
    (["data.domain_a=sneaker"], "config: data.domain_a: moved to translate.domain_a"),
    (["data.name=folder", "translate.domain_a=null", "translate.domain_b=null", "eval.metrics=[domain-acc]"],
     "domain_acc needs data.name fashion-mnist"),
])
def test_bad_configs_fail_with_one_line_before_any_data_is_read(monkeypatch, extra, message):
    import raygan.data.domains as domains
    import raygan.data.sources as sources

    def no_data(*a, **k):
        raise AssertionError("data was read")

    monkeypatch.setattr(sources, "load_dataset", no_data)
    monkeypatch.setattr(domains, "load_dataset", no_data)
    with pytest.raises(ConfigError, match=message) as e:
        tiny(*extra)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------ DDP


def _ddp_worker(rank, world, init_file, out):
    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from raygan.tasks.translate.cycle import ImagePool

    torch.set_num_threads(1)
    if world > 1:
        tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    cfg = tiny("translate.pool_size=0", "eval.batch_size=7")  # no pool: one process is the same maths
    t = Trainer(cfg, None, prepare_model=DDP if world > 1 else None, evaluator="auto").task
    for step in range(3):
        t.train_step(step * BATCH)
    probe = torch.linspace(-1, 1, 2 * 28 * 28).view(2, 1, 28, 28)
    with torch.no_grad():
        outputs = {k: n(probe) for k, n in t.networks.items()}
    values, _ = t.evaluate(23)
    t.pool_b = ImagePool(6)  # per-rank pools, collected on rank 0 at the tick
    t.train_step(3 * BATCH)
    t.end_tick(4 * BATCH)
    mine = t.pool_b.state_dict()
    gathered = [mine]
    if world > 1:
        gathered = [None] * world
        tdist.all_gather_object(gathered, mine)
    if rank == 0:
        torch.save({"outputs": outputs, "values": values, "wrapped": type(t.G_AB).__name__,
                    "state_pools": t.state()["pools"], "rank_pools": gathered}, out)
    if world > 1:
        tdist.destroy_process_group()


def test_two_ranks_train_and_evaluate_like_one_with_the_double_batch(tmp_path, in_tmp):
    """Networks compared by their outputs: a conv bias right before a (non-affine) instance
    norm has no effect and a zero gradient up to rounding, which Adam scales up, so such
    parameters differ between one and two processes while every network computes the same."""
    import torch.multiprocessing as mp

    _ddp_worker(0, 1, None, tmp_path / "one.pt")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), tmp_path / "two.pt"), nprocs=2)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert two["wrapped"] == "DistributedDataParallel"
    for net, y in one["outputs"].items():
        assert torch.allclose(two["outputs"][net], y, rtol=1e-4, atol=1e-5), net
    for k, v in one["values"].items():  # shards gathered in index order: the same numbers
        assert two["values"][k] == pytest.approx(v, rel=1e-4), k
    # rank 0's checkpoint state holds every rank's pool
    assert len(two["state_pools"]) == 2
    for r in range(2):
        assert two["state_pools"][r]["b"]["count"] == 4
        assert torch.equal(two["state_pools"][r]["b"]["images"], two["rank_pools"][r]["images"])
    assert not torch.equal(two["state_pools"][0]["b"]["images"], two["state_pools"][1]["b"]["images"])


# ------------------------------------------------------------------------------ presets


def test_presets_describe_themselves_and_folder_a2b_trains_on_the_reference_layout(tmp_path, in_tmp):
    from importlib import resources

    for name in ("fmnist-sneaker2boot", "folder-a2b"):
        text = (resources.files("raygan") / "presets" / f"{name}.yaml").read_text()
        assert text.startswith("# ") and load_config(name).task == "translate"
    rng = np.random.default_rng(0)
    for sub, tint in (("trainA", (1.0, 0.3, 0.3)), ("trainB", (0.3, 0.3, 1.0)), ("testA", (1.0, 0.3, 0.3)),
                      ("testB", (0.3, 0.3, 1.0))):
        (tmp_path / "data" / sub).mkdir(parents=True)
        for i in range(6):
            img = (rng.random((40, 48, 1)) * np.array(tint) * 255).astype(np.uint8)  # cropped, resized to 64
            _save_png(tmp_path / "data" / sub / f"{i}.png", img)
    cfg = load_config("folder-a2b", None, [f"data.root={tmp_path / 'data'}", "tracking.enabled=false",
                                           "train.total_kimg=0.008", "train.tick_kimg=0.004"])
    tr = Trainer(cfg, tmp_path / "run")
    summary = tr.run()
    assert tr.task.domain_names == ["trainA", "trainB"] and tr.task.channels == 3
    assert {"fid_a2b", "baseline_fid_b2a", "cycle_psnr_a"} <= set(summary["final"])
    assert (tmp_path / "run" / "samples").is_dir()


def test_loss_options_and_a_relativistic_loss_reach_the_cycle_step(tmp_path):
    """loss.kwargs reach the built loss; ragan's G side gets each D's logits on that D's reals."""
    cfg = tiny("loss.name=ns-smooth", "loss.kwargs={real_target: 0.8}", "train.total_kimg=0.016")
    t = Trainer(cfg, tmp_path / "s", evaluator=None)
    assert t.task.loss.real_target == 0.8
    t = Trainer(tiny("loss.name=ragan", "train.total_kimg=0.016"), tmp_path / "r", evaluator=None)
    seen = []
    g_loss = t.task.loss.g_loss

    def recording(fake_logits, real_logits=None):
        seen.append(real_logits is not None and real_logits.shape == fake_logits.shape)
        return g_loss(fake_logits, real_logits)

    t.task.loss.g_loss = recording
    t.run()
    assert seen == [True, True] * 2  # two steps, one term per direction
    with pytest.raises(ConfigError, match="loss 'ragan' has no option 'real_target'; valid: none"):
        TranslateTask.check_config(tiny("loss.name=ragan", "loss.kwargs={real_target: 0.8}"))
