"""Checked readers for the file formats the loaders use: gzipped IDX, .npz, MATLAB .mat.

Each reader validates what it reads (magic number, header, length, dtype, shape) and raises
``ValueError`` naming the file when it is truncated or corrupt, instead of returning garbage.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

# IDX type byte -> numpy big-endian dtype (LeCun's IDX format description)
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx_gz(path: Path, expected_shape: Sequence[int | None] | None = None) -> np.ndarray:
    """Read a gzip-compressed IDX file (MNIST format) into a numpy array.

    Layout: 2 zero bytes, a type byte, the number of dimensions ``ndim``, then ``ndim``
    big-endian uint32 sizes, then the data in C order.

    Args:
        path: the ``.gz`` file.
        expected_shape: sizes to check, ``None`` entries match anything.

    Raises:
        ValueError: bad gzip stream, bad magic, wrong length or unexpected shape, naming the file.
    """
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: corrupt or truncated gzip file ({exc}); delete it and download it again") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() if raw else 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[raw[2]]
    n_bytes = int(np.prod(shape)) * dtype.itemsize
    if len(raw) != header + n_bytes:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({header + n_bytes} bytes) but the file has {len(raw)} bytes "
            "(truncated or corrupt)"
        )
    if expected_shape is not None:
        _check_shape(path, "IDX data", shape, expected_shape)
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _check_shape(path: Path, what: str, shape: Sequence[int], expected: Sequence[int | None]) -> None:
    if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
        want = tuple("*" if e is None else e for e in expected)
        raise ValueError(f"{path}: {what} has shape {tuple(shape)}, expected {want}")


def read_npz(path: Path, keys: dict[str, tuple[np.dtype | tuple[np.dtype, ...], Sequence[int | None]]]) -> dict[str, np.ndarray]:
    """Read named arrays from an ``.npz`` (never with pickles) and check their dtypes and shapes.

    Args:
        path: the ``.npz`` file.
        keys: ``key -> (allowed dtype(s), expected shape with None wildcards)``.

    Raises:
        ValueError: corrupt/truncated archive, missing key, wrong dtype or shape, naming the file.
    """
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing array(s) {missing}; the file has {z.files}")
            for k in keys:
                out[k] = z[k]
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: corrupt or truncated .npz file ({exc}); delete it and download it again") from exc
    for k, (dtypes, shape) in keys.items():
        allowed = dtypes if isinstance(dtypes, tuple) else (dtypes,)
        if out[k].dtype not in [np.dtype(d) for d in allowed]:
            raise ValueError(f"{path}: array {k!r} has dtype {out[k].dtype}, expected one of {[str(np.dtype(d)) for d in allowed]}")
        _check_shape(path, f"array {k!r}", out[k].shape, shape)
    return out


def read_mat(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read variables from a MATLAB 5 ``.mat`` file with ``scipy.io.loadmat``.

    Raises:
        ValueError: unreadable file or missing variable, naming the file.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # scipy raises several types (ValueError, MatReadError, TypeError) on bad files
        raise ValueError(f"{path}: corrupt or truncated .mat file ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in keys if k not in mat]
    if missing:
        raise ValueError(f"{path}: missing variable(s) {missing}")
    return {k: np.asarray(mat[k]) for k in keys}
