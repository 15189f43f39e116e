"""Which files `raygan repair` and `raygan translate` read and write, and how outputs are written:
one path for both commands (and the file checks of `raygan sample`). Core: no ray, no mlflow.

    pairs = plan_pairs(Path("photos"), Path("restored"))      # [(input, output)], checked
    check_outputs(pairs, force=False)                         # before any model runs
    with OutputWriter() as w:
        w.save(y01, out, depth=16)                            # atomic: temp name + os.replace

Rules (the same for every command):
* An input file -> `--out` (a file; or `--out/<input name>` when `--out` is a folder or ends
  with a separator). An input folder -> every image under it, subfolders included, mirrored
  under `--out` with the same relative path and file name, format included (`x.png` and `x.jpg`
  stay two outputs, `x.jpg` is written as JPEG); hidden names are skipped.
* Refused before anything is written: `--out` inside the input folder, an output that is an
  input (the same file or a hard link of it; even with --force), an existing output without
  --force, a path whose parent is a file, a folder that cannot be written.
* Outputs are written atomically (a hidden temp file in the same folder, then os.replace): an
  output is whole or absent. When a write fails (disk full, permission), the temp file and every
  output this run created are removed (files it replaced with --force are not restored), so a
  rerun starts clean; the error is one line.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import torch

from raygan.data.imageio import EXTENSIONS, Depth, encode
from raygan.errors import DataError

Pair = Tuple[Path, Path]


class Written(list):
    """The output files written (a list of Paths), with `skipped` [(input, reason)] and `notes`."""

    def __init__(self, items: Iterable[Path] = (), skipped: Sequence[Tuple[Path, str]] = (),
                 notes: Sequence[str] = ()):
        super().__init__(items)
        self.skipped = list(skipped)
        self.notes = list(notes)


def is_image(p: Path) -> bool:
    return p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")


def images_under(d: Path) -> List[Path]:
    """Every image below `d`, subfolders included (hidden names skipped), in sorted path order."""
    out: List[Path] = []
    for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if is_image(Path(f))]
    return sorted(out, key=lambda p: p.relative_to(d).parts)


def _inside(child: Path, parent: Path) -> bool:
    c, p = child.resolve(), parent.resolve()
    return c == p or p in c.parents


def plan_pairs(src: Path, out: Path) -> List[Pair]:
    """(input, output) pairs for an input file or folder (see the module doc)."""
    src, out = Path(os.path.expanduser(str(src))), Path(os.path.expanduser(str(out)))
    if not src.exists():
        raise DataError(f"input {src} does not exist")
    if src.is_dir():
        if out.exists() and not out.is_dir():
            raise DataError(f"input {src} is a folder, so --out must be a folder; {out} is a file")
        if _inside(out, src):
            raise DataError(f"--out {out} is inside the input folder {src}; choose an output folder outside it")
        files = images_under(src)
        if not files:
            raise DataError(f"{src} holds no images ({', '.join(e.lstrip('.') for e in EXTENSIONS)})")
        return [(f, out / f.relative_to(src)) for f in files]
    if src.suffix.lower() not in EXTENSIONS:
        raise DataError(f"input {src} is not an image file ({', '.join(EXTENSIONS)})")
    if out.is_dir() or str(out).endswith(os.sep):
        out = out / src.name
    elif out.suffix.lower() not in EXTENSIONS:
        raise DataError(f"--out {out}: name an image file ({', '.join(EXTENSIONS)}) or a folder")
    return [(src, out)]


def _existing_ancestor(p: Path) -> Path:
    probe = p
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe


def check_writable(out: Path, folder: Path) -> None:
    """`folder` (where `out` goes) can be created and written: no file in the way, not read-only."""
    probe = _existing_ancestor(folder if str(folder) else Path("."))
    if not probe.is_dir():
        raise DataError(f"--out {out}: {probe} is a file, not a folder")
    try:  # really try (os.access says yes to root everywhere, read-only mounts included)
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError:
        raise DataError(f"--out {out}: {probe} is not writable") from None


def check_outputs(pairs: Sequence[Pair], force: bool, out_arg: Optional[Path] = None) -> None:
    """Refuse, before anything is written: an output that is an input (same file or a hard link;
    even with --force), an output that is a folder, an existing output without --force, a parent
    that is a file, a folder that cannot be written."""
    inputs = {}
    for p, _ in pairs:
        st = p.stat()
        inputs[(st.st_dev, st.st_ino)] = p
    exists = []
    for p, o in pairs:
        if o.exists():
            st = o.stat()
            if (st.st_dev, st.st_ino) in inputs:
                same = inputs[(st.st_dev, st.st_ino)]
                what = "is the input" if o.resolve() == same.resolve() else f"is a hard link of the input {same}"
                raise DataError(f"--out {o} {what}; writing it would destroy the input, choose another output")
            if o.is_dir():
                raise DataError(f"output {o} is a folder; choose another output")
            exists.append(o)
    if exists and not force:
        more = f" (and {len(exists) - 1} more)" if len(exists) > 1 else ""
        raise DataError(f"{exists[0]} exists{more}; choose another output or pass --force to replace it")
    for folder, o in {o.parent: o for _, o in pairs}.items():
        check_writable(out_arg or o, folder)


def check_paths(src, out, force: bool) -> List[Pair]:
    """plan_pairs + check_outputs: what a command checks before it loads a model."""
    pairs = plan_pairs(Path(src), Path(out))
    check_outputs(pairs, force)
    return pairs


def _umask() -> int:
    mask = os.umask(0o022)  # read it (the only way), then put it back
    os.umask(mask)
    return mask


class OutputWriter:
    """Writes outputs atomically; on an error inside the `with`, removes the temp file, the
    outputs it created and the (empty) folders it made."""

    def __init__(self) -> None:
        self.created: List[Path] = []
        self.dirs: List[Path] = []

    def __enter__(self) -> "OutputWriter":
        return self

    def _mkdir(self, d: Path) -> None:
        missing = []
        while not d.exists():
            missing.append(d)
            d = d.parent
        for m in reversed(missing):
            m.mkdir()
            self.dirs.append(m)

    def save(self, y: torch.Tensor, path: Path, depth: Depth = 8, scale: float = 255.0) -> Optional[str]:
        """Write (C, H, W) on [0, 1] as `path`; returns a note when the depth was reduced."""
        image, fmt, kw, note = encode(y, path, depth, scale)
        self.write_with(path, lambda f: image.save(f, format=fmt, **kw))
        return note

    def write_with(self, path: Path, write) -> None:
        """Call `write(temp_path)`, then move the result onto `path` atomically."""
        existed = path.exists()
        tmp = None
        try:
            self._mkdir(path.parent)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".raygan-tmp", dir=path.parent)
            os.close(fd)
            tmp = Path(name)
            write(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an output gets the user's usual mode
            os.replace(tmp, path)
            tmp = None
        except OSError as e:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
                tmp = None
            n = len(self.created)
            self.rollback()
            undo = f"; removed the {n} output(s) written before it" if n else ""
            if e.errno == errno.ENOSPC:
                raise DataError(f"disk full while writing {path}{undo}") from None
            raise DataError(f"cannot write {path}: {e.strerror or e}{undo}") from None
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        if not existed:
            self.created.append(path)

    def rollback(self) -> None:
        for p in reversed(self.created):
            p.unlink(missing_ok=True)
        for d in reversed(self.dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        self.created, self.dirs = [], []

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.rollback()
        return False


def write_each(pairs: Sequence[Pair], single: bool,
               convert: Callable[[Path], Tuple[torch.Tensor, Any]]) -> Written:
    """The per-file loop of repair and translate: `convert(input)` gives (pixels in [0, 1], C x H x W;
    the picture it read, for its depth and scale); each result is written atomically to its output.
    A DataError skips that file (listed in `.skipped`) unless the input is a single file; a failure
    while writing removes this run's outputs (OutputWriter)."""
    written: List[Path] = []
    skipped: List[Tuple[Path, str]] = []
    notes: List[str] = []
    with OutputWriter() as w:
        for src, out in pairs:
            try:
                y, pic = convert(src)
            except DataError as e:
                if single:
                    raise
                skipped.append((src, str(e)))
                continue
            note = w.save(y, out, pic.depth, pic.scale)
            written.append(out)
            if note:
                notes.append(note)
    return Written(written, skipped, notes)
