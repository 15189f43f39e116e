"""The IDX file format (MNIST, Fashion-MNIST), parsed by hand.

Layout (all integers big-endian):

    bytes 0-1   zero
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4*d bytes   the size of each dimension, uint32
    ...         the elements, row-major

So images are magic 0x00000803 (N, rows, cols) and labels 0x00000801 (N,). Files may be
gzip-compressed (detected from the content, not the name). A file that is not IDX, is
truncated, or has trailing bytes raises DataError naming the file.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Union

import numpy as np

from raygan.errors import DataError

PathLike = Union[str, "os.PathLike[str]"]

# IDX element type code -> big-endian numpy dtype
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read IDX file {os.fspath(path)}: {e.strerror or e}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"IDX file {os.fspath(path)} is a corrupt or truncated gzip file ({e})"
            ) from None
    return raw


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a native-endian numpy array; `name` is used in errors."""
    if len(data) < 4:
        raise DataError(f"IDX file {name} is truncated: {len(data)} bytes, no header")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in IDX_DTYPES:
        raise DataError(
            f"{name} is not an IDX file (magic number 0x{data[:4].hex()}, "
            "expected 0x0000 then a type code such as 0x08)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"IDX file {name} is truncated inside its header ({ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", data[4:header]) if ndim else ()
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found < expected:
        raise DataError(
            f"IDX file {name} is truncated: header says shape {tuple(shape)} "
            f"({expected} bytes of data), found {found}"
        )
    if found > expected:
        raise DataError(
            f"IDX file {name} is corrupt: {found - expected} unexpected bytes after "
            f"shape {tuple(shape)}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)  # native order, writable


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a numpy array."""
    return parse_idx(_read_bytes(path), os.fspath(path))


def write_idx(path: PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write `array` as an IDX file; gzip it when `compress` (default: path ends in .gz)."""
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=")
    if key not in _CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    code = _CODES[key]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(payload) if compress else payload)
