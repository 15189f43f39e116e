"""`raygan data prepare SRC --out DIR`: a folder, an archive or a built-in source written once as
a prepared dataset (the format: raygan.data.prepared), in the spirit of StyleGAN2-ADA's dataset_tool.

    manifest = prepare("photos/", "photos-64", resolution=64)              # all local cores
    manifest = prepare("photos/", "photos-native", native=True, workers=2)  # PNGs at native size

Images are split into shards of `shard_size` in source order; each shard is one job (read,
decode, fit, write), run by a process pool over the local cores, or by Ray Data across a
cluster (raygan.distributed.prepare passes its own `run_jobs`). Nothing looks finished before
it is: everything is written under `DIR.partial/` (each shard to a temp name, then renamed, with
a sidecar saying what it holds), the manifest last, then `DIR.partial` is renamed to `DIR` in
one step. Interrupted, the same command resumes: finished shards of the same plan (same source
listing and options) are kept; a `.partial` of another plan is refused unless `--force`.
An existing prepared dataset is replaced only with `force` (after the new one is complete); any
other existing path, or an output that overlaps the source, is never touched. Unreadable,
zero-byte, truncated or bomb-sized images are skipped, counted and listed in the manifest.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import numpy as np

from raygan.data.prepared import FORMAT, MANIFEST, PARTIAL_SUFFIX, VERSION
from raygan.data.prepare_sources import Opener, builtin_images, decode, list_source
from raygan.errors import ConfigError, DataError

SHARD_SIZE = 256  # images per shard (one job); at 256 px RGB a fitted shard is ~50 MB
WORK = ".work"  # inside DIR.partial: the plan and the shards' sidecars
RunJobs = Callable[[List[Dict[str, Any]], int], Iterator[Dict[str, Any]]]


def _schema():
    import pyarrow as pa

    return pa.schema([("image", pa.binary()), ("label", pa.int64()), ("height", pa.int32()),
                      ("width", pa.int32()), ("name", pa.string())])


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _write_rows(path: Path, rows: Iterable[tuple]) -> Dict[str, Any]:
    """Rows (image bytes, label, h, w, name) -> one Arrow IPC file, one record batch per row, written to a
    temp name then renamed; returns its size, sha256, labels, names and per-image digests."""
    import pyarrow as pa

    schema, tmp = _schema(), path.with_name(path.name + ".tmp")
    labels, digests, names = [], [], []
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        for data, label, h, w_, name in rows:
            w.write_batch(pa.record_batch([pa.array([data], pa.binary()), pa.array([label], pa.int64()),
                                           pa.array([h], pa.int32()), pa.array([w_], pa.int32()),
                                           pa.array([name], pa.string())], schema=schema))
            head = np.array([label, h, w_], dtype="<i8").tobytes()
            digests.append(hashlib.sha256(head + data).hexdigest()[:32])
            labels.append(int(label))
            names.append(name)
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    os.replace(tmp, path)
    return {"file": path.name, "count": len(labels), "bytes": path.stat().st_size, "sha256": h.hexdigest(),
            "labels": labels, "digests": digests, "names": names}


def _encode(x: np.ndarray, native: bool) -> bytes:
    if not native:
        return np.ascontiguousarray(x).tobytes()
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)).save(buf, "PNG", compress_level=3)
    return buf.getvalue()


def write_shard(job: Dict[str, Any]) -> Dict[str, Any]:
    """One job: read, decode and fit its items, write its shard and sidecar (in any process or Ray task)."""
    import torch

    torch.set_num_threads(1)
    opener, skipped = Opener(job["spec"]), []

    def rows():
        for name, label in job["items"]:
            try:
                x = decode(opener.read(name), name, job["resolution"], job["channels"])
            except DataError as e:
                skipped.append({"file": name, "reason": str(e)})
                continue
            yield _encode(x, job["native"]), int(label), int(x.shape[1]), int(x.shape[2]), name

    try:
        meta = _write_rows(Path(job["dir"]) / job["file"], rows())
    finally:
        opener.close()
    meta["skipped"] = skipped
    _atomic_json(Path(job["dir"]) / WORK / (job["file"] + ".json"), meta)
    return meta


def run_local(jobs: List[Dict[str, Any]], workers: int) -> Iterator[Dict[str, Any]]:
    """Jobs over a process pool of `workers` (in this process when 1), results as they finish."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield write_shard(job)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import threading

    # fork is cheapest (no re-import of torch) and safe while this process runs no other thread
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if threading.active_count() == 1 and "fork" in methods else
                         "forkserver" if "forkserver" in methods else "spawn")
    ex = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx)
    try:
        for fut in as_completed([ex.submit(write_shard, job) for job in jobs]):
            yield fut.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _check_out(src: str, kind: str, out: Path, force: bool) -> None:
    from raygan.data.prepared import is_prepared

    if kind != "builtin":
        s = Path(src).expanduser().resolve()
        if out == s or s in out.parents or out in s.parents:
            raise DataError(f"--out {out} overlaps the source {s}; write the prepared dataset somewhere else "
                            "(the source is never modified)")
    if out.exists() or out.is_symlink():
        if is_prepared(str(out)):
            if not force:
                raise DataError(f"{out} is already a prepared dataset; pass --force to replace it (the old one "
                                "is kept until the new one is complete)")
        elif not (out.is_dir() and not out.is_symlink() and not any(out.iterdir())):
            raise DataError(f"{out} exists and is not a prepared dataset; refusing to write there (nothing is "
                            "replaced): choose another --out")


def _plan(spec, items, classes, resolution, channels, native, shard_size, source) -> Dict[str, Any]:
    listing = hashlib.sha256(json.dumps([spec, items, classes]).encode()).hexdigest()
    return {"format": FORMAT, "version": VERSION, "source": source, "spec": spec, "resolution": resolution,
            "channels": channels, "native": native, "shard_size": shard_size, "listing": listing}


def _resume(partial: Path, plan: Dict[str, Any], force: bool):
    """(finished shards of the same plan in DIR.partial as {file: sidecar}, the held lock). A `.partial` of
    another plan is refused, or removed with `force`; one that raygan did not write is never touched."""
    import fcntl

    work = partial / WORK
    if partial.exists():
        try:
            old = json.loads((work / "plan.json").read_text())
        except (OSError, ValueError):
            raise DataError(f"{partial} exists and is not an unfinished raygan prepare; remove or rename it "
                            "(nothing was written)") from None
        if old != plan:
            if not force:
                raise DataError(f"{partial} holds an unfinished prepare of another source or other options; "
                                "pass --force to discard it, or run that prepare again to finish it")
            shutil.rmtree(partial)
    work.mkdir(parents=True, exist_ok=True)
    lock = open(work / "lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise DataError(f"another prepare is writing {partial} now; wait for it to finish") from None
    _atomic_json(work / "plan.json", plan)
    done = {}
    for side in sorted(work.glob("shard-*.arrow.json")):
        try:
            meta = json.loads(side.read_text())
            if (partial / meta["file"]).stat().st_size == meta["bytes"]:
                done[meta["file"]] = meta
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return done, lock


def _progress(total: int, initial: int, show: bool):
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread (the process pool may fork)
    return tqdm(total=total, initial=initial, unit="img", disable=not show, file=sys.stderr,
                dynamic_ncols=True, desc="prepare", smoothing=0.1)


def prepare(src: str, out: str, *, resolution: Optional[int] = None, channels: Optional[int] = None,
            native: bool = False, split: str = "train", workers: Optional[int] = None,
            shard_size: int = SHARD_SIZE, force: bool = False, progress: bool = True,
            run_jobs: Optional[RunJobs] = None, data_root: Optional[str] = None) -> Dict[str, Any]:
    """Write the prepared dataset `out` from `src` (see the module doc); returns its manifest."""
    from raygan.data.prepare_sources import source_kind

    if native and resolution is not None:
        raise ConfigError("--native keeps every image at its own size; it takes no --resolution")
    if channels not in (None, 1, 3):
        raise ConfigError(f"--channels must be 1 or 3, got {channels}")
    if shard_size < 1 or (resolution is not None and resolution < 1):
        raise ConfigError("--shard-size and --resolution must be positive")
    if "://" in str(out):
        raise ConfigError(f"--out {out}: prepare writes to a local or mounted (shared) directory; copy it to "
                          "object storage afterwards (training reads s3://, gs://, ... URIs)")
    kind = source_kind(src)
    if kind in ("folder", "zip", "tar") and resolution is None and not native:
        raise ConfigError(f"{src}: pass --resolution N (images fitted once to N x N) or --native (kept at "
                          "their own size, for patch training)")
    out_p = Path(out).expanduser().resolve()
    _check_out(src, kind, out_p, force)
    spec, items, classes = list_source(src, split)
    data = None
    if kind == "builtin":
        data = builtin_images(spec, resolution, channels, data_root)
        items, classes = [(str(i), int(y)) for i, y in enumerate(data.labels.tolist())], list(data.class_names)
        source = f"{src} ({data.source})"
    else:
        source = str(Path(src).expanduser().resolve())
    fitting = {"resolution": resolution, "channels": channels or (None if kind == "builtin" else 3),
               "crop": None if native else "center square", "native": native,
               "rule": "raygan.data.dataset.fit (<= 4 px smaller: zero-padded; else bilinear antialias resize)"}
    plan = _plan(spec, items, classes, resolution, channels, native, shard_size, source)
    partial = out_p.with_name(out_p.name + PARTIAL_SUFFIX)
    done, lock = _resume(partial, plan, force)
    jobs = [{"spec": spec, "file": f"shard-{k:05d}.arrow", "items": items[i:i + shard_size], "dir": str(partial),
             "resolution": resolution, "channels": channels, "native": native}
            for k, i in enumerate(range(0, len(items), shard_size))]
    todo = [j for j in jobs if j["file"] not in done]
    if done and progress:
        print(f"resuming {partial}: {len(jobs) - len(todo)} of {len(jobs)} shards already written",
              file=sys.stderr)
    workers = workers or os.cpu_count() or 1
    t0, bar = time.perf_counter(), _progress(len(items), sum(len(j["items"]) for j in jobs if j["file"] in done),
                                             progress)
    try:
        if data is not None:  # a built-in source is already in memory: write it here
            def jobs_iter():
                for j in todo:
                    idx = [int(n) for n, _ in j["items"]]
                    rows = ((_encode(data.images[i].numpy(), native), int(data.labels[i]),
                             int(data.images.shape[2]), int(data.images.shape[3]), str(i)) for i in idx)
                    meta = {**_write_rows(partial / j["file"], rows), "skipped": []}
                    _atomic_json(partial / WORK / (j["file"] + ".json"), meta)
                    yield meta
            results = jobs_iter()
        else:
            results = (run_jobs or run_local)(todo, workers)
        for meta in results:
            done[meta["file"]] = meta
            bar.update(meta["count"] + len(meta["skipped"]))
    except KeyboardInterrupt:
        bar.close()
        lock.close()
        print(f"raygan: prepare interrupted; {len(done)} of {len(jobs)} shards are in {partial}: run the same "
              "command again to resume", file=sys.stderr)
        raise
    finally:
        bar.close()
    try:
        return _finalise(out_p, partial, jobs, done, classes, source, fitting, native, resolution, channels, kind,
                         data, time.perf_counter() - t0)
    finally:
        lock.close()


def _finalise(out_p: Path, partial: Path, jobs, done, classes, source, fitting, native, resolution, channels,
              kind, data, seconds: float) -> Dict[str, Any]:
    from raygan import __version__

    metas = [done[j["file"]] for j in jobs]
    shards, labels, digests, skipped = [], [], [], []
    for m in metas:
        skipped += m["skipped"]
        if m["count"] == 0:
            (partial / m["file"]).unlink(missing_ok=True)
            continue
        shards.append({k: m[k] for k in ("file", "count", "bytes", "sha256")})
        labels += m["labels"]
        digests += m["digests"]
    if not labels:
        raise DataError(f"none of the {len(skipped)} images of {source} could be read (first: "
                        f"{skipped[0]['reason'] if skipped else 'none'}); nothing was written")
    if native:
        shape = None
    elif data is not None:
        shape = [int(v) for v in data.images.shape[1:]]
    else:
        shape = [1 if channels == 1 else 3, resolution, resolution]
    manifest = {
        "format": FORMAT, "version": VERSION, "count": len(labels), "shape": shape,
        "storage": "png" if native else "raw", "num_classes": len(classes), "class_names": list(classes),
        "source": source, "source_kind": kind, "fitting": fitting,
        "content_hash": hashlib.sha256("".join(digests).encode()).hexdigest(),
        "shards": shards, "skipped_count": len(skipped), "skipped": skipped,
        "bytes": sum(s["bytes"] for s in shards), "created_by": f"raygan {__version__}",
        "prepare_seconds": round(seconds, 3), "labels": labels,
    }
    _atomic_json(partial / MANIFEST, manifest)
    old = None
    if out_p.exists():  # an empty directory, or a prepared dataset replaced with --force
        if any(out_p.iterdir()):
            old = out_p.with_name(f"{out_p.name}.old-{os.getpid()}")
            os.replace(out_p, old)
        else:
            out_p.rmdir()
    os.replace(partial, out_p)  # the one step that makes it finished
    shutil.rmtree(out_p / WORK, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return manifest
