"""Loaders for a user's own data: a numpy ``.npy``/``.npz`` file ("array") or a folder of images ("folder")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import DATASETS, Dataset, Split, seeded_split, take

PathLike = str | os.PathLike[str]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def _to_float(a: np.ndarray, where: str) -> torch.Tensor:
    """uint8 -> /255, bool -> {0,1}, float -> as is (must be finite); anything else is refused, and so is an
    array with no examples or examples with no values (``where`` names the file and the array)."""
    if a.ndim < 2 or a.shape[0] == 0 or a.size == 0:
        raise ValueError(f"{where}: need an array of shape (N, ...) with N >= 1 examples of at least one value "
                         f"each, got shape {a.shape}")
    if a.dtype == np.uint8:
        out = a.astype(np.float32) / 255.0
    elif a.dtype == np.bool_:
        out = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating):
        out = a.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError(f"{where}: contains NaN or infinite values")
    else:
        raise TypeError(f"{where}: dtype {a.dtype} not supported; use uint8 (scaled by 1/255), bool or float")
    return torch.from_numpy(np.ascontiguousarray(out.reshape(len(out), -1)))


def _image_shape_of(a: np.ndarray) -> tuple[int, int, int] | None:
    if a.ndim == 3:
        return (1, int(a.shape[1]), int(a.shape[2]))
    if a.ndim == 4:
        return (int(a.shape[1]), int(a.shape[2]), int(a.shape[3]))
    return None


def _split_sizes(n: int, val_size: int | None, test_size: int | None, where: str) -> tuple[int, int, int]:
    n_test = round(0.1 * n) if test_size is None else test_size
    n_val = 0 if val_size is None else val_size
    if n_test < 1 or n - n_test - n_val < 1:
        raise ValueError(f"{where}: {n} examples cannot give test={n_test}, val={n_val} and a non-empty train set")
    return n - n_test - n_val, n_val, n_test


def _labels(y: np.ndarray | None, n: int, where: str) -> torch.Tensor | None:
    if y is None:
        return None
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{where}: labels must be an integer array of shape ({n},), got {y.dtype} {y.shape}")
    return torch.from_numpy(y.astype(np.int64))


def _finish(name: str, x: torch.Tensor, y: torch.Tensor | None, image_shape: tuple[int, int, int] | None,
            val_size: int | None, test_size: int | None, seed: int, where: str) -> Dataset:
    """Split ``x`` (and ``y``) seeded into train/val/test; ``where`` (the file or folder) names them in errors."""
    n_train, n_val, n_test = _split_sizes(len(x), val_size, test_size, where)
    te, va, tr = seeded_split(len(x), [n_test, n_val, n_train], seed)
    binary = bool(((x == 0) | (x == 1)).all())
    return Dataset(name, take(x, y, tr), take(x, y, va) if n_val else None, take(x, y, te), image_shape, binary)


@DATASETS.register("array")
def load_array(data_dir: PathLike | None = None, val_size: int | None = None, seed: int = 0, *,
               path: str | None = None, test_size: int | None = None,
               image_shape: tuple[int, int, int] | list[int] | None = None, **options: Any) -> Dataset:
    """A data set from a ``.npy`` or ``.npz`` file (loaded with ``allow_pickle=False``).

    Accepted layouts:

    * ``.npy`` holding ``x`` of shape ``(N, ...)``, or ``.npz`` with key ``x`` (and optional ``y``):
      split by one permutation seeded with ``seed`` into test = ``test_size`` (default 10% of N),
      val = ``val_size`` (default 0) and train = the rest.
    * ``.npz`` with keys ``train`` and ``test`` (optional ``val``; labels ``y_train``, ``y_val``,
      ``y_test``): used as given; ``val_size``/``test_size`` must then be None.

    Values: uint8 is scaled by 1/255, bool becomes {0, 1}, floats are kept. Arrays of shape
    ``(N, H, W)`` or ``(N, C, H, W)`` give ``image_shape`` automatically; ``(N, D)`` arrays may
    pass ``image_shape=(C, H, W)``. ``binary`` is True when every value is 0 or 1.
    """
    if options:
        raise TypeError(f"array: unknown option(s) {sorted(options)}")
    if path is None:
        raise ValueError("array: give the file with path=... (a .npy or .npz file)")
    p = Path(data_dir, path) if data_dir is not None and not Path(path).is_absolute() else Path(path)
    p = p.expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"array: no such file {p}")
    try:
        loaded = np.load(p, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickles, which we refuse
        raise ValueError(f"{p}: cannot load without pickles ({exc}); save plain numeric arrays") from exc
    except Exception as exc:
        raise ValueError(f"{p}: corrupt or unreadable numpy file ({type(exc).__name__}: {exc})") from exc
    try:
        if isinstance(loaded, np.ndarray):
            arrays = {"x": loaded}
        else:
            with loaded as z:
                arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ValueError(f"{p}: corrupt or truncated .npz file ({type(exc).__name__}: {exc})") from exc

    shape = tuple(int(v) for v in image_shape) if image_shape is not None else None
    if shape is not None and len(shape) != 3:
        raise ValueError(f"array: image_shape must be (C, H, W), got {image_shape!r}")
    name = "array"
    if "train" in arrays:
        if "test" not in arrays:
            raise ValueError(f"{p}: has 'train' but no 'test' array; keys are {sorted(arrays)}")
        if val_size is not None or test_size is not None:
            raise ValueError(f"{p}: has its own train/test split; val_size and test_size must be None")
        splits: dict[str, Split | None] = {}
        for part in ("train", "val", "test"):
            if part not in arrays:
                splits[part] = None
                continue
            a = arrays[part]
            shape = shape or _image_shape_of(a)
            splits[part] = Split(_to_float(a, f"{p}[{part!r}]"),
                                 _labels(arrays.get(f"y_{part}"), len(a), f"{p}[y_{part!r}]"))
        tr, te = splits["train"], splits["test"]
        assert tr is not None and te is not None
        binary = all(bool(((s.x == 0) | (s.x == 1)).all()) for s in splits.values() if s is not None)
        return Dataset(name, tr, splits["val"], te, shape, binary)
    if "x" not in arrays:
        raise ValueError(f"{p}: expected key 'x' (with optional 'y') or keys 'train'/'test'; found {sorted(arrays)}")
    a = arrays["x"]
    x = _to_float(a, f"{p}[x]" if p.suffix == ".npz" else str(p))
    shape = shape or _image_shape_of(a)
    return _finish(name, x, _labels(arrays.get("y"), len(a), f"{p}[y]"), shape, val_size, test_size, seed,
                   where=str(p))


def _read_grey(f: Path) -> np.ndarray:
    """One image file as a 2-D uint8 grey-level array (PIL ``convert('L')``: ITU-R 601-2 luma)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{f}: cannot read image ({exc})") from exc


@DATASETS.register("folder")
def load_folder(data_dir: PathLike | None = None, val_size: int | None = None, seed: int = 0, *,
                path: str | None = None, test_size: int | None = None, **options: Any) -> Dataset:
    """A data set from a folder of images (PNG, JPEG, BMP, GIF, TIFF), read with Pillow as grey levels /255.

    If ``path`` holds sub-folders with images, each sub-folder is a class (labels are the
    sub-folder's index in sorted order, as in torchvision's ``ImageFolder``); otherwise the
    images directly in ``path`` are used without labels. Images are not resized: all must share
    one size, and the first that differs is named in the error. Split as in :func:`load_array`
    (seeded; test = ``test_size``, default 10%; val = ``val_size``, default 0).

    Returns:
        ``x``: ``(N, H*W)`` float32 in [0, 1]; ``image_shape=(1, H, W)``.
    """
    if options:
        raise TypeError(f"folder: unknown option(s) {sorted(options)}")
    if path is None:
        raise ValueError("folder: give the image folder with path=...")
    root = (Path(data_dir, path) if data_dir is not None and not Path(path).is_absolute() else Path(path)).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"folder: no such directory {root}")

    def images_in(d: Path) -> list[Path]:
        return sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)

    classes = sorted(d for d in root.iterdir() if d.is_dir() and images_in(d))
    files: list[Path] = []
    labels: list[int] = []
    if classes:
        for i, d in enumerate(classes):
            fs = images_in(d)
            files += fs
            labels += [i] * len(fs)
    else:
        files = images_in(root)
    if not files:
        raise FileNotFoundError(f"folder: no images ({', '.join(IMAGE_SUFFIXES)}) in {root} or its sub-folders")
    first = _read_grey(files[0])
    stack = np.empty((len(files), *first.shape), dtype=np.uint8)
    stack[0] = first
    for i, f in enumerate(files[1:], start=1):
        img = _read_grey(f)
        if img.shape != first.shape:
            raise ValueError(f"{f}: image is {img.shape[1]}x{img.shape[0]} (WxH) but {files[0]} is "
                             f"{first.shape[1]}x{first.shape[0]}; all images must share one size")
        stack[i] = img
    x = torch.from_numpy(stack.reshape(len(files), -1).astype(np.float32) / 255.0)
    y = torch.tensor(labels, dtype=torch.int64) if classes else None
    return _finish("folder", x, y, (1, *first.shape), val_size, test_size, seed, where=str(root))
