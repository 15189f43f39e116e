"""Prepared datasets at scale: prepare speed, memory and throughput of streamed vs in-memory training.

Writes a synthetic photo-like source (random crops, flips, brightness and scale of scikit-image's
bundled photos, one class per photo, JPEG at --res px), prepares it at every --sizes, and prints:

* prepare img/s with 1 and 2 processes (and with --ray, Ray Data on a local cluster), and disk size;
* peak RSS of the data path (open + 200 batches of 64 at --res px, in a fresh process) vs dataset
  size, in-memory vs streamed (in-memory is skipped where it would need more than --max-inmem-gb);
* training img/s streamed vs in-memory (dcgan at 64 px, alternating rounds, medians), the loader
  alone, and at --res px the loader alone vs a step of --arch when that architecture exists.

    python bench/data_scale.py --sizes 5000,20000,50000 --res 256 [--ray] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from common import machine, table  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "camera",
          "coins", "brick", "grass", "gravel", "moon", "page", "text", "horse", "colorwheel")


def photos():
    import skimage.data as sd

    out = []
    for name in PHOTOS:
        try:
            a = np.asarray(getattr(sd, name)())
        except Exception:  # not bundled in this scikit-image (needs a download): leave it out
            continue
        if a.dtype == bool:
            a = a.astype(np.uint8) * 255
        a = a.astype(np.uint8)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        out.append((name, a[..., :3]))
    return out


def make_source(root: Path, n: int, res: int, seed: int = 0) -> Path:
    """n JPEGs (res x res) under root/all/<photo>/, made once; returns root/all."""
    from PIL import Image

    done = root / "all" / ".done"
    have = int(done.read_text()) if done.exists() else 0
    if have >= n:
        return root / "all"
    pics = photos()
    for name, _ in pics:
        (root / "all" / name).mkdir(parents=True, exist_ok=True)
    for k in range(have, n):  # image k depends on (seed, k) only: a larger source extends a smaller one
        rng = np.random.default_rng([seed, k])
        name, a = pics[k % len(pics)]
        h, w = a.shape[:2]
        s = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
        top, left = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        crop = a[top:top + s, left:left + s]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.clip(crop.astype(np.float32) * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
        Image.fromarray(np.ascontiguousarray(crop)).resize((res, res), Image.BILINEAR).save(
            root / "all" / name / f"{k:06d}.jpg", quality=90)
    done.write_text(str(n))
    return root / "all"


def subset(src: Path, dst: Path, n: int) -> Path:
    """A folder of symlinks to the first n images (in file order), same classes; past the source's end the
    files are linked again under new names (a set larger than --source-images repeats pictures)."""
    if dst.exists():
        shutil.rmtree(dst)
    files = sorted((p for p in src.rglob("*.jpg")), key=lambda p: int(p.stem))
    for k in range(n):
        f = files[k % len(files)]
        (dst / f.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(f, dst / f.parent.name / f"{k:06d}.jpg")
    return dst


def timed_prepare(src: Path, out: Path, res: int, workers: int = 1, ray: bool = False) -> float:
    """img/s of `raygan data prepare` in a fresh process (start-up excluded: the manifest's own time)."""
    cmd = [sys.executable, "-m", "raygan", "data", "prepare", str(src), "--out", str(out), "--resolution",
           str(res), "--quiet", "--force", *(["--ray"] if ray else ["--workers", str(workers)])]
    p = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    m = json.loads((out / "manifest.json").read_text())
    return m["count"] / m["prepare_seconds"]


RSS_SCRIPT = r"""
import resource, sys, torch
torch.set_num_threads(1)
from raygan.data.streamed import load_training_data
from raygan.data.sampler import EpochSampler
root, res, stream = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
data = load_training_data("prepared", root=root, resolution=res, stream=stream)
s = EpochSampler(len(data.labels), 64, seed=0)
if stream:
    data.read_ahead(s)
acc = 0
for _ in range(200):
    acc += int(data.images[s.next()].float().mean() > 0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, type(data).__name__)
"""


def peak_rss_mb(root: Path, res: int, stream: bool) -> float:
    p = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(root), str(res), "1" if stream else "0"],
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    return float(p.stdout.split()[0])


def trainer(root: Path, res: int, stream: bool, arch: str, batch: int):
    from raygan.engine.loop import Trainer
    from raygan.tasks import load_config

    cfg = load_config(None, None, [
        "data.name=prepared", f"data.root={root}", f"data.resolution={res}", f"data.stream={str(stream).lower()}",
        f"model.arch={arch}", "model.g={ngf: 32}", "model.d={ndf: 32}", f"optim.batch_size={batch}",
        "ema.half_life_kimg=0", "tracking.enabled=false"])
    return Trainer(cfg, None, evaluator=None)


def train_img_s(t, steps: int) -> float:
    t.task.train_step(0)  # warm-up
    t0 = time.perf_counter()
    for k in range(steps):
        t.task.train_step(k)
    return steps * t.task.images_per_step() / (time.perf_counter() - t0)


def loader_img_s(data, batch: int, batches: int) -> float:
    from raygan.data.sampler import EpochSampler

    s = EpochSampler(len(data.labels), batch, seed=1)
    if hasattr(data, "read_ahead"):
        data.read_ahead(s)
    data.images[s.next()]
    t0 = time.perf_counter()
    for _ in range(batches):
        data.images[s.next()].float()
    return batches * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="5000,20000,50000")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--work", default=None, help="where the source and datasets go (default: a temp dir, removed)")
    ap.add_argument("--ray", action="store_true", help="also time prepare --ray on a local Ray cluster")
    ap.add_argument("--max-inmem-gb", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--arch", default="dcgan", help="architecture for the --res px step time, if it has one")
    ap.add_argument("--no-train", action="store_true", help="prepare and RSS only")
    ap.add_argument("--source-images", type=int, default=None,
                    help="distinct source pictures to write (default: the largest size); larger sets repeat them")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    sizes = sorted(int(s) for s in args.sizes.split(","))
    work = Path(args.work or tempfile.mkdtemp(prefix="raygan-data-scale-"))
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    n_src = min(args.source_images or sizes[-1], sizes[-1])
    src = make_source(work / "source", n_src, args.res)
    print(f"source: {n_src} JPEGs at {args.res} px in {time.perf_counter() - t0:.0f} s")

    prep_rows, sets = [], {}
    for n in sizes:
        s = subset(src, work / f"src-{n}", n)
        out = work / f"ds-{n}"
        if n == sizes[0]:
            one = timed_prepare(s, out, args.res, workers=1)
            ray = f"{timed_prepare(s, work / 'ds-ray', args.res, ray=True):.0f}" if args.ray else "-"
        else:
            one, ray = None, "-"
        two = timed_prepare(s, out, args.res, workers=2)
        m = json.loads((out / "manifest.json").read_text())
        prep_rows.append([n, f"{one:.0f}" if one else "-", f"{two:.0f}", ray, f"{m['bytes'] / 1e9:.2f}"])
        sets[n] = out
    print(table(["images", "prepare img/s, 1 proc", "2 procs", "--ray (local)", f"disk GB ({args.res} px raw)"],
                prep_rows))

    rss_rows = []
    for n in sizes:
        need = n * 3 * args.res * args.res / 1e9
        mem = f"{peak_rss_mb(sets[n], args.res, False):.0f}" if need <= args.max_inmem_gb else \
            f"skipped (needs {need:.1f} GB)"
        rss_rows.append([n, mem, f"{peak_rss_mb(sets[n], args.res, True):.0f}"])
    print(table(["images", f"peak RSS MB, in-memory ({args.res} px)", "streamed"], rss_rows))

    n = sizes[0]
    rows = []
    for res, arch in () if args.no_train else ((64, "dcgan"), (args.res, args.arch)):
        try:
            mem_t, st_t = trainer(sets[n], res, False, arch, 64), trainer(sets[n], res, True, arch, 64)
        except Exception as e:  # no such architecture at this resolution: the loader alone
            print(f"{arch} at {res} px: {' '.join(str(e).split())[:120]}; loader only")
            mem_t = st_t = None
        a, b = [], []
        for _ in range(args.rounds if mem_t else 0):
            a.append(train_img_s(mem_t, args.steps))
            b.append(train_img_s(st_t, args.steps))
        from raygan.data.streamed import load_training_data

        stream_data = load_training_data("prepared", root=str(sets[n]), resolution=res, stream=True)
        load = loader_img_s(stream_data, 64, 100)
        stream_data.close()
        if a:
            rows.append([f"{res} px, {arch}", f"{statistics.median(a):.1f}", f"{statistics.median(b):.1f}",
                         f"{statistics.median(b) / statistics.median(a):.2f}", f"{load:.0f}"])
        else:
            rows.append([f"{res} px, (no {arch})", "-", "-", "-", f"{load:.0f}"])
    if rows:
        print(table(["train", "in-memory img/s", "streamed img/s", "ratio", "loader alone img/s"], rows))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
