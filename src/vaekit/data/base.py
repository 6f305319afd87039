"""Core data types and helpers: in-memory splits, the loader registry, batching, binarisation.

Every data set that fits in memory lives as one tensor per split. A training
loop draws batches as index slices ``x[idx]`` (see :func:`batch_indices`),
never through per-item ``__getitem__`` calls, so nothing on the hot path
allocates a Python object per example.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from ..registry import Registry

#: Name of the environment variable that points at a data root with one folder per data set.
ENV_VAR = "VAEKIT_DATA_DIR"


@dataclass
class Split:
    """One split of a data set, held in memory.

    Attributes:
        x: ``(N, D)`` float32, images flattened row-major (C, H, W order); values in ``[0, 1]``
            for image data.
        y: ``(N,)`` int64 labels, or ``None`` when the data set has none.
    """

    x: Tensor
    y: Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.x, Tensor) or self.x.dim() != 2:
            raise ValueError(f"Split.x must be a 2-D tensor (N, D), got {getattr(self.x, 'shape', type(self.x))}")
        if self.x.dtype != torch.float32:
            raise TypeError(f"Split.x must be float32, got {self.x.dtype}")
        if self.y is not None:
            if not isinstance(self.y, Tensor) or self.y.shape != (self.x.shape[0],):
                raise ValueError(
                    f"Split.y must have shape ({self.x.shape[0]},) to match x, got {getattr(self.y, 'shape', None)}"
                )
            if self.y.dtype != torch.int64:
                raise TypeError(f"Split.y must be int64, got {self.y.dtype}")

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Dataset:
    """A data set with train / optional validation / test splits, all in memory.

    Attributes:
        name: registry name of the loader that made it.
        train, val, test: the splits; ``val`` is ``None`` when no validation set was asked for.
        image_shape: ``(C, H, W)`` for image data (``x`` rows are these flattened row-major), else ``None``.
        binary: ``True`` when ``x`` is already in ``{0, 1}`` (statically binarised data).
    """

    name: str
    train: Split
    val: Split | None
    test: Split
    image_shape: tuple[int, int, int] | None
    binary: bool

    def __post_init__(self) -> None:
        d = self.train.x.shape[1]
        for split_name, s in (("val", self.val), ("test", self.test)):
            if s is not None and s.x.shape[1] != d:
                raise ValueError(f"{self.name}: {split_name} has {s.x.shape[1]} features, train has {d}")
        if self.image_shape is not None:
            c, h, w = self.image_shape
            if c * h * w != d:
                raise ValueError(f"{self.name}: image_shape {self.image_shape} has {c * h * w} pixels, data has {d}")

    @property
    def dim(self) -> int:
        """Number of features D of one example."""
        return int(self.train.x.shape[1])


#: name -> loader ``fn(data_dir, val_size, seed, **options) -> Dataset``
DATASETS: Registry[Dataset] = Registry("dataset")


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    val_size: int | None = None,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """Load a registered data set into memory.

    Args:
        name: a name in :data:`DATASETS` (``"digits"``, ``"mnist"``, ...).
        data_dir: folder holding the data set's files; ``None`` searches the places given by
            :func:`data_dir_for` and the loader (see docs/datasets.md).
        val_size: number of validation examples; ``None`` takes the loader's default, ``0`` gives
            ``val=None``.
        seed: seed of the permutation for data sets without an official split (digits, Frey faces,
            user arrays and folders); official splits ignore it.
        **options: loader-specific options (``path`` for ``"array"`` and ``"folder"``, ...).

    Returns:
        a :class:`Dataset`.

    Raises:
        ConfigError: ``name`` is not registered (``data.name: unknown dataset 'nope'; choose one of [...]``).
        ValueError: ``val_size`` is not a non-negative int or None; and what the loader raises (a missing file
            named with every folder searched, a file that cannot be read, an unknown option).
    """
    if val_size is not None and (isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 0):
        raise ValueError(f"val_size must be a non-negative int or None, got {val_size!r}")
    loader = DATASETS.get(name, "data", key="name")
    return loader(data_dir=data_dir, val_size=val_size, seed=seed, **options)


def candidate_dirs(name: str, data_dir: str | os.PathLike[str] | None, defaults: Sequence[str | Path] = ()) -> list[Path]:
    """Directories to search for data set ``name``, in order.

    Order: the explicit ``data_dir`` (only that one when given); else ``$VAEKIT_DATA_DIR/<name>``;
    then each of ``defaults``. A relative default ``../shared/data/<folder>`` is tried relative to
    the current directory and relative to the repository root.
    """
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    dirs: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env).expanduser() / name)
    repo_root = Path(__file__).resolve().parents[3]
    for d in defaults:
        p = Path(d).expanduser()
        if p.is_absolute():
            dirs.append(p)
        else:
            dirs.append(Path.cwd() / p)
            dirs.append(repo_root / p)
    seen: set[str] = set()
    out = []
    for p in dirs:
        key = os.path.normpath(str(p))
        if key not in seen:
            seen.add(key)
            out.append(Path(key))
    return out


def data_dir_for(
    name: str,
    data_dir: str | os.PathLike[str] | None,
    files: Sequence[str] = (),
    defaults: Sequence[str | Path] = (),
) -> Path:
    """Resolve the folder that holds data set ``name``.

    Resolution order: the explicit ``data_dir``; ``$VAEKIT_DATA_DIR/<name>``; then the loader's
    defaults (``defaults`` if given, else those registered for ``name`` in
    :data:`vaekit.data.sources.DEFAULT_DIRS`). The first folder that contains every file in
    ``files`` (the loader's required files, default from :data:`vaekit.data.sources.FILES`) wins.

    Raises:
        FileNotFoundError: naming the missing files, every directory searched, and how to get
            the files (``vaekit.data.download``).
    """
    from .sources import DEFAULT_DIRS, FILES, download_hint

    if not defaults:
        defaults = DEFAULT_DIRS.get(name, ())
    if not files:
        files = FILES.get(name, ())
    dirs = candidate_dirs(name, data_dir, defaults)
    for d in dirs:
        if d.is_dir() and all((d / f).is_file() for f in files):
            return d
    searched = "\n  ".join(str(d) + ("" if d.is_dir() else "  (no such directory)") for d in dirs)
    raise FileNotFoundError(
        f"data set {name!r}: could not find {list(files)} in any of these directories:\n  {searched}\n"
        f"Pass data_dir=..., set ${ENV_VAR} to a root with a '{name}/' folder, or {download_hint(name)}"
    )


def batch_indices(
    n: int,
    batch_size: int,
    generator: torch.Generator | None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[Tensor]:
    """Yield index tensors for one epoch over ``n`` examples.

    With ``shuffle`` the order is one ``torch.randperm(n, generator=generator)``, so every index
    appears exactly once per epoch (except the last partial batch when ``drop_last``), and a seeded
    generator reproduces the order. Use as ``x[idx]`` on an in-memory tensor.

    Args:
        n: number of examples (> 0).
        batch_size: examples per batch (> 0).
        generator: random source for the permutation; ``None`` uses torch's global generator.
        shuffle: permute (``True``) or go in order.
        drop_last: drop a last batch smaller than ``batch_size``.

    Yields:
        int64 tensors of shape ``(batch_size,)`` (the last may be shorter unless ``drop_last``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = (n // batch_size) * batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def dynamic_binarize(x: Tensor, generator: torch.Generator | None = None, check: bool = True) -> Tensor:
    r"""Draw a fresh binarisation :math:`\tilde x \sim \mathrm{Bernoulli}(x)` elementwise.

    Dynamic binarisation (resampled every time a batch is used) regularises Bernoulli-likelihood
    models on grey-level data, as in Burda et al. (2015), *Importance Weighted Autoencoders*,
    arXiv:1509.00519. Computed as :math:`\mathbb 1[u < x]`, :math:`u \sim U[0, 1)`: exactly
    Bernoulli(x), and about 3x faster on CPU than ``torch.bernoulli`` (one uniform draw and a compare).

    Args:
        x: tensor of probabilities in ``[0, 1]``, any shape.
        generator: random source; ``None`` uses torch's global generator.
        check: verify ``0 <= x <= 1`` first. The trainer checks its whole training tensor once and
            passes ``check=False`` on the hot path; on an accelerator the check would also force a
            host sync every batch.

    Returns:
        tensor of the same shape and dtype as ``x`` with values in ``{0, 1}``.
    """
    if not torch.is_floating_point(x):
        raise TypeError(f"dynamic_binarize needs a floating-point tensor of probabilities, got {x.dtype}")
    if check:
        check_unit_interval(x, "dynamic_binarize input")
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return u.lt_(x)  # in place: the 0/1 result lands in u's float storage, no bool temporary


def check_unit_interval(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless every value of ``x`` is in [0, 1] (NaN fails)."""
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        finite = x[torch.isfinite(x)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (float("nan"), float("nan"))
        raise ValueError(f"{name} needs values in [0, 1] (no NaN) for binarisation, got range [{lo:.4g}, {hi:.4g}]"
                         + (" and non-finite values" if finite.numel() < x.numel() else ""))


def static_binarize(x: Tensor, seed: int) -> Tensor:
    r"""A fixed binarisation :math:`\tilde x \sim \mathrm{Bernoulli}(x)` drawn once from ``seed``.

    The same ``(x, seed)`` always gives the same result (a private CPU generator is used, so the
    global RNG is untouched); use it for a test set that must stay fixed across runs.
    """
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    return dynamic_binarize(x.cpu(), generator=g).to(x.device)


def seeded_split(
    n: int, sizes: Sequence[int], seed: int
) -> list[Tensor]:
    """Partition ``range(n)`` into disjoint index sets of the given sizes by one seeded permutation.

    The sizes must add up to ``n``. The permutation comes from a private generator seeded with
    ``seed``, so it is reproducible and leaves the global RNG alone.
    """
    if sum(sizes) != n or any(s < 0 for s in sizes):
        raise ValueError(f"split sizes {list(sizes)} must be non-negative and add up to {n}")
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    out, start = [], 0
    for s in sizes:
        out.append(perm[start : start + s])
        start += s
    return out


def holdout(split: Split, val_size: int, name: str) -> tuple[Split, Split | None]:
    """Split off the *last* ``val_size`` examples of ``split`` as a validation set.

    The last examples (not a random subset) so that the hold-out matches papers that say "the
    last N training images were held out" (e.g. IWAE keeps the last 400 aside for early stopping).
    """
    n = len(split)
    if val_size >= n:
        raise ValueError(f"{name}: val_size={val_size} leaves no training data (training set has {n})")
    if val_size == 0:
        return split, None
    cut = n - val_size
    y = split.y
    train = Split(split.x[:cut], None if y is None else y[:cut])
    val = Split(split.x[cut:], None if y is None else y[cut:])
    return train, val


def take(x: Tensor, y: Tensor | None, idx: Tensor) -> Split:
    """The :class:`Split` of rows ``idx``."""
    return Split(x[idx].contiguous(), None if y is None else y[idx].contiguous())

