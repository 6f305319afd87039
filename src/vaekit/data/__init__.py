"""In-memory data sets for VAE experiments, batching by index slices, and binarisation.

``load_dataset(name, ...)`` returns a :class:`Dataset` of float32 tensors; see docs/datasets.md for
the loaders, where each looks for its files, their shapes and splits.
"""

from . import benchmarks, digits, text, user  # noqa: F401  (importing registers the loaders in DATASETS)
from .base import (
    DATASETS,
    ENV_VAR,
    Dataset,
    Split,
    batch_indices,
    data_dir_for,
    dynamic_binarize,
    load_dataset,
    static_binarize,
)
from .sources import download, downloadable
from .conditional import MASKS, labelled_subset, make_mask, paired_batches, stratified_subset

__all__ = [
    "DATASETS",
    "MASKS",
    "labelled_subset",
    "stratified_subset",
    "make_mask",
    "paired_batches",
    "ENV_VAR",
    "Dataset",
    "Split",
    "batch_indices",
    "data_dir_for",
    "download",
    "downloadable",
    "dynamic_binarize",
    "load_dataset",
    "static_binarize",
]
