"""The one owner of a run directory, local path or storage URI, whichever host wrote it.

Layout (the same for a local run, a Ray Train run and a Tune trial's trainer):

    config.yaml          the resolved config (the run's identity; --resume reads it)
    run.json             the run record: MLflow run id, tracking URI and the run dir it belongs to
                         (a copied run dir resumes into a new MLflow run), host, workers
    checkpoints/ckpt-<nimg>/   state.pt, meta.json, rng-rank<r>.pt
    samples/grid-<nimg>.png    the task's picture per tick
    metrics.jsonl        one line per tick (the run's own record)
    curves.png, summary.json   written at the end

`eval`, `sample`, `repair`, `--resume` and MLflow logging read every run the same way through
this class. A local run directory is locked for the life of a run (one writer at a time).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional


from raygan.hosts import storage
from raygan.engine.checkpoint import CHECKPOINT_NAME, STATE_FILE, list_checkpoints
from raygan.errors import RayganError, RunDirError

CONFIG_FILE = "config.yaml"
RECORD_FILE = "run.json"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CURVES_FILE = "curves.png"
LOCK_FILE = ".raygan.lock"


def default_name(preset: Optional[str], prefix: str = "") -> str:
    return f"{prefix}{preset or 'custom'}-{time.strftime('%Y%m%d-%H%M%S')}"


def already_complete(cfg, nimg: Optional[int], where: Any, checkpoint: Any,
                     say: Any = None) -> Optional[Dict[str, Any]]:
    """A resumed run whose checkpoint has seen `train.total_kimg` already: it says so (one line,
    with how to go further) and returns the run's result; None when there is training left.
    `checkpoint`: the latest checkpoint, or a callable that finds it (asked only for a complete run)."""
    if nimg is None or nimg < cfg.train.total_nimg:
        return None
    line = (f"run {where} is complete ({nimg / 1000:g} kimg = train.total_kimg); nothing to do "
            f"(raise it with --set train.total_kimg=... to train further)")
    if say is not None:
        say(line)
    checkpoint = checkpoint() if callable(checkpoint) else checkpoint
    return {"run_dir": str(where), "kimg": nimg / 1000.0, "complete": True,
            "checkpoint": None if checkpoint is None else str(checkpoint), "final": {}}


def _is_row(row: Any) -> bool:
    kimg = row.get("kimg", 0) if isinstance(row, dict) else None
    return isinstance(kimg, (int, float)) and not isinstance(kimg, bool) and math.isfinite(kimg)


class RunStore:
    def __init__(self, location: "str | os.PathLike[str]"):
        self.location = storage.resolve(str(location))
        self.is_local = not storage.is_uri(self.location)

    @classmethod
    def new_default(cls, preset: Optional[str], base: str = "runs") -> "RunStore":
        """A fresh run dir under `base` named <preset>-<time> (never an existing one)."""
        name = default_name(preset)
        path, i = storage.join(storage.resolve(base), name), 1
        while storage.exists(path):
            path, i = storage.join(storage.resolve(base), f"{name}-{i}"), i + 1
        return cls(path)

    def __repr__(self) -> str:
        return f"RunStore({self.location})"

    def __str__(self) -> str:
        return self.location

    @property
    def path(self) -> Path:
        if not self.is_local:
            raise RunDirError(f"{self.location} is not a local directory")
        return Path(self.location)

    @property
    def name(self) -> str:
        return self.location.rstrip("/").rsplit("/", 1)[-1]

    def join(self, *parts: str) -> str:
        return storage.join(self.location, *parts)

    # ------------------------------------------------------------------ identity
    def holds_run(self) -> bool:
        return any(storage.exists(self.join(f)) for f in (CONFIG_FILE, RECORD_FILE, CHECKPOINTS))

    def check_fresh(self) -> None:
        """A new run must not land in a directory that holds one, nor in a file."""
        if self.is_local and self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"run dir {self.location} is a file, not a directory")
        if self.holds_run():
            raise RunDirError(f"run dir {self.location} already holds a run; pass --resume to continue it "
                              f"or choose another --run-dir")

    def check_writable(self) -> None:
        """Before anything is written: the directory (or its nearest existing parent) is writable."""
        if not self.is_local:
            storage.check_writable(self.location, "run dir")
            return
        p = self.path
        if p.exists() and not p.is_dir():
            raise RunDirError(f"run dir {p} is a file, not a directory")
        probe = p
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise RunDirError(f"run dir {p}: {probe} is a file, not a directory")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise RunDirError(f"run dir {p} cannot be created or written ({probe} is not writable)")

    def copy_of(self, recorded: Optional[str] = None) -> Optional[str]:
        """Where this run dir was copied from: its record names another location (`run_dir`, else
        `recorded`, the MLflow run's tag) that still holds the same MLflow run. None when it is the
        original or was moved (the old place no longer holds that run)."""
        record = self.read_record()
        run_id, where = record.get("run_id"), record.get("run_dir") or recorded
        if not run_id or not where or _same_place(where, self.location):
            return None
        try:
            original = RunStore(where).read_record()
        except RayganError:
            return None
        return where if original.get("run_id") == run_id else None

    def read_config(self, overrides: Optional[List[str]] = None):
        """The run's own config, with --set overrides on top (e.g. a larger train.total_kimg)."""
        from raygan.config import apply_overrides
        from raygan.config.safe import load_yaml
        from raygan.tasks import build_config

        text = self._read_untrusted(CONFIG_FILE)
        if text is None:
            raise RunDirError(f"run dir {self.location} holds no run ({CONFIG_FILE} missing)")
        data = load_yaml(text, self.join(CONFIG_FILE), RunDirError) or {}
        if not isinstance(data, dict):
            raise RunDirError(f"{self.join(CONFIG_FILE)}: expected a mapping of config sections, "
                              f"got {type(data).__name__}")
        return build_config(apply_overrides(data, overrides))

    def write_config(self, cfg) -> None:
        storage.write_text(self.join(CONFIG_FILE), cfg.to_yaml())

    def _read_untrusted(self, name: str) -> Optional[str]:
        """A run file's text (None when absent), read as untrusted input: UTF-8, and at most
        MAX_TEXT_BYTES except metrics.jsonl (which grows with the run)."""
        from raygan.config.safe import MAX_TEXT_BYTES, read_limited

        path = self.join(name)
        if self.is_local:
            if not Path(path).is_file():
                return None
            return read_limited(path, "run file", RunDirError, limit=None if name == METRICS_FILE
                                else MAX_TEXT_BYTES)
        try:
            return storage.read_text(path)
        except UnicodeDecodeError:
            raise RunDirError(f"{path} is not text (not UTF-8)") from None

    def read_record(self) -> Dict[str, Any]:
        """run.json: a JSON object (anything else is one line naming the file)."""
        from raygan.config.safe import check_tree

        text = self._read_untrusted(RECORD_FILE)
        if not text:
            return {}
        try:
            record = json.loads(text)
        except (ValueError, RecursionError):
            raise RunDirError(f"{self.join(RECORD_FILE)} is not valid JSON") from None
        if not isinstance(record, dict):
            raise RunDirError(f"{self.join(RECORD_FILE)} is not a run record (a JSON object expected, "
                              f"got {type(record).__name__})")
        check_tree(record, self.join(RECORD_FILE), RunDirError)
        return record

    def update_record(self, **values: Any) -> Dict[str, Any]:
        record = {**self.read_record(), **{k: v for k, v in values.items() if v is not None}}
        storage.write_text(self.join(RECORD_FILE), json.dumps(record, indent=1, sort_keys=True))
        return record

    # ------------------------------------------------------------------ checkpoints
    def checkpoints(self) -> List[str]:
        """Complete checkpoints, oldest first (a half-written one has no state.pt)."""
        root = self.join(CHECKPOINTS)
        if self.is_local:
            return [str(p) for p in list_checkpoints(Path(root))]
        found = []
        for name in storage.list_dir(root):
            m = CHECKPOINT_NAME.match(name)
            if m and storage.exists(storage.join(root, name, STATE_FILE)):
                found.append((int(m.group(1)), storage.join(root, name)))
        return [p for _, p in sorted(found)]

    def latest_checkpoint(self) -> Optional[str]:
        ckpts = self.checkpoints()
        return ckpts[-1] if ckpts else None

    def resume_checkpoint(self) -> str:
        ckpt = self.latest_checkpoint()
        if ckpt is None:
            raise RunDirError(f"run dir {self.location} has no checkpoint yet")
        return ckpt

    @contextmanager
    def local_checkpoint(self, ckpt: Optional[str] = None) -> Iterator[Path]:
        """A local directory holding the checkpoint (downloaded first for a URI run)."""
        ckpt = ckpt or self.resume_checkpoint()
        if not storage.is_uri(ckpt):
            yield Path(ckpt)
            return
        import tempfile

        import pyarrow.fs

        tmp = Path(tempfile.mkdtemp(prefix="raygan-ckpt-"))
        try:
            fs, inner = storage._fs(ckpt)
            pyarrow.fs.copy_files(inner, str(tmp), source_filesystem=fs)
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def clean_stale(self) -> List[str]:
        """Remove what a killed checkpoint write left behind (.tmp-ckpt-*, .old-ckpt-*)."""
        if not self.is_local:
            return []
        root = self.path / CHECKPOINTS
        removed = []
        if root.is_dir():
            for p in root.iterdir():
                if p.name.startswith((".tmp-ckpt-", ".old-ckpt-")):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p.name)
        return removed

    # ------------------------------------------------------------------ per-tick files
    def picture_path(self, nimg: int) -> str:
        return self.join(SAMPLES, f"grid-{nimg:010d}.png")

    def pictures(self) -> List[str]:
        return [self.join(SAMPLES, n) for n in storage.list_dir(self.join(SAMPLES)) if n.endswith(".png")]

    def metrics(self) -> List[Dict[str, Any]]:
        """The ticks in metrics.jsonl. A last line without its newline that does not parse is a
        write cut short by a crash or still under way: it is left out (a resume rewrites the file
        without it; that tick is past the last checkpoint and is redone). Any other line that is
        not a JSON object is one error naming the file and the line."""
        return self._metrics_rows()[0]

    def _metrics_rows(self):
        text = self._read_untrusted(METRICS_FILE) or ""
        lines = text.split("\n")
        torn = False
        if lines and lines[-1].strip():  # no final newline: the last write may be cut short
            try:
                json.loads(lines[-1])
            except (ValueError, RecursionError):
                lines, torn = lines[:-1], True
        rows = []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                row = None
            if not _is_row(row):
                raise RunDirError(f"{self.join(METRICS_FILE)} line {i} is not a metrics row (a JSON object "
                                  f"with a numeric kimg); fix or remove that line")
            rows.append(row)
        return rows, torn

    def append_metrics(self, row: Dict[str, Any]) -> None:
        storage.append_text(self.join(METRICS_FILE), json.dumps(row, sort_keys=True) + "\n")

    def truncate_metrics_after(self, nimg: int) -> int:
        """Drop ticks past `nimg` (a resume redoes them); returns how many were dropped."""
        rows, torn = self._metrics_rows()
        keep = [r for r in rows if round(r.get("kimg", 0) * 1000) <= nimg]
        if len(keep) != len(rows) or torn:
            storage.write_text(self.join(METRICS_FILE), "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))
        return len(rows) - len(keep)

    def write_summary(self, summary: Dict[str, Any]) -> str:
        path = self.join(SUMMARY_FILE)
        storage.write_text(path, json.dumps(summary, indent=1, default=str))
        return path

    # ------------------------------------------------------------------ one writer at a time
    @contextmanager
    def lock(self, what: str = "run dir", other: str = "--run-dir") -> Iterator[None]:
        """An exclusive lock on a local run dir (or a sweep's folder) for the life of a run, local or
        on Ray; a second process gets one line. (A URI run relies on the Ray run name being
        unique instead.)"""
        if not self.is_local:
            yield
            return
        import fcntl

        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # e.g. under /proc, where even root's access() check passes
            raise RunDirError(f"{what} {self.location} is not writable ({e.strerror or type(e).__name__})") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                raise RunDirError(f"{what} {self.location} is in use by {holder}; wait for it to finish "
                                  f"or choose another {other}") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}".encode())
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @contextmanager
    def claim(self, what: str = "run dir", other: str = "--run-dir") -> Iterator["Claim"]:
        """`lock()` for a start: until the caller sets `claim.started` (the run exists), a failure
        removes what this start created (the lock file, the directory and the empty parents it
        made); anything another process wrote stays. Taken before a cluster starts, so a second
        start is refused in one line and writes nothing."""
        top = _first_missing(self.path) if self.is_local else None
        claim = Claim()
        with self.lock(what, other):
            try:
                yield claim
            except BaseException:
                if not claim.started and self.is_local:
                    _remove_unstarted(self.path, top)
                raise


class Claim:
    """What `RunStore.claim()` yields: set `started = True` once the run exists (never removed)."""

    started = False


def _same_place(a: str, b: str) -> bool:
    if storage.is_uri(a) or storage.is_uri(b):
        return a.rstrip("/") == b.rstrip("/")
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _first_missing(path: Path) -> Optional[Path]:
    """The topmost directory of `path` that does not exist yet (None when `path` exists)."""
    top = None
    while not path.exists():
        top, path = path, path.parent
    return top


def _remove_unstarted(run_dir: Path, top: Optional[Path]) -> None:
    """Remove what a failed start created: our lock file when nothing else is there, then the
    run dir and the empty parents it created up to `top` (None: the run dir existed before, it
    stays); anything another process wrote stays."""
    try:
        if {p.name for p in run_dir.iterdir()} <= {LOCK_FILE}:
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
        d = run_dir
        while top is not None:
            d.rmdir()  # only when empty
            if d == top:
                break
            d = d.parent
    except OSError:
        pass
