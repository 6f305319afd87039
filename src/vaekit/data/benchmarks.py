"""Loaders for the standard VAE benchmark image sets (files found by :func:`data_dir_for`).

All return flattened float32 images in ``[0, 1]`` (row-major C, H, W) and int64 labels where the
data has them. See docs/datasets.md for shapes, splits and search paths.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .base import DATASETS, Dataset, Split, data_dir_for, holdout, seeded_split, take
from .readers import read_idx_gz, read_mat, read_npz

PathLike = str | os.PathLike[str]


def _no_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise TypeError(f"{name}: unknown option(s) {sorted(options)}")


def _idx_dataset(name: str, data_dir: PathLike | None, val_size: int | None) -> Dataset:
    root = data_dir_for(name, data_dir)
    x_tr = read_idx_gz(root / "train-images-idx3-ubyte.gz", (60000, 28, 28))
    y_tr = read_idx_gz(root / "train-labels-idx1-ubyte.gz", (60000,))
    x_te = read_idx_gz(root / "t10k-images-idx3-ubyte.gz", (10000, 28, 28))
    y_te = read_idx_gz(root / "t10k-labels-idx1-ubyte.gz", (10000,))
    for arr, f in ((x_tr, "train-images"), (y_tr, "train-labels"), (x_te, "t10k-images"), (y_te, "t10k-labels")):
        if arr.dtype != np.uint8:
            raise ValueError(f"{root / f}: expected uint8 IDX data, got {arr.dtype}")
    if y_tr.max() > 9 or y_te.max() > 9:
        raise ValueError(f"{root}: labels outside 0..9")

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(x.reshape(len(x), 784).astype(np.float32) / 255.0),
                     torch.from_numpy(y.astype(np.int64)))

    train, val = holdout(split(x_tr, y_tr), 0 if val_size is None else val_size, name)
    return Dataset(name, train, val, split(x_te, y_te), (1, 28, 28), binary=False)


@DATASETS.register("mnist")
def load_mnist(data_dir: PathLike | None = None, val_size: int | None = None, seed: int = 0, **options: Any) -> Dataset:
    """MNIST, the original 60,000 / 10,000 split, grey levels ``/255``.

    ``val_size`` (default 0, i.e. ``val=None``) holds out the *last* ``val_size`` training images,
    e.g. 10,000 for the 50k/10k/10k split or 400 as in IWAE (Burda et al., arXiv:1509.00519).
    ``seed`` is unused (the split is official).

    Returns:
        ``x``: ``(N, 784)`` float32 in [0, 1]; ``y``: ``(N,)`` int64 in 0..9; ``image_shape=(1, 28, 28)``.
    """
    _no_options("mnist", options)
    return _idx_dataset("mnist", data_dir, val_size)


@DATASETS.register("fashion_mnist")
def load_fashion_mnist(data_dir: PathLike | None = None, val_size: int | None = None, seed: int = 0,
                       **options: Any) -> Dataset:
    """Fashion-MNIST (Xiao et al., 2017, arXiv:1708.07747), same format and splits as :func:`load_mnist`."""
    _no_options("fashion_mnist", options)
    return _idx_dataset("fashion_mnist", data_dir, val_size)


def _official_val(name: str, val_size: int | None, train: Split, val: Split) -> tuple[Split, Split | None]:
    """Keep an official validation split (``val_size=None``) or merge it into train (``val_size=0``)."""
    if val_size is None:
        return train, val
    if val_size == 0:
        y = None if train.y is None or val.y is None else torch.cat([train.y, val.y])
        return Split(torch.cat([train.x, val.x]), y), None
    raise ValueError(f"{name} has an official validation split of {len(val)}; val_size must be None (keep it) "
                     f"or 0 (merge it into train), got {val_size}")


@DATASETS.register("binarized_mnist")
def load_binarized_mnist(data_dir: PathLike | None = None, val_size: int | None = None, seed: int = 0,
                         **options: Any) -> Dataset:
    """Larochelle & Murray's (2011) statically binarised MNIST: 50,000 / 10,000 / 10,000, no labels.

    ``val_size=None`` keeps the official validation set; ``0`` merges it into train (60,000).

    Returns:
        ``x``: ``(N, 784)`` float32 in {0, 1}; ``y=None``; ``image_shape=(1, 28, 28)``; ``binary=True``.
    """
    _no_options("binarized_mnist", options)
    root = data_dir_for("binarized_mnist", data_dir)
    path = root / "binarized_mnist.npz"
    arrays = read_npz(path, {"train": (np.uint8, (50000, 784)), "valid": (np.uint8, (10000, 784)),
                             "test": (np.uint8, (10000, 784))})
    for k, a in arrays.items():
        if a.max() > 1:
            raise ValueError(f"{path}: array {k!r} is not binary (max {a.max()})")
    s = {k: Split(torch.from_numpy(a.astype(np.float32))) for k, a in arrays.items()}
    train, val = _official_val("binarized_mnist", val_size, s["train"], s["valid"])
    return Dataset("binarized_mnist", train, val, s["test"], (1, 28, 28), binary=True)


#: Frey faces split sizes (no official split exists).
FREY_TEST_SIZE = 200
FREY_VAL_SIZE = 200


@DATASETS.register("frey_faces")
def load_frey_faces(data_dir: PathLike | None = None, val_size: int | None = None, seed: int = 0,
                    **options: Any) -> Dataset:
    """Brendan Frey's 1,965 face frames, 28 x 20 grey levels ``/255`` (Kingma & Welling, arXiv:1312.6114).

    No official split: one permutation seeded with ``seed`` gives test = 200, val = ``val_size``
    (default 200), train = the rest (1,565 by default). No labels.

    Returns:
        ``x``: ``(N, 560)`` float32 in [0, 1]; ``y=None``; ``image_shape=(1, 28, 20)``.
    """
    _no_options("frey_faces", options)
    root = data_dir_for("frey_faces", data_dir)
    images = read_npz(root / "frey_faces.npz", {"images": (np.uint8, (1965, 28, 20))})["images"]
    x = torch.from_numpy(images.reshape(1965, 560).astype(np.float32) / 255.0)
    n_val = FREY_VAL_SIZE if val_size is None else val_size
    n_train = 1965 - FREY_TEST_SIZE - n_val
    if n_train <= 0:
        raise ValueError(f"frey_faces: val_size={n_val} leaves no training data")
    te, va, tr = seeded_split(1965, [FREY_TEST_SIZE, n_val, n_train], seed)
    return Dataset("frey_faces", take(x, None, tr), take(x, None, va) if n_val else None, take(x, None, te),
                   (1, 28, 20), binary=False)


@DATASETS.register("caltech101_silhouettes")
def load_caltech101_silhouettes(data_dir: PathLike | None = None, val_size: int | None = None, seed: int = 0,
                                invert: bool = True, **options: Any) -> Dataset:
    """Caltech-101 Silhouettes 28x28, split 1 (Marlin et al., 2010): 4,100 / 2,264 / 2,307.

    The ``.mat`` rows are MATLAB column-major images; they are transposed to row-major here.
    The file codes the object as 0 and background as 1; with ``invert=True`` (default) ``x = 1 - file``
    so the object is 1, as VAE papers use it. Labels 1..101 become 0..100.
    ``val_size=None`` keeps the official validation set; ``0`` merges it into train.

    Returns:
        ``x``: ``(N, 784)`` float32 in {0, 1}; ``y``: ``(N,)`` int64; ``image_shape=(1, 28, 28)``; ``binary=True``.
    """
    _no_options("caltech101_silhouettes", options)
    root = data_dir_for("caltech101_silhouettes", data_dir)
    path = root / "caltech101_silhouettes_28_split1.mat"
    names = ["train_data", "val_data", "test_data", "train_labels", "val_labels", "test_labels"]
    mat = read_mat(path, names)
    splits = {}
    for part in ("train", "val", "test"):
        x, y = mat[f"{part}_data"], mat[f"{part}_labels"]
        if x.ndim != 2 or x.shape[1] != 784 or y.shape != (x.shape[0], 1):
            raise ValueError(f"{path}: {part} has shapes {x.shape} / {y.shape}, expected (N, 784) / (N, 1)")
        if x.min() < 0 or x.max() > 1 or y.min() < 1 or y.max() > 101:
            raise ValueError(f"{path}: {part} values out of range (pixels must be 0/1, labels 1..101)")
        # (N, 784) column-major -> (N, 28, 28) upright -> flattened row-major
        imgs = x.reshape(-1, 28, 28, order="F").reshape(-1, 784).astype(np.float32)
        if invert:
            imgs = 1.0 - imgs
        splits[part] = Split(torch.from_numpy(np.ascontiguousarray(imgs)),
                             torch.from_numpy(y[:, 0].astype(np.int64) - 1))
    train, val = _official_val("caltech101_silhouettes", val_size, splits["train"], splits["val"])
    return Dataset("caltech101_silhouettes", train, val, splits["test"], (1, 28, 28), binary=True)


def _area_downsample(ink: np.ndarray, size: int, chunk: int = 2048) -> torch.Tensor:
    """Area (box-filter) resize of ``(N, H, W)`` bool images to ``(N, size*size)`` float32 in [0, 1].

    Each output pixel is the mean of the input pixels its cell covers
    (``torch.nn.functional.adaptive_avg_pool2d``), i.e. the ink fraction; done in chunks so the
    float copy of the full-resolution images never exists at once.
    """
    out = torch.empty(len(ink), size * size, dtype=torch.float32)
    for s in range(0, len(ink), chunk):
        block = torch.from_numpy(ink[s : s + chunk]).to(torch.float32).unsqueeze(1)  # (n, 1, H, W)
        out[s : s + chunk] = F.adaptive_avg_pool2d(block, size).flatten(1)
    return out


@DATASETS.register("omniglot")
def load_omniglot(data_dir: PathLike | None = None, val_size: int | None = None, seed: int = 0,
                  size: int = 28, **options: Any) -> Dataset:
    """Omniglot (Lake et al., 2015) from the full-resolution 105x105 arrays, area-downsampled to ``size``.

    Train = the background set (964 characters x 20 drawers = 19,280 images), test = the
    evaluation set (659 x 20 = 13,180). Images are inverted (ink = 1) and box-filtered to
    ``size x size`` grey levels (ink fraction per cell); binarise them dynamically for a Bernoulli
    likelihood. ``val_size`` (default 0) holds out the last training images. Labels are the
    character index (0..963 background, 964..1622 evaluation).

    Note: this is *not* the 28x28 ``chardata.mat`` split (24,345 / 8,070) of Burda et al.
    (arXiv:1509.00519); likelihoods on it are not comparable with published Omniglot numbers.

    Returns:
        ``x``: ``(N, size*size)`` float32 in [0, 1]; ``y``: ``(N,)`` int64; ``image_shape=(1, size, size)``.
    """
    _no_options("omniglot", options)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 105:
        raise ValueError(f"omniglot: size must be an int in 1..105, got {size!r}")
    root = data_dir_for("omniglot", data_dir)
    parts = []
    for fname, n_chars, offset in (("images_background.npz", 964, 0), ("images_evaluation.npz", 659, 964)):
        a = read_npz(root / fname, {"images": (np.bool_, (n_chars, 20, 105, 105)),
                                    "labels": (np.int64, (n_chars, 20))})
        ink = ~a["images"].reshape(-1, 105, 105)
        x = _area_downsample(ink, size) if size != 105 else torch.from_numpy(ink.reshape(len(ink), -1).astype(np.float32))
        y = torch.from_numpy(a["labels"].reshape(-1) + offset)
        parts.append(Split(x, y))
    train, val = holdout(parts[0], 0 if val_size is None else val_size, "omniglot")
    return Dataset("omniglot", train, val, parts[1], (1, size, size), binary=False)
