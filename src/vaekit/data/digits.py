"""scikit-learn's 8x8 handwritten digits: the embedded default data set (no files needed)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .base import DATASETS, Dataset, seeded_split, take

#: Examples held out for testing (fixed), and the default validation size.
DIGITS_TEST_SIZE = 250
DIGITS_VAL_SIZE = 250


@DATASETS.register("digits")
def load_digits(
    data_dir: str | os.PathLike[str] | None = None,
    val_size: int | None = None,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """UCI optical digits as shipped by scikit-learn (``sklearn.datasets.load_digits``).

    1797 grey-level 8x8 images with labels 0-9. Pixel counts ``0..16`` are divided by 16, so
    ``x`` lies in ``[0, 1]``. The data has no official split: one permutation seeded with
    ``seed`` gives test = 250, val = ``val_size`` (default 250), train = the rest (1297 by
    default). ``data_dir`` is ignored (the data ships inside scikit-learn).

    Returns:
        Dataset with ``x`` of shape ``(N, 64)``, ``image_shape=(1, 8, 8)``, ``binary=False``.
    """
    if options:
        raise TypeError(f"digits: unknown option(s) {sorted(options)}")
    from sklearn.datasets import load_digits as _sk_load

    bunch = _sk_load()
    images = np.asarray(bunch.images)
    if images.shape != (1797, 8, 8) or images.min() < 0 or images.max() > 16:
        raise ValueError(f"digits: unexpected data from scikit-learn, shape {images.shape}")
    x = torch.from_numpy(images.reshape(len(images), 64).astype(np.float32) / 16.0)
    y = torch.from_numpy(np.asarray(bunch.target).astype(np.int64))
    n = x.shape[0]
    n_val = DIGITS_VAL_SIZE if val_size is None else val_size
    n_train = n - DIGITS_TEST_SIZE - n_val
    if n_train <= 0:
        raise ValueError(f"digits: val_size={n_val} leaves no training data ({n} examples, {DIGITS_TEST_SIZE} for test)")
    test_idx, val_idx, train_idx = seeded_split(n, [DIGITS_TEST_SIZE, n_val, n_train], seed)
    return Dataset(
        name="digits",
        train=take(x, y, train_idx),
        val=take(x, y, val_idx) if n_val > 0 else None,
        test=take(x, y, test_idx),
        image_shape=(1, 8, 8),
        binary=False,
    )
