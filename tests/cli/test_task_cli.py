"""The repair and translation tasks through the `raygan` command, like generation: train, eval,
repair/translate files, registered models, and every bad input as one line + exit 2 with nothing
written."""
import functools
import json

import numpy as np
import pytest
from PIL import Image

from raygan.cli import main

from conftest import needs_fmnist
from helpers import cli as run
from helpers import one_line as _one_line

one_line = functools.partial(_one_line, warnings=True)  # a task may warn before its error

REPAIR = ["train", "--no-progress", "--set", "task=repair", "--set", "data.name=digits", "--set", "data.resolution=28",
          "--set", "model.arch=unet", "--set", "model.g={ngf: 8}", "--set", "model.d={ndf: 8}",
          "--set", "optim.batch_size=16", "--set", "repair.degradations=noise:sigma=0.3",
          "--set", "train.total_kimg=0.128", "--set", "train.tick_kimg=0.064", "--set", "eval.metrics=[psnr,ssim]",
          "--set", "eval.num_samples=16", "--set", "eval.final_num_samples=32", "--set", "train.threads=1"]
TRANSLATE = ["train", "--no-progress", "--preset", "fmnist-sneaker2boot", "--set", "data.limit=64",
             "--set", "model.g={ngf: 4, n_blocks: 1}", "--set", "model.d={ndf: 4}", "--set", "optim.batch_size=8",
             "--set", "train.total_kimg=0.064", "--set", "train.tick_kimg=0.032", "--set", "eval.num_samples=24",
             "--set", "eval.final_num_samples=24", "--set", "train.threads=1",
             "--set", "eval.metrics=[fid, domain-acc, cycle-psnr]"]


def write_png(path, shape, mode="L"):
    a = (np.arange(int(np.prod(shape))) % 256).astype(np.uint8).reshape(shape)
    Image.fromarray(a, mode).save(path)


@pytest.fixture
def repair_run(in_tmp, capsys):
    code, out, err = run(capsys, *REPAIR, "--run-dir", "rep")
    assert code == 0, err
    return in_tmp / "rep", out


def test_repair_train_eval_and_repair_files(repair_run, capsys, in_tmp):
    run_dir, out = repair_run
    assert "psnr" in out and "model:       models:/raygan-repair-digits-unet/1" in out
    code, out, err = run(capsys, "eval", "--run-dir", run_dir, "--metrics", "psnr,ssim", "--num-samples", "20",
                         "--json")
    assert code == 0, err
    res = json.loads(out)
    assert set(res["values"]) >= {"psnr", "ssim"} and res["protocol"]["num_samples"] == 20
    code, out, err = run(capsys, "eval", "--run-dir", run_dir, "--metrics", "psnr,ssim,fid", "--num-samples", "20",
                         "--seed", "7")
    assert code == 0, err
    text = " ".join(out.split())  # each metric with its own protocol, whole
    assert "protocol: psnr, ssim: 20 test images of digits:test[:20]@28px; degraded by noise(" in text
    assert "seed 7;" in text and "fid: extractor fmnist-cnn@" in text and "20 repaired vs 20 digits:test[:20]" in text
    write_png(in_tmp / "noisy.png", (40, 36))  # larger than the training size: fully convolutional
    code, out, err = run(capsys, "repair", "--run-dir", run_dir, "--in", "noisy.png", "--out", "clean.png")
    assert code == 0, err
    assert Image.open(in_tmp / "clean.png").size == (36, 40)
    code, _, err = run(capsys, "repair", "--model-uri", "models:/raygan-repair-digits-unet/1", "--in", "noisy.png",
                       "--out", "clean2.png")
    assert code == 0, err
    assert np.array_equal(np.array(Image.open(in_tmp / "clean.png")), np.array(Image.open(in_tmp / "clean2.png")))
    # tiles: the trained U-Net (depth 3, eval BatchNorm) on a real photo, 120 x 96 px: --tile 64 gives the
    # one-pass PNG within one 8-bit level (the blend equals one pass up to float rounding)
    from skimage import data as skdata

    Image.fromarray(skdata.camera()[::4, ::4][:120, 16:112]).save(in_tmp / "photo.png")
    for tile, out in (("0", "one.png"), ("64", "tiled.png")):
        code, _, err = run(capsys, "repair", "--run-dir", run_dir, "--in", "photo.png", "--out", out, "--tile", tile)
        assert code == 0, err
    one, tiled = (np.array(Image.open(in_tmp / f)).astype(int) for f in ("one.png", "tiled.png"))
    assert one.shape == (120, 96) and np.abs(one - tiled).max() <= 1
    code, _, err = run(capsys, "repair", "--run-dir", run_dir, "--in", "photo.png", "--out", "small.png",
                       "--tile", "32")
    one_line(code, err, "use --tile >= 56")  # context 15 px each side + 16 px blend, on the 8 px grid
    assert not (in_tmp / "small.png").exists()


def test_repair_bad_input_is_one_line_and_writes_nothing(repair_run, capsys, in_tmp):
    run_dir, _ = repair_run
    write_png(in_tmp / "rgb.png", (28, 28, 3), "RGB")
    write_png(in_tmp / "ok.png", (28, 28))
    cases = [
        (["--in", "rgb.png", "--out", "o.png"], "channel"),
        (["--in", "ok.png", "--mask", "ok.png", "--out", "o.png"], "takes no mask"),
        (["--in", "missing.png", "--out", "o.png"], "missing.png"),
    ]
    for args, pattern in cases:
        code, _, err = run(capsys, "repair", "--run-dir", run_dir, *args)
        one_line(code, err, pattern)
    assert not (in_tmp / "o.png").exists()
    # an existing output is not replaced without --force
    (in_tmp / "o.png").write_bytes(b"keep")
    code, _, err = run(capsys, "repair", "--run-dir", run_dir, "--in", "ok.png", "--out", "o.png")
    one_line(code, err, "exists")
    assert (in_tmp / "o.png").read_bytes() == b"keep"
    # a degradation that does not fit the resolution, an unknown one: before anything is written
    code, _, err = run(capsys, *REPAIR, "--run-dir", "bad", "--set", "model.arch=srresnet",
                       "--set", "repair.degradations=downsample:factor=4,downsample:factor=2")  # x8 of 28 px
    one_line(code, err, "does not divide a 7-px image")
    code, _, err = run(capsys, *REPAIR, "--run-dir", "bad", "--set", "repair.degradations=smudge")
    one_line(code, err, "unknown degradation")
    assert not (in_tmp / "bad").exists()


def test_a_model_of_another_task_is_refused(repair_run, capsys, in_tmp):
    run_dir, _ = repair_run
    code, _, err = run(capsys, "sample", "--run-dir", run_dir, "--out", "s.png")
    one_line(code, err, "'repair' model")
    write_png(in_tmp / "x.png", (28, 28))
    code, _, err = run(capsys, "translate", "--run-dir", run_dir, "--direction", "a2b", "--in", "x.png",
                       "--out", "y.png")
    one_line(code, err, "'repair' model")
    assert not (in_tmp / "s.png").exists()


@needs_fmnist
def test_translate_train_eval_and_translate_files(in_tmp, capsys):
    code, out, err = run(capsys, *TRANSLATE, "--run-dir", "tr")
    assert code == 0, err
    code, out, err = run(capsys, "eval", "--run-dir", "tr", "--metrics", "fid,domain-acc,cycle-psnr",
                         "--num-samples", "24", "--json")
    assert code == 0, err
    values = json.loads(out)["values"]
    assert {"fid_a2b", "fid_b2a", "baseline_fid_a2b", "cycle_psnr"} <= set(values) or "fid" in values, values
    code, out, err = run(capsys, "eval", "--run-dir", "tr", "--metrics", "fid,domain_acc,cycle_psnr",
                         "--num-samples", "24")
    text = " ".join(out.split())
    assert code == 0 and "domain_acc" in text and "classifier's argmax is the target class" in text, out
    assert "A->B->A vs 24 test A" in text and "the untranslated input scored the same way" in text, out
    write_png(in_tmp / "shoe.png", (32, 44))
    code, _, err = run(capsys, "translate", "--run-dir", "tr", "--direction", "b2a", "--in", "shoe.png",
                       "--out", "boot.png")
    assert code == 0, err
    assert Image.open(in_tmp / "boot.png").size == (44, 32)
    for args, pattern in [(["--direction", "sideways", "--in", "shoe.png", "--out", "x.png"], "a2b"),
                          (["--direction", "a2b", "--in", "nowhere", "--out", "x.png"], "nowhere")]:
        code, _, err = run(capsys, "translate", "--run-dir", "tr", *args)
        one_line(code, err, pattern)
    code, _, err = run(capsys, *TRANSLATE, "--run-dir", "bad", "--set", "translate.domain_b=spaceship")
    one_line(code, err, "spaceship")
    assert not (in_tmp / "x.png").exists() and not (in_tmp / "bad").exists()
