"""The image files `raygan repair`, `raygan translate` and `raygan sample` read and write: one
reader (raygan.data.imageio) and one output path (raygan.data.imagefiles) for all of them.
Real files in their real formats, real `python -m raygan` processes, a real tmpfs for a full or
read-only disk; two tiny grey models (a repair run on digits, a translate run on two folders)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reliability_util import cli, tmpfs
from helpers import one_line

ROOT = Path(__file__).resolve().parents[2]
COMMON = ["--no-progress", "--set", "tracking.enabled=false", "--set", "train.threads=1",
          "--set", "eval.num_samples=8", "--set", "eval.final_num_samples=8"]
REPAIR = ["train", *COMMON, "--set", "task=repair", "--set", "data.name=digits", "--set", "data.resolution=28",
          "--set", "model.arch=unet", "--set", "model.g={ngf: 4}", "--set", "model.d={ndf: 4}",
          "--set", "optim.batch_size=8", "--set", "repair.degradations=noise:sigma=0.3",
          "--set", "train.total_kimg=0.008", "--set", "train.tick_kimg=0.008", "--set", "eval.metrics=[psnr]"]
TRANSLATE = ["train", *COMMON, "--set", "task=translate", "--set", "data.name=folder", "--set", "data.root=domains",
             "--set", "data.resolution=28", "--set", "data.channels=1", "--set", "model.arch=resnet-translator",
             "--set", "model.d_arch=patchgan", "--set", "model.g={ngf: 4, n_blocks: 1}", "--set", "model.d={ndf: 4}",
             "--set", "optim.batch_size=4", "--set", "train.total_kimg=0.008", "--set", "train.tick_kimg=0.008",
             "--set", "eval.metrics=[cycle-psnr]"]


def raygan(cwd: Path, *args, timeout: float = 300):
    """`python -m raygan ARGS` as a real process: (exit code, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAYGAN_CACHE": str(cwd / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    p = subprocess.run([sys.executable, "-m", "raygan", *[str(a) for a in args]], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth 8-bit grey picture (a ramp plus a little noise)."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(h) * 3, np.arange(w) * 5) % 200
    return (ramp + rng.integers(0, 40, (h, w))).astype(np.uint8)


def files_under(d: Path) -> list:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """tmp with `rep` (a grey repair run) and `tr` (a grey translate run), trained in this process."""
    from raygan.cli import main

    tmp = tmp_path_factory.mktemp("imagefiles")
    for d in ("trainA", "trainB", "testA", "testB"):
        (tmp / "domains" / d).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(picture(28, 28, seed=i + 10 * len(d))).save(tmp / "domains" / d / f"{i}.png")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("RAYGAN_CACHE", str(tmp / "cache"))
        assert main([*REPAIR, "--run-dir", "rep"]) == 0
        assert main([*TRANSLATE, "--run-dir", "tr"]) == 0
    return tmp


@pytest.fixture
def here(models, tmp_path):
    """A fresh folder that can reach the models as ../rep and ../tr (absolute paths)."""
    return tmp_path


def cmd(models: Path, which: str) -> list:
    return (["repair", "--run-dir", models / "rep"] if which == "repair"
            else ["translate", "--run-dir", models / "tr", "--direction", "a2b"])


# ====================================================================== 1. nothing of the user's is destroyed
@pytest.mark.parametrize("which", ["translate", "repair"])
def test_out_onto_an_existing_file_a_hard_link_of_the_input_or_into_the_input_folder_is_refused(models, here,
                                                                                                 which, capsys,
                                                                                                 monkeypatch):
    monkeypatch.chdir(here)
    Image.fromarray(picture(24, 32)).save(here / "in.png")
    original = (here / "in.png").read_bytes()
    (here / "notes.png").write_bytes(b"my notes")
    os.link(here / "in.png", here / "link.png")
    (here / "photos" / "out").mkdir(parents=True)
    Image.fromarray(picture(24, 32, 1)).save(here / "photos" / "a.png")
    Image.fromarray(picture(24, 32, 2)).save(here / "photos" / "out" / "a.png")  # an input inside the output
    inner = (here / "photos" / "out" / "a.png").read_bytes()
    c = cmd(models, which)
    code, _, err = cli(capsys, *c, "--in", "in.png", "--out", "notes.png")
    one_line(code, err, "notes.png exists; choose another output or pass --force to replace it")
    for force in ([], ["--force"]):
        code, _, err = cli(capsys, *c, "--in", "in.png", "--out", "link.png", *force)
        one_line(code, err, "--out link.png is a hard link of the input in.png")
        code, _, err = cli(capsys, *c, "--in", "in.png", "--out", "in.png", *force)
        one_line(code, err, "--out in.png is the input")
        code, _, err = cli(capsys, *c, "--in", "photos", "--out", "photos/out", *force)
        one_line(code, err, "--out photos/out is inside the input folder photos")
    assert (here / "in.png").read_bytes() == (here / "link.png").read_bytes() == original
    assert (here / "notes.png").read_bytes() == b"my notes"
    assert (here / "photos" / "out" / "a.png").read_bytes() == inner
    assert files_under(here / "photos") == ["a.png", "out/a.png"]
    code, _, err = cli(capsys, *c, "--in", "in.png", "--out", "notes.png", "--force")  # --force replaces it
    assert code == 0, err
    assert Image.open(here / "notes.png").size == (32, 24)


def test_translate_onto_a_hard_link_of_its_input_in_a_real_process(models, here):
    Image.fromarray(picture(24, 32)).save(here / "in.png")
    original = (here / "in.png").read_bytes()
    os.link(here / "in.png", here / "link.png")
    code, _, err = raygan(here, *cmd(models, "translate"), "--in", "in.png", "--out", "link.png", "--force")
    one_line(code, err, "--out link.png is a hard link of the input in.png; writing it would destroy the input")
    assert (here / "in.png").read_bytes() == original


# ====================================================================== 2, 4, 6. one folder, both commands
def _mixed_folder(d: Path) -> None:
    """What a real folder holds: grey 8-bit, the same picture as 16-bit PNG, float TIFF, RGB with
    R=G=B, opaque RGBA and lossy WebP; x.png beside x.jpg; a subfolder; a hidden file; and two
    files that cannot be read as grey without loss (colour, real transparency)."""
    b = picture(24, 32)
    (d / "sub").mkdir(parents=True)
    Image.fromarray(b).save(d / "p8.png")
    Image.fromarray(b.astype(np.uint16) * 257).save(d / "p16.png")  # 16-bit: the same values
    Image.fromarray(b.astype(np.float32) / 255).save(d / "pf.tif")  # float on [0, 1]
    Image.fromarray(np.repeat(b[..., None], 3, 2)).save(d / "rgb_grey.png")
    Image.fromarray(np.dstack([b, b, b, np.full_like(b, 255)])).save(d / "rgba_opaque.png")
    Image.fromarray(b).save(d / "grey.webp", quality=80)  # WebP decodes to RGB, channels within 1 level
    Image.fromarray(b).save(d / "x.png")  # the picture of p8.png
    Image.fromarray(255 - picture(24, 32, 2)).save(d / "x.jpg", quality=95)  # another one
    Image.fromarray(picture(16, 16, 3)).save(d / "sub" / "y.png")
    Image.fromarray(picture(16, 16, 4)).save(d / ".hidden.png")
    Image.fromarray(np.dstack([b, b // 2, b // 3])).save(d / "colour.png")
    alpha = np.full_like(b, 255)
    alpha[:4] = 0
    Image.fromarray(np.dstack([b, b, b, alpha])).save(d / "alpha.png")


WRITTEN = ["grey.webp", "p16.png", "p8.png", "pf.tif", "rgb_grey.png", "rgba_opaque.png", "sub/y.png", "x.jpg", "x.png"]


@pytest.fixture(scope="module")
def folder_runs(models):
    """Both commands on the same mixed folder, each in a real process: {command: (code, err, out dir)}."""
    src = models / "mixed"
    _mixed_folder(src)
    runs = {}
    for which in ("translate", "repair"):
        code, _, err = raygan(models, *cmd(models, which), "--in", src, "--out", models / f"out-{which}")
        runs[which] = (code, err, models / f"out-{which}")
    return runs


@pytest.mark.parametrize("which", ["translate", "repair"])
def test_a_folder_is_processed_whole_and_skipped_files_are_listed_with_their_reason(folder_runs, which):
    code, err, out = folder_runs[which]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and "Traceback" not in err, err
    skipped = sorted(ln for ln in lines if ln.startswith("raygan: skipped "))
    assert len(skipped) == 2 and len(lines) == 3, err
    assert "alpha.png: " in skipped[0] and "has 4 channels (RGBA) with transparent pixels" in skipped[0], skipped
    assert "colour.png: " in skipped[1] and "has 3 channels (RGB, in colour)" in skipped[1], skipped
    assert lines[-1] == "raygan: error: 2 of 11 input image(s) skipped (listed above); the other 9 were written"
    assert files_under(out) == WRITTEN  # subfolders mirrored the same way by both commands; no temp files


@pytest.mark.parametrize("which", ["translate", "repair"])
def test_lossless_conversions_give_the_same_output_as_the_8_bit_grey_file(folder_runs, which):
    out = folder_runs[which][2]
    p8 = np.asarray(Image.open(out / "p8.png"))
    assert Image.open(out / "p8.png").mode == "L"
    for name in ("rgb_grey.png", "rgba_opaque.png"):  # R=G=B and opaque alpha: read as that grey picture
        assert Image.open(out / name).mode == "L" and np.array_equal(np.asarray(Image.open(out / name)), p8), name
    webp = np.asarray(Image.open(out / "grey.webp").convert("L")).astype(int)
    assert np.abs(webp - p8).mean() < 8  # lossy in, lossless out: close, not equal


@pytest.mark.parametrize("which", ["translate", "repair"])
def test_16_bit_and_float_input_are_read_like_8_bit_and_keep_their_depth(folder_runs, which):
    out = folder_runs[which][2]
    p8 = np.asarray(Image.open(out / "p8.png")).astype(np.float64)
    im16 = Image.open(out / "p16.png")
    assert im16.mode == "I;16"
    p16 = np.asarray(im16).astype(np.float64)
    assert len(np.unique(p16)) > 50  # not clipped to a few values
    assert np.abs(p16 / 257 - p8).max() <= 0.51  # the same picture, 256x finer
    imf = Image.open(out / "pf.tif")
    assert imf.mode == "F"
    pf = np.asarray(imf).astype(np.float64)
    assert 0 <= pf.min() and pf.max() <= 1 and np.abs(pf * 255 - p8).max() <= 0.51  # on the input's [0, 1] scale


@pytest.mark.parametrize("which", ["translate", "repair"])
def test_x_png_and_x_jpg_in_one_folder_stay_two_outputs(folder_runs, which):
    out = folder_runs[which][2]
    assert Image.open(out / "x.png").format == "PNG" and Image.open(out / "x.jpg").format == "JPEG"
    a = np.asarray(Image.open(out / "x.png"))
    assert np.array_equal(a, np.asarray(Image.open(out / "p8.png")))  # x.png's own output, not x.jpg's
    assert not np.array_equal(a, np.asarray(Image.open(out / "x.jpg")))


# ====================================================================== 3. one line, exit 2, nothing written
def bomb_png(path: Path, w: int, h: int) -> Path:
    """A tiny PNG file that claims w x h grey pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("which", ["translate", "repair"])
def test_out_under_a_file_or_not_writable_is_one_line(models, here, which, capsys, monkeypatch):
    monkeypatch.chdir(here)
    Image.fromarray(picture(24, 32)).save(here / "in.png")
    (here / "afile").write_text("x")
    c = cmd(models, which)
    code, _, err = cli(capsys, *c, "--in", "in.png", "--out", "afile/x.png")
    one_line(code, err, "--out afile/x.png: afile is a file, not a folder")
    code, _, err = cli(capsys, *c, "--in", "in.png", "--out", "afile/deeper/x.png")
    one_line(code, err, "--out afile/deeper/x.png: afile is a file, not a folder")
    with tmpfs(here / "ro", "64k", read_only=True):
        code, _, err = cli(capsys, *c, "--in", "in.png", "--out", "ro/x.png")
        one_line(code, err, "--out ro/x.png: ro is not writable")
        code, _, err = cli(capsys, *c, "--in", "in.png", "--out", "ro/new/x.png")
        one_line(code, err, "--out ro/new/x.png: ro is not writable")
    assert files_under(here) == ["afile", "in.png"]


@pytest.mark.parametrize("which", ["translate", "repair"])
def test_decompression_bombs_are_refused_in_one_line(models, here, which, capsys, monkeypatch):
    monkeypatch.chdir(here)
    bomb_png(here / "bomb.png", 20000, 20000)  # over twice Pillow's limit: its DecompressionBombError
    bomb_png(here / "big.png", 10000, 10000)  # over the limit: its DecompressionBombWarning
    for name in ("bomb.png", "big.png"):
        code, _, err = cli(capsys, *cmd(models, which), "--in", name, "--out", "o.png")
        one_line(code, err, f"{name}: refused as a possible decompression bomb")
    assert not (here / "o.png").exists()


def test_a_1x1_image_in_translate_in_a_real_process(models, here):
    Image.fromarray(np.full((1, 1), 7, np.uint8)).save(here / "dot.png")
    code, _, err = raygan(here, *cmd(models, "translate"), "--in", "dot.png", "--out", "o.png")
    one_line(code, err, "dot.png is 1x1 px; this model translates images of at least 8x8 px")
    assert files_under(here) == ["dot.png"]


def test_direction_choices_in_help_and_any_case(models, here, capsys, monkeypatch):
    code, out, err = raygan(here, "translate", "--help")
    assert code == 0 and "--direction {a2b,b2a}" in out, out + err
    monkeypatch.chdir(here)
    Image.fromarray(picture(24, 32)).save(here / "in.png")
    for direction in ("A2B", "a2b", "B2a"):
        code, out, err = cli(capsys, "translate", "--run-dir", models / "tr", "--direction", direction,
                             "--in", "in.png", "--out", f"{direction}.png")
        assert code == 0, err
    a2b = np.asarray(Image.open(here / "a2b.png"))
    assert np.array_equal(np.asarray(Image.open(here / "A2B.png")), a2b)
    assert not np.array_equal(np.asarray(Image.open(here / "B2a.png")), a2b)
    code, _, err = cli(capsys, "translate", "--run-dir", models / "tr", "--direction", "sideways",
                       "--in", "in.png", "--out", "x.png")
    one_line(code, err, "direction must be one of a2b, b2a, got 'sideways'")


# ====================================================================== 5. a full disk leaves no partial output
def _noisy_folder(d: Path, n: int, side: int = 128) -> Path:
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(d / f"{i:02d}.png")
    return d


@pytest.mark.parametrize("which", ["translate", "repair"])
def test_disk_full_while_writing_outputs_leaves_no_partial_or_temp_file(models, here, which, capsys, monkeypatch):
    """A real 48 KiB filesystem: a few outputs fit, then the disk is full. The error is one line,
    nothing of the run is left (no 0-byte output, no temp file), and a rerun is not blocked."""
    src = _noisy_folder(here / "in", 12)
    with tmpfs(here / "small", "48k") as small:
        if which == "translate":  # a real process
            code, _, err = raygan(here, *cmd(models, which), "--in", src, "--out", small / "out")
        else:
            monkeypatch.chdir(here)
            code, _, err = cli(capsys, *cmd(models, which), "--in", src, "--out", small / "out")
        assert files_under(small) == [] and not (small / "out").exists(), files_under(small)
        line = one_line(code, err, f"disk full while writing {small}/out/")
        assert "; removed the " in line and " output(s) written before it" in line, line
        for extra in sorted(src.iterdir())[2:]:
            extra.unlink()
        code, _, err = cli(capsys, *cmd(models, which), "--in", src, "--out", small / "out")  # the rerun works
        assert code == 0, err
        assert files_under(small / "out") == ["00.png", "01.png"]


def test_sample_png_dir_and_grid_on_a_full_disk_leave_nothing(here):
    from raygan.cli.evaluate import write_samples
    from raygan.errors import RayganError

    images = torch.randint(0, 256, (40, 1, 64, 64), dtype=torch.uint8)
    with tmpfs(here / "small", "48k") as small:
        for out, fmt in ((small / "dir", "png-dir"), (small / "grid.png", "png"), (small / "s.npz", "npz")):
            with pytest.raises(Exception) as e:
                write_samples(images, None, out, fmt)
            assert files_under(small) == [] and not out.exists(), (fmt, files_under(small))
            assert isinstance(e.value, RayganError) and f"disk full while writing {small}/" in str(e.value)
        write_samples(images[:2], None, small / "dir", "png-dir")
        assert files_under(small) == ["dir/000000.png", "dir/000001.png"]


# ====================================================================== 6. a colour model: the same rules
def test_a_colour_model_takes_opaque_rgba_and_grey_and_says_when_16_bit_is_reduced(tmp_path):
    from raygan.config import load_config
    from raygan.tasks.repair.infer import repair_path
    from raygan.tasks.repair.net import build_generator

    cfg = load_config(None, None, ["task=repair", "data.name=digits", "data.resolution=28", "model.arch=unet",
                                   "model.g={ngf: 4}", "repair.degradations=noise:sigma=0.1",
                                   "tracking.enabled=false"])
    torch.manual_seed(0)
    G = build_generator(cfg, {"channels": 3, "scale": 1, "mask": False})
    src = tmp_path / "in"
    src.mkdir()
    b = picture(24, 32)
    rgb = np.dstack([b, 255 - b, b // 2])
    Image.fromarray(rgb).save(src / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full_like(b, 255)])).save(src / "rgba.png")  # opaque: the same picture
    Image.fromarray(b).save(src / "grey.png")
    Image.fromarray(np.repeat(b[..., None], 3, 2)).save(src / "grey_as_rgb.png")
    Image.fromarray(b.astype(np.uint16) * 257).save(src / "grey16.png")
    alpha = np.full_like(b, 255)
    alpha[0, 0] = 254
    Image.fromarray(np.dstack([rgb, alpha])).save(src / "translucent.png")
    written = repair_path(G, src, tmp_path / "out")
    assert sorted(p.name for p in written) == ["grey.png", "grey16.png", "grey_as_rgb.png", "rgb.png", "rgba.png"]
    [(skipped, why)] = written.skipped
    assert skipped.name == "translucent.png" and "has 4 channels (RGBA) with transparent pixels" in why
    out = {p.name: np.asarray(Image.open(p)) for p in written}
    assert Image.open(tmp_path / "out" / "rgba.png").mode == "RGB" and np.array_equal(out["rgba.png"], out["rgb.png"])
    assert out["grey.png"].shape == (24, 32, 3) and np.array_equal(out["grey.png"], out["grey_as_rgb.png"])
    assert np.array_equal(out["grey16.png"], out["grey.png"])  # 16-bit grey into colour: 8-bit RGB, and said so
    assert written.notes == [f"{tmp_path / 'out' / 'grey16.png'} holds 8-bit samples, its input 16-bit ones (only "
                             "greyscale PNG or TIFF output holds more)"]
