"""Prepared datasets: `raygan data prepare` (folder/archive/built-in -> Arrow shards + manifest),
refusals and atomic finishing, and training that streams one (bit-identical to the in-memory path,
exact resume, per-rank reads, content hash at resume, any pyarrow/fsspec filesystem)."""
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from raygan.data import load_dataset
from raygan.data.prepare import prepare
from raygan.data.prepared import PreparedDataset
from raygan.data.sampler import EpochSampler
from raygan.data.streamed import StreamedDataset, load_training_data
from raygan.engine.checkpoint import list_checkpoints
from raygan.engine.loop import Trainer
from raygan.errors import CheckpointError, DataError

from helpers import assert_bitwise_equal, cli, engine_tiny, one_line, params

ROOT = Path(__file__).resolve().parents[2]


def _digit_images(folder: Path, per_class: int = 12, classes=("three", "seven"), size=14) -> None:
    """Small real pictures: scikit-learn's digits 3 and 7, upscaled to `size` px, as PNG/JPEG."""
    from sklearn.datasets import load_digits

    d = load_digits()
    for c, digit in zip(classes, (3, 7)):
        (folder / c).mkdir(parents=True)
        picks = np.flatnonzero(d.target == digit)[:per_class]
        for k, i in enumerate(picks):
            a = (d.images[i] * 255 / 16).astype(np.uint8)
            im = Image.fromarray(a).resize((size, size + k % 3), Image.BILINEAR)  # some not square
            im.convert("RGB").save(folder / c / f"{k:02d}.{'jpg' if k % 4 == 3 else 'png'}")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos") / "src"
    _digit_images(d)
    return d


@pytest.fixture(scope="module")
def digits_ds(tmp_path_factory):
    """scikit-learn's digits (1438 train images, 8x8 grey) as a prepared dataset."""
    out = tmp_path_factory.mktemp("prep") / "digits"
    prepare("digits", str(out), shard_size=300, progress=False)
    return out


# ------------------------------------------------------------------ prepare


def test_prepare_folder_same_pixels_as_the_folder_loader_and_bad_files_listed(tmp_path, photos):
    src = tmp_path / "src"
    import shutil

    shutil.copytree(photos, src)
    (src / "three" / "zero.png").write_bytes(b"")
    (src / "three" / "trunc.png").write_bytes((photos / "three" / "00.png").read_bytes()[:60])
    (src / "seven" / "notes.png").write_bytes(b"not an image")
    Image.new("CMYK", (14, 14), (10, 200, 30, 5)).save(src / "seven" / "cmyk.jpg")
    Image.fromarray(np.full((14, 14, 4), 200, np.uint8)).save(src / "seven" / "rgba.png")
    Image.fromarray(np.full((14, 14), 60000, np.uint16)).save(src / "seven" / "grey16.png")
    m = prepare(str(src), str(tmp_path / "out"), resolution=16, shard_size=5, workers=1, progress=False)
    assert m["count"] == 24 + 3 and m["skipped_count"] == 3
    assert sorted(s["file"] for s in m["skipped"]) == ["seven/notes.png", "three/trunc.png", "three/zero.png"]
    assert "0 bytes" in next(s["reason"] for s in m["skipped"] if s["file"] == "three/zero.png")
    assert m["class_names"] == ["seven", "three"] and m["shape"] == [3, 16, 16] and len(m["shards"]) == 6
    ours = load_dataset("prepared", root=str(tmp_path / "out"), resolution=16)
    for bad in ("zero.png", "trunc.png"):
        (src / "three" / bad).unlink()
    (src / "seven" / "notes.png").unlink()
    theirs = load_dataset("folder", root=str(src), resolution=16)  # CMYK, RGBA, 16-bit by the folder rules
    assert torch.equal(ours.images, theirs.images) and torch.equal(ours.labels, theirs.labels)
    assert ours.class_names == theirs.class_names


def test_archives_and_two_processes_give_the_same_content(tmp_path, photos):
    one = prepare(str(photos), str(tmp_path / "one"), resolution=12, shard_size=7, workers=1, progress=False)
    with zipfile.ZipFile(tmp_path / "p.zip", "w") as z:  # one top-level folder holding the classes
        for f in sorted(photos.rglob("*.*")):
            z.write(f, "photos/" + str(f.relative_to(photos)))
    with tarfile.open(tmp_path / "p.tar.gz", "w:gz") as t:
        t.add(photos, arcname=".")
    two = prepare(str(tmp_path / "p.zip"), str(tmp_path / "two"), resolution=12, shard_size=5, workers=2,
                  progress=False)
    three = prepare(str(tmp_path / "p.tar.gz"), str(tmp_path / "three"), resolution=12, progress=False)
    assert one["content_hash"] == two["content_hash"] == three["content_hash"]  # layout and workers aside
    assert one["labels"] == two["labels"] and one["class_names"] == three["class_names"] == ["seven", "three"]


def test_native_storage_fits_at_read_time_like_the_fitted_one(tmp_path, photos):
    prepare(str(photos), str(tmp_path / "nat"), native=True, progress=False, workers=1)
    prepare(str(photos), str(tmp_path / "fit"), resolution=16, progress=False, workers=1)
    nat = PreparedDataset.open(str(tmp_path / "nat"))
    assert nat.manifest["shape"] is None and nat.image(1).shape == (3, 15, 14)  # kept as it was
    a = load_dataset("prepared", root=str(tmp_path / "nat"), resolution=16)
    b = load_dataset("prepared", root=str(tmp_path / "fit"), resolution=16)
    assert torch.equal(a.images, b.images)


def test_prepare_refuses_to_overwrite_and_never_touches_the_source(tmp_path, photos, capsys):
    out = tmp_path / "out"
    assert cli(capsys, "data", "prepare", photos, "--out", out, "--resolution", "8", "--quiet")[0] == 0
    before = (out / "manifest.json").read_bytes()
    one_line(*cli(capsys, "data", "prepare", photos, "--out", out, "--resolution", "8")[::2],
             "already a prepared dataset; pass --force")
    assert (out / "manifest.json").read_bytes() == before
    code, _, err = cli(capsys, "data", "prepare", photos, "--out", photos / "inside", "--resolution", "8", "--force")
    one_line(code, err, "overlaps the source")
    code, _, err = cli(capsys, "data", "prepare", photos, "--out", photos, "--resolution", "8", "--force")
    one_line(code, err, "overlaps the source")
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, _, err = cli(capsys, "data", "prepare", photos, "--out", other, "--resolution", "8", "--force")
    one_line(code, err, "is not a prepared dataset; refusing")
    assert (other / "keep.txt").read_text() == "mine" and sorted(p.name for p in photos.iterdir()) == ["seven", "three"]
    code, out_text, _ = cli(capsys, "data", "prepare", photos, "--out", out, "--resolution", "12", "--force", "--quiet")
    assert code == 0 and "24 images, 3x12x12" in out_text
    assert PreparedDataset.open(str(out)).manifest["shape"] == [3, 12, 12]
    assert [p.name for p in tmp_path.iterdir() if ".old-" in p.name or p.name.endswith(".partial")] == []


def test_ctrl_c_leaves_no_finished_looking_dataset_and_the_rerun_resumes(tmp_path):
    src = tmp_path / "src" / "all"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(300):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(src / f"{i:03d}.png")
    out, partial = tmp_path / "ds", tmp_path / "ds.partial"
    cmd = [sys.executable, "-m", "raygan", "data", "prepare", str(src.parent), "--out", str(out),
           "--resolution", "32", "--shard-size", "2", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(partial.glob("shard-*.arrow")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert "run the same command again to resume" in err
    assert not out.exists() and not (partial / "manifest.json").exists()
    done = len(list(partial.glob("shard-*.arrow")))
    assert 1 <= done < 150
    code, _, err = cli_subprocess(cmd + ["--quiet"], env)
    assert code == 0, err
    assert not partial.exists() and not (out / ".work").exists()
    m = PreparedDataset.open(str(out)).manifest
    fresh = prepare(str(src.parent), str(tmp_path / "fresh"), resolution=32, shard_size=2, workers=1, progress=False)
    assert m["count"] == 300 and m["content_hash"] == fresh["content_hash"]


def cli_subprocess(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_a_partial_of_other_options_is_refused_then_discarded_with_force(tmp_path, photos):
    (tmp_path / "ds.partial" / ".work").mkdir(parents=True)
    (tmp_path / "ds.partial" / ".work" / "plan.json").write_text("{}")
    with pytest.raises(DataError, match="unfinished prepare of another source"):
        prepare(str(photos), str(tmp_path / "ds"), resolution=8, progress=False, workers=1)
    prepare(str(photos), str(tmp_path / "ds"), resolution=8, progress=False, workers=1, force=True)
    assert PreparedDataset.open(str(tmp_path / "ds")).manifest["count"] == 24
    (tmp_path / "x.partial").mkdir()  # a folder raygan did not write: never removed, even with force
    (tmp_path / "x.partial" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="is not an unfinished raygan prepare"):
        prepare(str(photos), str(tmp_path / "x"), resolution=8, progress=False, workers=1, force=True)
    assert (tmp_path / "x.partial" / "notes.txt").read_text() == "mine"


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _edit_manifest(d: Path, **changes) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m.update(changes)
    (d / "manifest.json").write_text(json.dumps(m))


def test_broken_prepared_datasets_are_one_line_exit_2(tmp_path, digits_ds, capsys):
    cases = {}
    d = _copy(digits_ds, tmp_path / "noman")
    (d / "manifest.json").unlink()
    cases[d] = "not a prepared dataset (it has no manifest.json)"
    d = _copy(digits_ds, tmp_path / "v99")
    _edit_manifest(d, version=99)
    cases[d] = "format version 99, this raygan reads version 1"
    d = _copy(digits_ds, tmp_path / "count")
    _edit_manifest(d, count=5)
    cases[d] = "labels for 5 images"
    d = _copy(digits_ds, tmp_path / "trunc")
    with open(d / "shard-00002.arrow", "r+b") as f:
        f.truncate(1000)
    cases[d] = "shard shard-00002.arrow is 1000 bytes, the manifest says"
    d = _copy(digits_ds, tmp_path / "gone")
    (d / "shard-00004.arrow").unlink()
    cases[d] = "shard shard-00004.arrow is missing"
    d = _copy(digits_ds, tmp_path / "json")
    (d / "manifest.json").write_text("{not json")
    cases[d] = "manifest.json is not valid JSON"
    cases[tmp_path / "nothing"] = "not a prepared dataset (it does not exist)"
    for path, msg in cases.items():
        one_line(*cli(capsys, "data", "check", path)[::2], msg)
    d = _copy(digits_ds, tmp_path / "flip")  # same size, one byte changed: only the full check sees it
    with open(d / "shard-00001.arrow", "r+b") as f:
        f.seek(5000)
        b = f.read(1)
        f.seek(5000)
        f.write(bytes([b[0] ^ 1]))
    assert cli(capsys, "data", "check", d)[0] == 0
    one_line(*cli(capsys, "data", "check", d, "--full")[::2], "does not match its sha256")
    (tmp_path / "half.partial").mkdir()
    one_line(*cli(capsys, "data", "check", tmp_path / "half")[::2], "unfinished prepare: run the same prepare again")


# ------------------------------------------------------------------ streaming


def test_streamed_batches_equal_in_memory_and_each_rank_reads_only_its_indices(digits_ds):
    mem = load_dataset("digits", resolution=28)  # the built-in source, fitted in memory
    st = load_training_data("prepared", root=str(digits_ds), resolution=28, stream=True)
    assert isinstance(st, StreamedDataset) and st.content_hash == PreparedDataset.open(str(digits_ds)).content_hash
    assert torch.equal(st.labels, mem.labels)
    one = EpochSampler(len(mem), 16, seed=3)
    ranks = [EpochSampler(len(mem), 8, seed=3, rank=r, world_size=2) for r in range(2)]
    streams = [load_training_data("prepared", root=str(digits_ds), resolution=28, stream=True) for _ in range(2)]
    reads = [[], []]
    for r, s in enumerate(streams):
        fitted = s.ds.fitted
        s.ds.fitted = lambda i, *a, _f=fitted, _r=r: (reads[_r].append(i), _f(i, *a))[1]
        s.read_ahead(ranks[r])
    seen = [[], []]
    for _ in range(100):  # past an epoch end (89 batches of 16)
        idx = one.next()
        parts = []
        for r in range(2):
            i = ranks[r].next()
            seen[r] += i.tolist()
            parts.append(streams[r].images[i])
        assert torch.equal(torch.stack(parts, 1).flatten(0, 1), mem.images[idx])  # rank r: positions r, r+2...
    import copy

    for r in range(2):  # what a rank read: its own batches so far and the next ones it reads ahead, nothing else
        ahead = copy.copy(ranks[r])
        coming = [i for _ in range(streams[r].depth) for i in ahead.next().tolist()]
        assert set(reads[r]) <= set(seen[r]) | set(coming) and set(seen[r]) <= set(reads[r])


def test_size_threshold_picks_the_path_and_is_overridable(digits_ds, monkeypatch):
    import raygan.data.streamed as streamed

    assert type(load_training_data("prepared", root=str(digits_ds), resolution=28)).__name__ == "ImageDataset"
    monkeypatch.setattr(streamed, "STREAM_THRESHOLD_BYTES", 1438 * 28 * 28 - 1)
    assert isinstance(load_training_data("prepared", root=str(digits_ds), resolution=28), StreamedDataset)
    assert type(load_training_data("prepared", root=str(digits_ds), resolution=28, stream=False)).__name__ \
        == "ImageDataset"
    assert isinstance(load_training_data("folder", root=str(digits_ds), resolution=28, stream=True), StreamedDataset)


def test_streamed_training_is_bitwise_the_in_memory_run_and_resumes_exactly(tmp_path, digits_ds):
    T = 0.512
    stream = ["data.name=prepared", f"data.root={digits_ds}", "data.stream=true"]
    mem = Trainer(engine_tiny(f"train.total_kimg={2 * T}"), tmp_path / "mem", evaluator=None)
    mem.run()
    one = Trainer(engine_tiny(f"train.total_kimg={2 * T}", *stream), tmp_path / "one", evaluator=None)
    assert isinstance(one.task.data, StreamedDataset)
    one.run()
    assert_bitwise_equal(params(mem.task.G_plain), params(one.task.G_plain))
    first = Trainer(engine_tiny(f"train.total_kimg={T}", *stream), tmp_path / "two", evaluator=None)
    first.run()
    second = Trainer(engine_tiny(f"train.total_kimg={2 * T}", *stream), tmp_path / "two", evaluator=None)
    second.load(list_checkpoints(tmp_path / "two" / "checkpoints")[-1])
    second.run()
    assert_bitwise_equal(params(one.task.G_plain), params(second.task.G_plain))
    assert_bitwise_equal(params(one.task.D_plain), params(second.task.D_plain))


def test_per_class_subset_streams_the_same_images(digits_ds):
    cfg = ["data.per_class=5", "model.conditional=true", "optim.batch_size=10", "train.total_kimg=0.02"]
    mem = Trainer(engine_tiny(*cfg), None, evaluator=None)
    st = Trainer(engine_tiny(*cfg, "data.name=prepared", f"data.root={digits_ds}", "data.stream=true"), None,
                 evaluator=None)
    assert isinstance(st.task.data, StreamedDataset) and len(st.task.data) == 50
    assert st.task.subset == mem.task.subset
    all_idx = torch.arange(50)
    assert torch.equal(st.task.data.images[all_idx], mem.task.data.images[all_idx])
    assert torch.equal(st.task.data.labels, mem.task.data.labels)


def test_a_dataset_replaced_under_a_run_is_caught_at_resume(tmp_path):
    ds = tmp_path / "ds"
    prepare("digits", str(ds), progress=False)
    stream = ["data.name=prepared", f"data.root={ds}", "data.stream=true", "train.total_kimg=0.256"]
    Trainer(engine_tiny(*stream), tmp_path / "run", evaluator=None).run()
    prepare("digits", str(ds), progress=False, force=True, split="test")  # other images, same place
    again = Trainer(engine_tiny(*stream[:3], "train.total_kimg=0.512"), tmp_path / "run", evaluator=None)
    with pytest.raises(CheckpointError, match="changed since this run's checkpoint") as e:
        again.load(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert "\n" not in str(e.value)


def test_file_and_in_memory_filesystem_uris(tmp_path, digits_ds):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.put(str(digits_ds), "/raygan-test-digits", recursive=True)
    try:
        local = load_dataset("prepared", root=str(digits_ds), resolution=16)
        for uri in (f"file://{digits_ds}", "memory://raygan-test-digits"):
            st = load_training_data("prepared", root=uri, resolution=16, stream=True)
            idx = torch.tensor([0, 1437, 700, 5])
            assert torch.equal(st.images[idx], local.images[idx]), uri
        t = Trainer(engine_tiny("data.name=prepared", "data.root=memory://raygan-test-digits", "data.stream=true",
                                "train.total_kimg=0.064"), None, evaluator=None)
        t.run()
        assert t.nimg == 64
    finally:
        fs.rm("/raygan-test-digits", recursive=True)


def test_a_test_split_is_the_prepared_dataset_under_test(tmp_path, capsys):
    prepare("digits", str(tmp_path / "ds"), progress=False)
    with pytest.raises(DataError, match="has no test split .* or set eval.reference_split: train"):
        load_dataset("prepared", root=str(tmp_path / "ds"), split="test")
    assert cli(capsys, "data", "prepare", "digits", "--split", "test", "--out", tmp_path / "ds" / "test",
               "--quiet")[0] == 0
    test = load_dataset("prepared", root=str(tmp_path / "ds"), split="test")
    assert torch.equal(test.images, load_dataset("digits", split="test").images)
    assert len(PreparedDataset.open(str(tmp_path / "ds"))) == 1438


def test_a_large_fid_reference_streams_to_the_same_statistics(tmp_path, monkeypatch):
    """The evaluator's reference split, when large, is read a batch at a time: the same hash and
    moments as the whole split in memory."""
    import raygan.data.streamed as streamed
    from raygan.metrics import build_extractor
    from raygan.metrics.evaluate import images_hash, reference_stats

    prepare("digits", str(tmp_path / "ds"), progress=False)
    prepare("digits", str(tmp_path / "ds" / "test"), split="test", progress=False)
    whole = load_training_data("prepared", root=str(tmp_path / "ds"), split="test", resolution=16)
    monkeypatch.setattr(streamed, "STREAM_THRESHOLD_BYTES", 0)
    ref = load_training_data("prepared", root=str(tmp_path / "ds"), split="test", resolution=16)
    assert isinstance(ref, StreamedDataset) and type(whole).__name__ == "ImageDataset" and len(ref) == 359
    assert images_hash(ref.images, chunk=97) == images_hash(whole.images)  # chunks hash as the whole tensor
    ext = build_extractor("fmnist-cnn", weights="random")
    a = reference_stats(ref.images, ext, "t", None, batch_size=50)
    b = reference_stats(whole.images, ext, "t", None, batch_size=50)
    assert a.protocol.as_dict() == b.protocol.as_dict()
    assert np.allclose(a.mu, b.mu, atol=1e-6) and np.allclose(a.sigma, b.sigma, atol=1e-6)


def test_repair_streams_a_prepared_dataset_bit_for_bit(digits_ds):
    from raygan.tasks import load_config

    def repair(*extra):
        return load_config(None, None, [
            "task=repair", "data.name=digits", "data.resolution=28", "model.arch=unet", "model.g={ngf: 8}",
            "model.d={ndf: 8}", "loss.name=lsgan", "optim.batch_size=16", "repair.degradations=noise:sigma=0.1..0.4",
            "repair.adv_warmup_kimg=0", "ema.half_life_kimg=0", "augment.flip=true", "train.total_kimg=0.064",
            "train.tick_kimg=0.064", "eval.metrics=[psnr]", "tracking.enabled=false", *extra])

    mem = Trainer(repair(), None, evaluator=None)
    mem.run()
    st = Trainer(repair("data.name=prepared", f"data.root={digits_ds}", "data.stream=true"), None, evaluator=None)
    assert isinstance(st.task.data, StreamedDataset)
    st.run()
    assert_bitwise_equal(params(mem.task.G_plain), params(st.task.G_plain))
    assert st.task.state()["data_hash"] == PreparedDataset.open(str(digits_ds)).content_hash


def test_translate_says_it_does_not_stream():
    from raygan.errors import ConfigError
    from raygan.tasks import load_config

    with pytest.raises(ConfigError, match="data.stream: task 'translate' does not use it"):
        load_config("fmnist-sneaker2boot", None, ["data.stream=true"])


def test_huge_images_are_skipped_as_bombs_and_listed(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for name, side in (("ok.png", 8), ("warn.png", 12), ("bomb.png", 16)):  # 64, 144 and 256 pixels
        Image.fromarray(np.full((side, side), 90, np.uint8)).save(src / name)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow warns above 100 pixels, refuses above 200
    m = prepare(str(src), str(tmp_path / "out"), resolution=8, workers=1, progress=False)
    assert m["count"] == 1 and {s["file"]: "decompression bomb" in s["reason"] for s in m["skipped"]} == \
        {"warn.png": True, "bomb.png": True}


def test_patch_training_reads_a_small_native_prepared_dataset_whole_like_the_folder(tmp_path, photos):
    from raygan.data.patch_sources import load_patches

    prepare(str(photos), str(tmp_path / "nat"), native=True, progress=False, workers=1)
    ours = load_patches("prepared", root=str(tmp_path / "nat"), max_side=12, channels=3)  # 13 kB: under 1 GiB
    theirs = load_patches("folder", root=str(photos), max_side=12, channels=3)
    assert isinstance(ours.images, list) and len(ours) == len(theirs) == 24
    assert {tuple(x.shape) for x in ours.images} == {(3, 12, 12), (3, 12, 11), (3, 12, 10)}  # not squared
    assert all(torch.equal(a, b) for a, b in zip(ours.images, theirs.images))
    assert torch.equal(ours.labels, theirs.labels)


@pytest.fixture(scope="module")
def native_ds(tmp_path_factory, photos):
    """The photos (24 RGB images, 14 x 14..16 px) prepared at native size in shards of 7."""
    out = tmp_path_factory.mktemp("nat") / "nat"
    prepare(str(photos), str(out), native=True, shard_size=7, progress=False, workers=1)
    return out


def _count_decodes(monkeypatch):
    reads = []
    image = PreparedDataset.image
    monkeypatch.setattr(PreparedDataset, "image", lambda self, i: (reads.append(i), image(self, i))[1])
    return reads


def test_streamed_patches_are_bit_identical_to_the_whole_read_ones_and_check_decodes_nothing(native_ds,
                                                                                           monkeypatch):
    import copy

    from raygan.data.patch_sources import load_patches
    from raygan.data.patch_stream import StreamedPatches

    reads = _count_decodes(monkeypatch)
    whole = load_patches("prepared", root=str(native_ds), max_side=11, channels=3, stream=False)
    st = load_patches("prepared", root=str(native_ds), max_side=11, channels=3, stream=True)
    assert isinstance(st, StreamedPatches) and isinstance(whole.images, list) and len(st) == len(whole) == 24
    sizes = [tuple(x.shape[-2:]) for x in whole.images]  # decoded and shrunk, vs the height/width columns
    assert [st.size(i) for i in range(24)] == sizes and set(sizes) == {(11, 11), (11, 10)}
    assert torch.equal(st.labels, whole.labels) and st.channels == 3 and st.class_names == whole.class_names
    assert st.content_hash == whole.content_hash == PreparedDataset.open(str(native_ds)).content_hash
    del reads[:]
    st.check(10)
    with pytest.raises(DataError) as a:
        st.check(11)
    assert reads == []  # the sizes came from the height/width columns: nothing decoded
    with pytest.raises(DataError) as b:
        whole.check(11)
    assert str(a.value) == str(b.value) and "(10x11 px after data.resolution): use data.crop 8..10" in str(a.value)
    sampler, ga, gb = EpochSampler(24, 5, seed=4), torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    st.read_ahead(sampler, depth=2)
    seen = []
    for _ in range(7):  # past an epoch end (4 batches of 5)
        idx = sampler.next()
        seen += idx.tolist()
        assert torch.equal(st.crops(idx, 9, gb), whole.crops(idx, 9, ga))
    ahead = copy.copy(sampler)
    coming = [i for _ in range(2) for i in ahead.next().tolist()]
    assert set(reads) <= set(seen) | set(coming) and set(seen) <= set(reads)  # only the batches in flight
    jump = torch.tensor([23, 0, 5])  # not the predicted batch (a resume): read at once
    assert torch.equal(st.crops(jump, 8, gb), whole.crops(jump, 8, ga)) and torch.equal(ga.get_state(), gb.get_state())
    st.close()


def test_patch_size_threshold_picks_the_path_and_is_overridable(native_ds, digits_ds, monkeypatch):
    import raygan.data.streamed as streamed
    from raygan.data.patch_sources import load_patches
    from raygan.data.patch_stream import StreamedPatches
    from raygan.errors import ConfigError

    def load(**kw):
        return load_patches("prepared", root=str(native_ds), max_side=11, channels=3, **kw)

    nbytes = 3 * sum(h * w for h, w in (load().size(i) for i in range(24)))  # C x H x W after max_side
    monkeypatch.setattr(streamed, "STREAM_THRESHOLD_BYTES", nbytes)
    assert isinstance(load().images, list)
    monkeypatch.setattr(streamed, "STREAM_THRESHOLD_BYTES", nbytes - 1)
    assert isinstance(load(), StreamedPatches) and isinstance(load(stream=False).images, list)
    with pytest.raises(ConfigError, match="only a prepared dataset streams"):
        load_patches("digits", max_side=28, stream=True)
    # a fitted prepared dataset streams its fitted images the same way
    mem = load_patches("prepared", root=str(digits_ds), max_side=16, limit=40, stream=False)
    st = load_patches("prepared", root=str(digits_ds), max_side=16, limit=40, stream=True)
    idx, g = torch.tensor([3, 39, 0, 3]), lambda: torch.Generator().manual_seed(1)
    assert len(st) == 40 and st.size(7) == (16, 16) and torch.equal(st.crops(idx, 12, g()), mem.crops(idx, 12, g()))


def test_repair_patch_training_streams_bit_for_bit_and_resumes_exactly(tmp_path, native_ds):
    from helpers import uninterrupted_and_resumed
    from raygan.data.patch_stream import StreamedPatches
    from raygan.tasks import load_config

    def repair(stream):
        return load_config(None, None, [
            "task=repair", "data.name=prepared", f"data.root={native_ds}", "data.resolution=12", "data.crop=8",
            f"data.stream={stream}", "model.arch=unet", "model.g={ngf: 4}", "model.d={ndf: 4}", "loss.name=lsgan",
            "optim.batch_size=6", "repair.degradations=noise:sigma=0.1..0.4", "repair.adv_warmup_kimg=0",
            "ema.half_life_kimg=0", "augment.flip=true", "train.total_kimg=0.024", "train.tick_kimg=0.012",
            "train.snapshot_ticks=1", "train.sample_ticks=100", "eval.metrics=[psnr]", "tracking.enabled=false"])

    mem = Trainer(repair("false"), None, evaluator=None)
    assert isinstance(mem.task.data.images, list)
    mem.run()
    one, resumed = uninterrupted_and_resumed(repair("true"), tmp_path)
    assert isinstance(one.task.data, StreamedPatches) and isinstance(resumed.task.data, StreamedPatches)
    assert one.task.data._sampler is one.task.sampler  # read ahead
    for net in ("G_plain", "D_plain"):
        assert_bitwise_equal(params(getattr(mem.task, net)), params(getattr(one.task, net)))
        assert_bitwise_equal(params(getattr(one.task, net)), params(getattr(resumed.task, net)))
    assert one.task.state()["data_hash"] == PreparedDataset.open(str(native_ds)).content_hash
