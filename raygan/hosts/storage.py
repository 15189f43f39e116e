"""Where runs live: an absolute local (or NFS) path, or a URI (s3://, gs://, ...) read and written
through pyarrow's filesystems. One set of helpers for local runs, Ray runs and sweeps.

pyarrow is imported only for URIs (it ships with Ray); local paths use the os module, so the
core and a plain local run never need it.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import List, Optional

from raygan.errors import RayganError

SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")


class StorageError(RayganError):
    """A storage path or URI that cannot be used."""


def is_uri(path: str) -> bool:
    return "://" in str(path)


def resolve(path: Optional[str], default: Optional[str] = None) -> str:
    """An absolute local path or a URI (Ray moves workers' working directories: no relative
    paths). Default: `default`, else $RAYGAN_STORAGE, else ./runs."""
    path = str(path or default or os.environ.get("RAYGAN_STORAGE") or "runs")
    if is_uri(path):
        scheme = path.split("://", 1)[0].lower()
        if scheme not in SCHEMES:
            raise StorageError(f"storage {path}: unknown scheme '{scheme}://'; use a local or shared path "
                               f"(NFS) or one of {', '.join(s + '://' for s in SCHEMES)}")
        if scheme == "file":
            return os.path.abspath(path[len("file://"):])
        return path.rstrip("/")
    return os.path.abspath(os.path.expanduser(path))


def join(base: str, *parts: str) -> str:
    if is_uri(base):
        return "/".join([base.rstrip("/"), *parts])
    return str(Path(base, *parts))


def _fs(path: str):
    """(pyarrow filesystem, path inside it) for a URI."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(path)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise StorageError(f"storage {path}: {first}") from None


def exists(path: str) -> bool:
    if not is_uri(path):
        return os.path.exists(path)
    import pyarrow.fs

    fs, inner = _fs(path)
    return fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound


def is_dir(path: str) -> bool:
    if not is_uri(path):
        return os.path.isdir(path)
    import pyarrow.fs

    fs, inner = _fs(path)
    return fs.get_file_info(inner).type == pyarrow.fs.FileType.Directory


def read_text(path: str) -> Optional[str]:
    """The file's text, or None when it does not exist."""
    if not is_uri(path):
        try:
            return Path(path).read_text()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
    import pyarrow.fs

    fs, inner = _fs(path)
    if fs.get_file_info(inner).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(inner) as f:
        return f.read().decode()


def write_text(path: str, text: str) -> None:
    """Write atomically where the filesystem allows it (local: temp file + rename)."""
    if not is_uri(path):
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp-{uuid.uuid4().hex[:6]}")
        tmp.write_text(text)
        os.replace(tmp, p)
        return
    fs, inner = _fs(path)
    fs.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(inner) as f:
        f.write(text.encode())


def append_text(path: str, text: str) -> None:
    if not is_uri(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(text)
        return
    write_text(path, (read_text(path) or "") + text)  # object stores have no append


def put_file(local: str, path: str) -> None:
    if not is_uri(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if os.path.abspath(local) != os.path.abspath(path):
            shutil.copyfile(local, path)
        return
    import pyarrow.fs

    fs, inner = _fs(path)
    fs.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    pyarrow.fs.copy_files(local, inner, destination_filesystem=fs)


def remove_file(path: str) -> None:
    """Delete one file this process wrote (a failed start taking its file back); gone already is fine."""
    try:
        if not is_uri(path):
            os.unlink(path)
            return
        fs, inner = _fs(path)
        fs.delete_file(inner)
    except OSError:
        pass


def list_dir(path: str) -> List[str]:
    """Names directly inside a directory ([] when it does not exist)."""
    if not is_uri(path):
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []
    import pyarrow.fs

    fs, inner = _fs(path)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(inner, allow_not_found=True))
    return sorted(i.base_name for i in infos)


def check_writable(path: str, what: str = "storage") -> None:
    """Create the directory and write + delete a probe file in it; one line when that fails."""
    probe = join(path, f".raygan-probe-{uuid.uuid4().hex[:8]}")
    try:
        if is_uri(path):
            fs, inner = _fs(path)
            fs.create_dir(inner, recursive=True)
            with fs.open_output_stream(_fs(probe)[1]) as f:
                f.write(b"ok")
            fs.delete_file(_fs(probe)[1])
        else:
            if os.path.exists(path) and not os.path.isdir(path):
                raise StorageError(f"{what} {path} is a file, not a directory")
            os.makedirs(path, exist_ok=True)
            with open(probe, "w") as f:
                f.write("ok")
            os.remove(probe)
    except StorageError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise StorageError(f"{what} {path} is not writable: {first}") from None
