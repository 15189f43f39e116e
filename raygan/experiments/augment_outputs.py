"""Where `raygan augment` writes, checked before anything trains.

Every output (the work dir with each cell's GAN run, the table, the plot) is checked up front:
the folder can be made and written to (a file is created there and removed), a given --plot or
--table does not exist yet (nothing of the user's is overwritten) and the plot's suffix is a
format matplotlib writes. The defaults go into the work dir (augment.txt, augment.png); when an
earlier call left those there, the next free name (augment-2.png, ...) is taken.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from raygan.errors import ConfigError

PathLike = Union[str, Path, None]


@dataclass(frozen=True)
class Outputs:
    work: Path
    table: Path
    plot: Path


def _writable_dir(d: Path, what: str) -> None:
    if d.exists() and not d.is_dir():
        raise ConfigError(f"{what} {d}: exists and is not a directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=d):
            pass
    except OSError as e:
        raise ConfigError(f"{what} {d}: cannot write there ({e.strerror or e}); choose another path") from None


def _given_file(path: Path, what: str) -> Path:
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a directory; give a file name")
    if path.exists():
        raise ConfigError(f"{what} {path}: exists; it is not overwritten (choose another path or remove it)")
    _writable_dir(path.parent, f"{what} folder of")
    return path


def _free(path: Path) -> Path:
    n = 2
    out = path
    while out.exists():
        out = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return out


def check_plot_suffix(path: Path) -> None:
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    if path.suffix and path.suffix[1:].lower() not in kinds:
        raise ConfigError(f"--plot {path}: matplotlib cannot write {path.suffix!r} files; use one of "
                          f"{', '.join('.' + k for k in sorted(kinds))}")


def prepare_outputs(work_dir: PathLike = None, plot_path: PathLike = None, table_path: PathLike = None) -> Outputs:
    """Check (and make) every output location; raises a one-line ConfigError before any work."""
    plot = _given_file(Path(plot_path), "--plot") if plot_path else None
    if plot is not None:
        check_plot_suffix(plot)
    table = _given_file(Path(table_path), "--table") if table_path else None
    if plot is not None and table is not None and plot.resolve() == table.resolve():
        raise ConfigError(f"--plot and --table are the same file ({plot})")
    if work_dir:
        work = Path(work_dir)
        _writable_dir(work, "--work-dir")
    else:
        work = Path(tempfile.mkdtemp(prefix="raygan-augment-"))
    return Outputs(work, table or _free(work / "augment.txt"), plot or _free(work / "augment.png"))
