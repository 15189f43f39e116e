"""Task `repair`: exact resume, the L1-only baseline, the evaluator against scikit-image, the fixed
evaluation degradation, exported models loaded and applied, bad configs and bad files."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from raygan.config import load_config, preset_names
from raygan.engine import dist
from raygan.engine.checkpoint import list_checkpoints
from raygan.errors import CheckpointError, ConfigError, RayganError
from raygan.losses import RelativisticAverage
from raygan.metrics.registry import METRICS, direction, kind
from raygan.tasks.loading import load_model
from raygan.tasks.repair.eval import Evaluator, EvalSet
from raygan.tasks.repair.infer import fill_value, repair_path
from raygan.tasks.repair.net import build_generator
from raygan.engine.loop import Trainer

from helpers import repair_tiny as tiny
from helpers import params


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def nets(task):
    return {"G": params(task.G_plain), "D": params(task.D_plain), "G_ema": params(task.G_ema)}


class Recording:
    """Draws from the network it is given, as the real evaluator does, without touching the training RNG."""

    def __call__(self, G, n):
        with torch.no_grad():
            G.eval()
            y = G(torch.zeros(2, 1, 28, 28))
        return {"psnr": float(y.abs().mean())}, {"num_samples": n}


def test_metrics_are_registered_with_kind_and_direction():
    for m in ("psnr", "ssim", "psnr_masked"):
        assert kind(m) == "restoration" and direction(m) == "max" and m in METRICS


# ------------------------------------------------------------------------------ resume


def test_exact_resume_is_bitwise(tmp_path):
    T = 0.256  # 16 steps of 16 images, two ticks; the adversarial term starts at 0.064
    one = Trainer(tiny(f"train.total_kimg={2 * T}"), tmp_path / "one", evaluator=Recording())
    one.run()
    first = Trainer(tiny(f"train.total_kimg={T}"), tmp_path / "two", evaluator=Recording())
    first.run()
    second = Trainer(tiny(f"train.total_kimg={2 * T}"), tmp_path / "two", evaluator=Recording())
    second.load(list_checkpoints(tmp_path / "two" / "checkpoints")[-1])
    assert second.nimg == first.nimg == 256
    second.run()
    a, b = nets(one.task), nets(second.task)
    for k in a:
        assert same(a[k], b[k]), k
    assert torch.equal(one.task.deg_gen.get_state(), second.task.deg_gen.get_state())
    assert one.task.step.d_steps == second.task.step.d_steps == 28  # no D step during the warm-up
    fresh = Trainer(tiny("train.total_kimg=1"), None, evaluator=None)
    assert not same(nets(fresh.task)["D"], a["D"]) and not same(nets(fresh.task)["G"], a["G"])


def test_resume_with_a_spoiled_degradation_stream_differs(tmp_path):
    """Control for the test above: the degradation generator's state is what makes it exact."""
    T = 0.128
    one = Trainer(tiny(f"train.total_kimg={2 * T}"), tmp_path / "one", evaluator=None)
    one.run()
    Trainer(tiny(f"train.total_kimg={T}"), tmp_path / "two", evaluator=None).run()
    second = Trainer(tiny(f"train.total_kimg={2 * T}"), tmp_path / "two", evaluator=None)
    second.load(list_checkpoints(tmp_path / "two" / "checkpoints")[-1])
    second.task.deg_gen.manual_seed(12345)
    second.run()
    assert not same(params(one.task.G_plain), params(second.task.G_plain))


def test_adv_weight_zero_is_the_l1_baseline_with_d_untouched():
    t = Trainer(tiny("repair.adv_weight=0", "train.total_kimg=0.064"), None, evaluator=None)
    g0, d0 = params(t.task.G_plain), params(t.task.D_plain)
    t.run()
    assert same(d0, params(t.task.D_plain))  # never trained, not even its spectral-norm vectors
    assert not t.task.opt_d.state and t.task.step.d_steps == 0
    assert not same(g0, params(t.task.G_plain))
    assert "loss_d" not in t.task.stats.names and "adv" not in t.task.stats.names
    assert t.task.applied()["applied_adv_weight"] == 0.0
    # during the L1 warm-up D is not trained either, and its statistics are not reported as zeros
    w = Trainer(tiny("repair.adv_warmup_kimg=0.032"), None, evaluator=None).task
    d0 = params(w.D_plain)
    w.train_step(0)
    assert same(d0, params(w.D_plain)) and set(w.read_stats()) == {"loss_g", "l1"}
    w.train_step(32)
    assert not same(d0, params(w.D_plain)) and {"loss_d", "adv", "d_real"} <= set(w.read_stats())


# ------------------------------------------------------------------------------ evaluation


def _eval_cfg(degradations, metrics, arch="unet", res=28):
    return tiny(f"repair.degradations={degradations}", f"eval.metrics=[{metrics}]", f"model.arch={arch}",
                f"data.resolution={res}")


def _net(cfg, spec, seed=0):
    torch.manual_seed(seed)
    return build_generator(cfg, spec)


def test_evaluator_equals_scikit_image_on_the_repaired_images():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    cfg = _eval_cfg("noise:sigma=0.3", "psnr,ssim")
    spec = {"channels": 1, "scale": 1, "mask": False}
    G = _net(cfg, spec)
    values, protocol = Evaluator(cfg, torch.device("cpu"), spec)(G, 20)
    test = EvalSet(cfg, 1)
    deg, _ = test.degraded(0, 20)
    with torch.no_grad():
        rep = ((G.eval()(deg * 2 - 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    p, s = [], []
    for r, c in zip(rep[:, 0].numpy() / 255.0, test.clean[:20, 0].numpy() / 255.0):
        p.append(peak_signal_noise_ratio(c, r, data_range=1))
        s.append(structural_similarity(c, r, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=1))
    assert values["psnr"] == pytest.approx(np.mean(p), abs=1e-6)
    assert values["ssim"] == pytest.approx(np.mean(s), abs=1e-6)
    assert protocol["num_samples"] == 20 and protocol["degradations"]["seed"] == cfg.repair.eval_seed
    assert protocol["border_crop"] == 0 and protocol["colour"] == "grey" and "exact_match" in protocol


def test_evaluator_crops_sr_borders_and_scores_holes():
    from skimage.metrics import peak_signal_noise_ratio

    cfg = _eval_cfg("downsample:factor=2", "psnr", arch="srresnet", res=32)
    spec = {"channels": 1, "scale": 2, "mask": False}
    G = _net(cfg, spec)
    values, protocol = Evaluator(cfg, torch.device("cpu"), spec)(G, 12)
    test = EvalSet(cfg, 1)
    deg, _ = test.degraded(0, 12)
    assert deg.shape[-1] == 16
    with torch.no_grad():
        rep = ((G.eval()(deg * 2 - 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)[:, 0].numpy() / 255.0
    clean = test.clean[:12, 0].numpy() / 255.0
    p = [peak_signal_noise_ratio(c[2:-2, 2:-2], r[2:-2, 2:-2], data_range=1) for c, r in zip(clean, rep)]
    assert values["psnr"] == pytest.approx(np.mean(p), abs=1e-6) and protocol["border_crop"] == 2

    cfg = _eval_cfg("box:area=0.2..0.3", "psnr,psnr_masked", arch="inpaint-unet")
    spec = {"channels": 1, "scale": 1, "mask": True}
    G = _net(cfg, spec)
    values, _ = Evaluator(cfg, torch.device("cpu"), spec)(G, 10)
    test = EvalSet(cfg, 1)
    deg, mask = test.degraded(0, 10)
    with torch.no_grad():
        rep = ((G.eval()(deg * 2 - 1, mask) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    by_hand = []
    for r, c, m in zip(rep.double() / 255, test.clean[:10].double() / 255, mask.bool()):
        mse = ((r - c)[m.expand_as(r)] ** 2).mean().item()
        by_hand.append(10 * math.log10(1 / mse))
    assert values["psnr_masked"] == pytest.approx(np.mean(by_hand), abs=1e-9)
    assert values["psnr_masked"] < values["psnr"]  # the known pixels are kept exactly


def test_eval_degradation_is_fixed_across_instances_and_shards(monkeypatch):
    cfg = _eval_cfg("blur:sigma=0.5..1.5,noise:sigma=0.05..0.3,strokes", "psnr")
    a, b = EvalSet(cfg, 1), EvalSet(cfg, 1)
    full, full_mask = a.degraded(0, 30)
    for world in (2, 3, 4):
        parts, masks = [], []
        for rank in range(world):
            monkeypatch.setattr(dist, "rank", lambda r=rank: r)
            monkeypatch.setattr(dist, "world_size", lambda w=world: w)
            start, stop, _ = Evaluator.shard(None, 30)
            d, m = EvalSet(cfg, 1).degraded(start, stop)
            parts.append(d)
            masks.append(m)
        assert torch.equal(torch.cat(parts), full) and torch.equal(torch.cat(masks), full_mask)
    d, m = b.degraded(10, 20)
    assert torch.equal(d, full[10:20]) and torch.equal(m, full_mask[10:20])
    other = EvalSet(tiny("repair.degradations=blur:sigma=0.5..1.5,noise:sigma=0.05..0.3,strokes",
                         "repair.eval_seed=7"), 1)
    assert not torch.equal(other.degraded(0, 30)[0], full)


# ------------------------------------------------------------------------------ export and loading


def test_exported_generator_loads_and_repairs_larger_images(tmp_path):
    t = Trainer(tiny("train.total_kimg=0.032", "repair.degradations=noise:sigma=0.2,box"), tmp_path / "r",
                evaluator=None)
    t.run()
    ckpt = list_checkpoints(tmp_path / "r" / "checkpoints")[-1]
    loaded = load_model(ckpt, expect_task="repair")
    assert loaded.network == "G_ema" and loaded.model_spec == {"channels": 1, "scale": 1, "mask": True}
    G = loaded.module
    assert same(params(G), params(t.task.G_ema))
    x = torch.rand(2, 1, 45, 61) * 2 - 1
    mask = (torch.rand(2, 1, 45, 61) > 0.7).float()
    y = G(x, mask)
    assert y.shape == x.shape and torch.equal(y, G(torch.cat([x, mask], 1)))  # one-tensor form
    ex = t.task.export()
    assert ex.example.shape[1] == 2 and ex.spec["task"] == "repair"


def test_loading_a_generation_checkpoint_as_repair_fails_in_one_line(tmp_path):
    cfg = load_config(None, None, ["data.name=digits", "data.resolution=28", "model.arch=mlp", "model.z_dim=8",
                                   "model.g={hidden: [16]}", "model.d={hidden: [16]}", "optim.batch_size=32",
                                   "train.total_kimg=0.032", "tracking.enabled=false"])
    Trainer(cfg, tmp_path / "g", evaluator=None).run()
    with pytest.raises(CheckpointError) as e:
        load_model(list_checkpoints(tmp_path / "g" / "checkpoints")[-1], expect_task="repair")
    assert "'generate' model" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("extra,pattern", [
    (["model.arch=nope"], "unknown image-to-image generator 'nope'; choose one of: .*unet"),
    (["data.resolution=30", "repair.degradations=downsample:factor=4", "model.arch=srresnet"],
     "x4 does not divide a 30-px image"),
    (["repair.degradations=fog:amount=2"], "unknown degradation 'fog'; choose one of: .*noise"),
    (["model.d_arch=nope"], "unknown image-to-image discriminator 'nope'"),
    (["model.arch=srresnet"], "super-resolution generator, but repair.degradations has no downsample"),
    (["eval.metrics=[psnr_masked]"], "psnr_masked needs a mask degradation"),
    (["model.g={ngf: 8, widht: 3}"], "model.g: unknown option\\(s\\) widht"),
    (["optim.n_critic=2"], "one D step per G step"),
])
def test_bad_configs_fail_in_one_line_before_data(extra, pattern):
    # reading the (missing) folder would raise DataError: a ConfigError proves no data was read
    with pytest.raises(ConfigError, match=pattern) as e:
        tiny("data.name=folder", "data.root=/nonexistent", *extra)
    assert "\n" not in str(e.value)


def test_repair_presets_validate():
    repair = [n for n in preset_names() if load_config(n).task == "repair"]
    assert {"fmnist-denoise", "fmnist-inpaint", "fmnist-sr4", "fmnist-sr2", "cifar10-sr4", "cifar10-inpaint",
            "folder-repair"} <= set(repair)
    assert load_config("fmnist-sr4").repair.degradations and load_config("fmnist-denoise").repair.adv_weight > 0


# ------------------------------------------------------------------------------ repairing files


def _save(path, array):
    Image.fromarray(array).save(path)
    return path


def test_repair_files_and_folders(tmp_path):
    cfg = tiny("repair.degradations=noise:sigma=0.2,box", "model.arch=inpaint-unet")
    G = _net(cfg, {"channels": 1, "scale": 1, "mask": True})
    rng = np.random.default_rng(0)
    img = _save(tmp_path / "a.png", rng.integers(0, 255, (40, 52), dtype=np.uint8))
    m = np.zeros((40, 52), np.uint8)
    m[5:15, 10:30] = 255
    mask = _save(tmp_path / "a-mask.png", m)
    assert G.fill == fill_value(cfg) == 0.5  # holes are filled as in training
    (out,) = repair_path(G, img, tmp_path / "out.png", mask=mask)
    y = np.asarray(Image.open(out))
    assert y.shape == (40, 52)
    keep = m == 0  # inpaint-unet's known pixels survive (up to 8-bit rounding)
    assert np.abs(y[keep].astype(int) - np.asarray(Image.open(img))[keep]).max() <= 1

    with pytest.raises(RayganError, match="exists"):
        repair_path(G, img, out, mask=mask)
    with pytest.raises(RayganError, match="pass --mask"):
        repair_path(G, img, tmp_path / "o2.png")
    _save(tmp_path / "small-mask.png", m[:20])
    with pytest.raises(RayganError, match="must be the same size") as e:
        repair_path(G, img, tmp_path / "o3.png", mask=tmp_path / "small-mask.png")
    assert "\n" not in str(e.value) and not (tmp_path / "o3.png").exists()
    rgb = _save(tmp_path / "rgb.png", rng.integers(0, 255, (40, 52, 3), dtype=np.uint8))
    with pytest.raises(RayganError, match="has 3 channels .*1-channel"):
        repair_path(G, rgb, tmp_path / "o4.png", mask=mask)

    # a folder: outputs keep the names (format included); a bad image is skipped with its reason, the rest written
    src, masks = tmp_path / "in", tmp_path / "masks"
    src.mkdir(), masks.mkdir()
    for name in ("x.png", "y.jpg"):
        _save(src / name, rng.integers(0, 255, (33, 47), dtype=np.uint8))
        _save(masks / (name.split(".")[0] + ".png"), np.where(rng.random((33, 47)) > 0.8, 255, 0).astype(np.uint8))
    written = repair_path(G, src, tmp_path / "res", mask=masks)
    assert sorted(p.name for p in written) == ["x.png", "y.jpg"] and written.skipped == []
    _save(src / "z.png", rng.integers(0, 255, (33, 47, 3), dtype=np.uint8))
    _save(masks / "z.png", np.zeros((33, 47), np.uint8))
    written = repair_path(G, src, tmp_path / "res2", mask=masks)
    assert sorted(p.name for p in written) == ["x.png", "y.jpg"]
    assert [(p.name, "z.png has 3 channels (RGB, in colour)" in why) for p, why in written.skipped] == [("z.png", True)]
    assert sorted(p.name for p in (tmp_path / "res2").iterdir()) == ["x.png", "y.jpg"]


def test_repair_file_super_resolution(tmp_path):
    cfg = _eval_cfg("downsample:factor=4", "psnr", arch="srresnet", res=32)
    G = _net(cfg, {"channels": 1, "scale": 4, "mask": False})
    img = _save(tmp_path / "lr.png", np.random.default_rng(1).integers(0, 255, (13, 21), dtype=np.uint8))
    (out,) = repair_path(G, img, tmp_path / "sr.png")
    assert np.asarray(Image.open(out)).shape == (52, 84)
    with pytest.raises(RayganError, match="takes no mask"):
        repair_path(G, img, tmp_path / "sr2.png", mask=img)


# ------------------------------------------------------------------------------ DDP


def _ddp_worker(rank, world, init_file, out):
    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from raygan.tasks.repair.step import Batch

    torch.set_num_threads(1)
    if world > 1:
        tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    cfg = tiny("model.g={ngf: 8, norm: none, dropout: 0.0}", "repair.adv_warmup_kimg=0", "regularizer.name=none",
               "augment.flip=false", "eval.metrics=[psnr,ssim,fid]", "eval.batch_size=7")
    t = Trainer(cfg, None, prepare_model=DDP if world > 1 else None, evaluator="auto").task
    gen = torch.Generator().manual_seed(0)
    x = t.data.images[:16].float() / 255
    mine = slice(rank * 16 // world, (rank + 1) * 16 // world)
    for step in range(4):
        deg = t.pipeline.train(x, gen)
        b = Batch(x[mine] * 2 - 1, deg.image[mine] * 2 - 1, None)
        t.step.step(b, step * 16)
    values, _ = t.evaluate(23)
    if rank == 0:
        torch.save({"G": t.G_plain.state_dict(), "D": t.D_plain.state_dict(), "values": values,
                    "wrapped": type(t.G).__name__}, out)
    if world > 1:
        tdist.destroy_process_group()


def test_two_ranks_train_and_evaluate_like_one_with_the_double_batch(tmp_path, in_tmp):
    import torch.multiprocessing as mp

    _ddp_worker(0, 1, None, tmp_path / "one.pt")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), tmp_path / "two.pt"), nprocs=2)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert two["wrapped"] == "DistributedDataParallel"
    for net in ("G", "D"):
        for k, v in one[net].items():
            assert torch.allclose(two[net][k], v, rtol=1e-4, atol=1e-6), f"{net}.{k}"
    for k, v in one["values"].items():  # shards gathered in index order: the same numbers
        assert two["values"][k] == pytest.approx(v, rel=1e-5), k


class RecordingRaGAN(RelativisticAverage):
    """ragan itself, noting the real logits its G side receives."""

    def __init__(self):
        self.g_reals = []

    def g_loss(self, fake_logits, real_logits=None):
        self.g_reals.append(None if real_logits is None else tuple(real_logits.shape))
        return super().g_loss(fake_logits, real_logits)


def test_a_relativistic_loss_trains_repair_with_real_logits_on_the_g_side(tmp_path):
    """loss.name=ragan with options-free kwargs: the G phase passes D's logits on the clean images."""
    t = Trainer(tiny("loss.name=ragan", "repair.adv_warmup_kimg=0", "train.total_kimg=0.032",
                     "regularizer.name=none"), tmp_path / "r", evaluator=None)
    t.task.step.loss = rec = RecordingRaGAN()
    t.run()
    assert len(rec.g_reals) == 2 and all(s is not None and len(s) >= 1 for s in rec.g_reals)
    assert t.task.step.d_steps == 2


@pytest.mark.parametrize("extra, size, reference", [
    ([], 28, "digits:test[:5]@28px"),  # whole images, as before patch training existed
    (["data.crop=16"], 28, "digits:test[:5]@28px (full-size)"),  # the default: whole test images
    (["data.crop=16", "repair.eval_size=crop"], 16, "digits:test[:5]@28px (centre 16px crops)"),
])
def test_a_patch_trained_run_scores_full_size_or_fixed_centre_crops_and_says_which(extra, size, reference):
    cfg = load_config(None, None, ["task=repair", "data.name=digits", "data.resolution=28", "model.arch=unet",
                                   "eval.metrics=[psnr]", *extra])
    test = EvalSet(cfg, 1)
    assert test.clean.shape[-2:] == (size, size) and test.reference(5) == reference
    if size == 16:  # the centre window of the full-size image, the same for every run
        full = EvalSet(load_config(None, None, ["task=repair", "data.name=digits", "data.resolution=28",
                                                "model.arch=unet", "eval.metrics=[psnr]"]), 1)
        assert torch.equal(test.clean, full.clean[..., 6:22, 6:22])
