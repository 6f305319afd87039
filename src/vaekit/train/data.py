"""The data as the training loop uses them: loaded from a config or given in memory, binarised, on a device."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from ..config import ConfigError, DataConfig, RunConfig
from .seeding import derive_seed

__all__ = ["PreparedData", "prepare_data", "prepare_given", "load_data", "check_data", "absolute_data_paths",
           "with_conditions", "with_labels_kept", "SemiSupervised", "BINARIZE"]

#: the values of ``data.binarize`` (see :class:`vaekit.config.DataConfig`)
BINARIZE = ("dynamic", "static", "none")


@dataclass
class PreparedData:
    """The data as the loop uses them: training rows plus fixed evaluation tensors, on one device.

    Attributes:
        dataset: the :class:`vaekit.data.Dataset` they came from, or None (rows given as a tensor).
        train: ``(N, D)`` training rows: raw intensities when ``dynamic`` (each batch is binarised
            afresh), else the values trained on.
        val: ``(N_val, D)`` validation rows, binarised once (seeded) unless ``binarize`` is ``none`` or
            the data are already binary, so validation numbers are comparable across epochs; or None.
        test: ``(N_test, D)`` test rows, prepared like ``val``; None when the rows were given as a tensor.
        dynamic: whether each training batch is drawn ``x ~ Bernoulli(train[idx])``.
        image_shape: ``(C, H, W)`` of one row for image data, else None.
        conditions: for a conditional model, how a batch's keyword arguments are formed from its rows and
            labels (:func:`vaekit.train.conditions.data_conditions`); None for the others.
        train_y, val_y, test_y: the splits' labels ``(N,)`` on the device when ``conditions`` needs them, else None.
        semi: a semi-supervised run's labelled subset and batch order (``data.labels``), else None.
    """

    dataset: Any
    train: Tensor
    val: Tensor | None
    test: Tensor | None
    dynamic: bool
    image_shape: tuple[int, ...] | None = None
    conditions: Any = None
    train_y: Tensor | None = None
    val_y: Tensor | None = None
    test_y: Tensor | None = None
    semi: "SemiSupervised | None" = None

    @property
    def dim(self) -> int:
        """The flattened size ``D`` of one example."""
        return int(self.train.shape[1])


def _fixed(x: Tensor | None, binarize: str, already_binary: bool, seed: int) -> Tensor | None:
    from ..data import static_binarize

    if x is None or binarize == "none" or already_binary:
        return x
    return static_binarize(x, seed)


def _prepare(train: Tensor, val: Tensor | None, test: Tensor | None, *, binarize: str, binary: bool, seed: int,
             device: torch.device, name: str, dataset: Any = None,
             image_shape: tuple[int, ...] | None = None) -> PreparedData:
    """Binarise the splits as ``binarize`` says (fixed draws seeded from ``seed``) and move them to ``device``."""
    if binarize not in BINARIZE:
        raise ValueError(f"binarize must be one of {list(BINARIZE)}, got {binarize!r}")
    seed = derive_seed(seed, "binarize-fixed")
    dynamic = binarize == "dynamic" and not binary
    if dynamic:  # checked once here, so the per-batch draw skips it
        from ..data.base import check_unit_interval

        check_unit_interval(train, f"data set {name!r} (train split, data.binarize=dynamic)")
    if binarize == "static" and not binary:
        train = _fixed(train, "static", False, derive_seed(seed, "train"))
    val = _fixed(val, binarize, binary, derive_seed(seed, "val"))
    test = _fixed(test, binarize, binary, derive_seed(seed, "test"))
    return PreparedData(dataset, train.to(device), _to(val, device), _to(test, device), dynamic,
                        None if image_shape is None else tuple(image_shape))


def _to(x: Tensor | None, device: torch.device) -> Tensor | None:
    return None if x is None else x.to(device)


def absolute_data_paths(data: DataConfig) -> DataConfig:
    """A copy of ``data`` whose file locations no longer depend on the working directory.

    ``data_dir`` and, without a ``data_dir``, ``options.path`` (the file or folder of ``array`` and
    ``folder`` data) become absolute (``~`` expanded). A run directory records the config it trained on, and
    ``vaekit eval`` or ``--resume`` started from another folder must find the same files; a ``path`` relative
    to a ``data_dir`` is left relative to it (the loaders join the two).
    """
    def absolute(p: str) -> str:
        return os.path.abspath(os.path.expanduser(p))

    options = dict(data.options)
    if data.data_dir is None and isinstance(options.get("path"), str):
        options["path"] = absolute(options["path"])
    return dataclasses.replace(data, data_dir=None if data.data_dir is None else absolute(data.data_dir),
                               options=options)


def with_conditions(data: PreparedData, model: nn.Module, name: str = "the data set") -> PreparedData:
    """``data`` with the conditions ``model`` takes (:func:`vaekit.train.conditions.data_conditions`) and, when they
    are labels, every split's labels on the training rows' device; ``data`` itself for an unconditional model.

    Raises:
        ConditionError: what ``data_conditions`` raises (a label condition on unlabelled data, a mask condition
            without ``observe``, ...), before any training.
    """
    from .conditions import data_conditions

    splits = [getattr(data.dataset, s, None) for s in ("train", "val", "test")]
    ys = [getattr(s, "y", None) for s in splits]
    has = data.dataset is not None and all(y is not None for y, s in zip(ys, splits) if s is not None)
    cond = data_conditions(model, data.image_shape, has_labels=has, data_name=repr(name))
    if cond is None:
        return data
    dev = data.train.device
    moved = [y.to(dev) if has and y is not None else None for y in ys]
    return dataclasses.replace(data, conditions=cond, train_y=moved[0], val_y=moved[1], test_y=moved[2])


@dataclass
class SemiSupervised:
    """The labelled subset of a semi-supervised run (``data.labels``) and how its batches are formed.

    Every step takes ``batch_size`` unlabelled rows (one pass over them per epoch) and ``labelled_batch``
    labelled ones, cycled in fresh random orders (:func:`vaekit.data.paired_batches`), as Kingma et al. (2014)
    train M2. The rows keep their places in the training split; ``train_y`` holds the kept labels and ``-1``
    for the unlabelled rows, on the training rows' device.

    Attributes:
        labelled, unlabelled: int64 row indices into the training split (sorted; disjoint; together all rows).
        train_y: ``(N,)`` the kept labels, ``-1`` where a row is unlabelled.
        labelled_batch: labelled rows per step (None: as many as the step's unlabelled rows).
    """

    labelled: Tensor
    unlabelled: Tensor
    train_y: Tensor
    labelled_batch: int | None = None

    def steps(self, batch_size: int) -> int:
        """Steps per epoch: one pass over the unlabelled rows."""
        return math.ceil(len(self.unlabelled) / batch_size)

    def rows_per_epoch(self, batch_size: int) -> int:
        """Rows one epoch trains on: every unlabelled row plus each step's labelled ones."""
        n_u = len(self.unlabelled)
        return 2 * n_u if self.labelled_batch is None else n_u + self.steps(batch_size) * self.labelled_batch

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
        """One epoch's row indices, each batch the unlabelled rows first, then the labelled ones."""
        from ..data import paired_batches

        for u, l_ in paired_batches(len(self.unlabelled), len(self.labelled), batch_size, generator,
                                    self.labelled_batch):
            yield torch.cat([self.unlabelled[u], self.labelled[l_]])


def with_labels_kept(data: PreparedData, n_labels: int, labelled_batch: int | None, seed: int,
                     name: str = "the data set") -> PreparedData:
    """``data`` as a semi-supervised run sees it: ``n_labels`` training labels kept, ``n_labels / K`` per class
    (:func:`vaekit.data.labelled_subset`, drawn with ``seed``), the rest unlabelled (:class:`SemiSupervised`).

    Raises:
        ConfigError: naming ``data.labels``: the data set has no training labels, ``n_labels`` is not a
            multiple of the number of classes, a class has too few rows, or nothing would stay unlabelled.
    """
    from ..data import labelled_subset

    y = getattr(getattr(data.dataset, "train", None), "y", None)
    if y is None:
        raise ConfigError(f"data.labels: a semi-supervised run keeps some of the training labels, but {name} has "
                          "none; use a labelled data set (digits, mnist, ...)")
    y = y.long().cpu()
    if n_labels >= len(y):
        raise ConfigError(f"data.labels: {n_labels}, but the training split has {len(y)} rows; keep fewer labels "
                          "so that some rows are unlabelled")
    try:
        lab, unl = labelled_subset(y, n_labels, seed=seed)
    except ValueError as e:
        raise ConfigError(f"data.labels: {e}") from None
    kept = torch.full_like(y, -1)
    kept[lab] = y[lab]
    semi = SemiSupervised(lab, unl, kept.to(data.train.device), labelled_batch)
    return dataclasses.replace(data, semi=semi)


def load_data(cfg: RunConfig) -> Any:
    """Load ``cfg.data`` through :func:`vaekit.data.load_dataset` (the split is seeded with ``cfg.seed``)."""
    from ..data import load_dataset

    d = cfg.data
    return load_dataset(d.name, data_dir=d.data_dir, val_size=d.val_size, seed=cfg.seed, **d.options)


def check_data(model: nn.Module, dataset: Any, name: str) -> None:
    """``model.validate_input`` on every split of ``dataset`` (a :class:`vaekit.data.Dataset` or a
    :class:`PreparedData`), named ``<name>.train`` etc. in messages: NaN, wrong width, values a likelihood
    cannot score. Models without ``validate_input`` are not checked. Raises what ``validate_input`` raises."""
    if not hasattr(model, "validate_input"):
        return
    for split in ("train", "val", "test"):
        x = getattr(dataset, split)
        x = getattr(x, "x", x)  # a Dataset's Split, or a PreparedData's tensor
        if x is not None:
            model.validate_input(x, name=f"{name}.{split}")


def prepare_data(cfg: RunConfig, device: torch.device, dataset: Any = None) -> PreparedData:
    """Binarise (``cfg.data.binarize``) and move ``dataset`` (loaded from ``cfg.data`` if None) to ``device``."""
    ds = load_data(cfg) if dataset is None else dataset
    return _prepare(ds.train.x, None if ds.val is None else ds.val.x, ds.test.x, binarize=cfg.data.binarize,
                    binary=ds.binary, seed=cfg.seed, device=device, name=cfg.data.name, dataset=ds,
                    image_shape=ds.image_shape)


def prepare_given(data: Any, binarize: str | None, seed: int, device: torch.device,
                  model: nn.Module | None = None) -> tuple[PreparedData, str]:
    """The data handed to ``fit(model, data, ...)`` as :class:`PreparedData`, and a name for messages.

    With ``model``, the data are first checked with :func:`check_data` (before any binarisation, so an
    error names the real problem).

    Args:
        data: an ``(N, D)`` floating-point tensor of training rows (no validation or test split), a
            :class:`vaekit.data.Dataset` (what :func:`vaekit.data.load_dataset` returns: every split,
            the image shape), or a :class:`PreparedData` (used as it is, moved to ``device``).
        binarize: ``dynamic``, ``static`` or ``none`` for a tensor or a data set (None: ``none``); must
            be None for a :class:`PreparedData`, which is already prepared.
        seed: seeds the fixed binarisations.

    Raises:
        TypeError: ``data`` is none of these, or ``binarize`` is given with a :class:`PreparedData`.
        ValueError: a tensor that is not ``(N, D)`` floating point, or an unknown ``binarize``.
    """
    from ..data import Dataset

    if torch.is_tensor(data):
        if data.dim() != 2 or not data.is_floating_point():
            raise ValueError(f"training data given as a tensor must be (N, D) floating point, got "
                             f"{data.dtype} {tuple(data.shape)}")
        given = PreparedData(None, data, None, None, False)
        if model is not None:
            check_data(model, given, "tensor")
        return _prepare(data, None, None, binarize=binarize or "none", binary=False, seed=seed, device=device,
                        name="tensor"), "tensor"
    if model is not None and isinstance(data, (Dataset, PreparedData)):
        check_data(model, data, getattr(data, "name", "prepared"))
    if isinstance(data, PreparedData):
        if binarize is not None:
            raise TypeError("binarize applies to raw data; a PreparedData is already prepared (pass binarize=None)")
        return PreparedData(data.dataset, data.train.to(device), _to(data.val, device), _to(data.test, device),
                            data.dynamic, data.image_shape), "prepared"
    if isinstance(data, Dataset):
        return _prepare(data.train.x, None if data.val is None else data.val.x, data.test.x,
                        binarize=binarize or "none", binary=data.binary, seed=seed, device=device, name=data.name,
                        dataset=data, image_shape=data.image_shape), data.name
    raise TypeError(f"fit(model, data): data must be an (N, D) tensor, a vaekit.data.Dataset or a PreparedData, "
                    f"got {type(data).__name__}")
