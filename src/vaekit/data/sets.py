"""Data sets of sets (issue 15): Omniglot by character, synthetic 1-D families, and few-shot episodes.

A data set of sets is one tensor ``(n_sets, set_size, D)`` (an Omniglot character is a set of its 20 drawings;
a synthetic set is 200 draws from one distribution); batches are index slices of the first axis, as everywhere in
vaekit. Used by :class:`vaekit.models.NeuralStatistician` and :class:`vaekit.models.HomoEncoder`.

* :func:`load_omniglot_sets` — the background set (964 characters) for training, the evaluation set
  (659 characters) for few-shot testing, 105x105 area-averaged to ``size x size``; optional rotations by 90, 180,
  270 degrees as new training classes (Edwards & Storkey 2016, arXiv:1606.02185, §5.3).
* :func:`synthetic_sets` — 1-D sets from the exponential, Gaussian, uniform and Laplace families with random
  mean and variance (Edwards & Storkey 2016, §5.1).
* :class:`EpisodeSampler` — N-way K-shot episodes with Q queries per class; queries and supports are distinct
  items of each class, and a sampler only ever sees the split it was given.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .base import data_dir_for
from .benchmarks import _area_downsample
from .readers import read_npz

__all__ = ["SetData", "load_omniglot_sets", "SyntheticSets", "synthetic_sets", "FAMILIES", "Episode",
           "EpisodeSampler"]

PathLike = str | os.PathLike[str]

#: Omniglot: characters per file, drawers per character.
OMNIGLOT_FILES = (("images_background.npz", 964), ("images_evaluation.npz", 659))
OMNIGLOT_DRAWERS = 20


@dataclass
class SetData:
    """Train and test classes, each a tensor of sets.

    Attributes:
        name: where it came from (``"omniglot"``).
        train: ``(n_train_classes, n_per_class, D)`` float32 in [0, 1]; with rotations, class ``r * n + c`` is
            character ``c`` rotated by ``90 r`` degrees.
        test: ``(n_test_classes, n_per_class, D)``.
        train_ids, test_ids: ``(n_classes,)`` int64 original character index of each class (Omniglot:
            background 0..963, evaluation 964..1622), so a check can prove the two never meet.
        image_shape: ``(C, H, W)``.
    """

    name: str
    train: Tensor
    test: Tensor
    train_ids: Tensor
    test_ids: Tensor
    image_shape: tuple[int, int, int]


def _rotations(x: Tensor, size: int) -> Tensor:
    """``(n, m, size*size)`` -> ``(4 n, m, size*size)``: the classes rotated by 0, 90, 180, 270 degrees."""
    img = x.view(*x.shape[:2], size, size)
    return torch.cat([torch.rot90(img, r, dims=(-2, -1)).reshape(x.shape) for r in range(4)])


def load_omniglot_sets(data_dir: PathLike | None = None, size: int = 28, rotations: bool = False,
                       binarize: Literal["none", "static"] = "none", seed: int = 0) -> SetData:
    """Omniglot (Lake et al. 2015) as sets of the 20 drawings of each character.

    Reads ``images_background.npz`` (964 characters, train) and ``images_evaluation.npz`` (659, test), 105x105 bool
    with ink = False, from ``data_dir`` or the places :func:`vaekit.data.data_dir_for` searches (``$VAEKIT_DATA_DIR/
    omniglot``, ``../shared/data/omniglot``, ``~/.cache/vaekit/omniglot``). Images are inverted (ink = 1) and
    area-averaged (box filter) to ``size x size`` ink fractions in [0, 1].

    Args:
        size: output side in pixels, 1..105.
        rotations: add the training characters rotated by 90, 180 and 270 degrees as new classes (3856 training
            classes), as Edwards & Storkey (2016) do; the test classes are never rotated.
        binarize: ``"none"`` keeps grey levels (binarise each batch dynamically); ``"static"`` draws one
            Bernoulli sample per pixel with ``seed`` (a fixed test set).

    Returns:
        a :class:`SetData` with ``train`` ``(964 or 3856, 20, size*size)`` and ``test`` ``(659, 20, size*size)``.

    Raises:
        FileNotFoundError: a file is missing, naming it and every folder searched.
        ValueError: a file has the wrong keys, dtype or shape (naming the file); a bad ``size`` or ``binarize``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 105:
        raise ValueError(f"data.size: omniglot size must be an int in 1..105, got {size!r}")
    if binarize not in ("none", "static"):
        raise ValueError(f"data.binarize: expected 'none' or 'static', got {binarize!r}")
    root = data_dir_for("omniglot", data_dir)
    parts, ids, offset = [], [], 0
    for fname, n_chars in OMNIGLOT_FILES:
        a = read_npz(root / fname, {"images": (np.bool_, (n_chars, OMNIGLOT_DRAWERS, 105, 105)),
                                    "labels": (np.int64, (n_chars, OMNIGLOT_DRAWERS))})
        ink = ~a["images"].reshape(-1, 105, 105)
        x = _area_downsample(ink, size).view(n_chars, OMNIGLOT_DRAWERS, size * size)
        parts.append(x)
        ids.append(torch.arange(n_chars) + offset)
        offset += n_chars
    train, test = parts
    train_ids = ids[0]
    if rotations:
        train = _rotations(train, size)
        train_ids = train_ids.repeat(4)
    if binarize == "static":
        g = torch.Generator().manual_seed(seed)
        train, test = torch.bernoulli(train, generator=g), torch.bernoulli(test, generator=g)
    return SetData("omniglot", train.contiguous(), test.contiguous(), train_ids, ids[1], (1, size, size))


# --------------------------------------------------------------------------- synthetic 1-D sets
#: The four families of the synthetic experiment, in label order.
FAMILIES = ("exponential", "gaussian", "uniform", "laplace")


@dataclass
class SyntheticSets:
    """1-D data sets: ``x`` ``(n_sets, set_size, 1)``; ``family`` ``(n_sets,)`` index into :data:`FAMILIES`;
    ``mean`` and ``std`` ``(n_sets,)``, the parameters each set was drawn with (its true mean and standard
    deviation)."""

    x: Tensor
    family: Tensor
    mean: Tensor
    std: Tensor


def synthetic_sets(n_sets: int, set_size: int = 200, seed: int = 0, mean_range: tuple[float, float] = (-1.0, 1.0),
                   var_range: tuple[float, float] = (0.5, 2.0)) -> SyntheticSets:
    r"""Sets of ``set_size`` draws from a random family with random mean and variance (Edwards & Storkey 2016, §5.1).

    Each set picks a family uniformly, ``mu ~ U(mean_range)`` and ``sigma^2 ~ U(var_range)``, and draws
    ``set_size`` values with mean ``mu`` and standard deviation ``sigma``:

    * exponential: ``mu - sigma + Exp(1) * sigma`` (shifted so the mean is ``mu``);
    * gaussian: ``mu + sigma * N(0, 1)``;
    * uniform: ``mu + sigma * sqrt(3) * U(-1, 1)``;
    * laplace: ``mu + sigma / sqrt(2) * Laplace(0, 1)``.

    Raises:
        ValueError: ``n_sets`` or ``set_size`` not a positive int, or an empty or reversed range.
    """
    for name, v in (("n_sets", n_sets), ("set_size", set_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"synthetic_sets: {name} must be a positive int, got {v!r}")
    if not mean_range[0] < mean_range[1] or not 0 < var_range[0] < var_range[1]:
        raise ValueError(f"synthetic_sets: need lo < hi (and variances > 0), got mean_range={mean_range}, "
                         f"var_range={var_range}")
    g = torch.Generator().manual_seed(seed)
    family = torch.randint(len(FAMILIES), (n_sets,), generator=g)
    mean = mean_range[0] + (mean_range[1] - mean_range[0]) * torch.rand(n_sets, generator=g)
    std = (var_range[0] + (var_range[1] - var_range[0]) * torch.rand(n_sets, generator=g)).sqrt()
    u = torch.rand(n_sets, set_size, generator=g).clamp_(1e-7, 1 - 1e-7)
    # standardised draws (mean 0, variance 1) by inverse CDF, one family per row
    std_draws = torch.stack([
        -torch.log1p(-u) - 1.0,                                             # Exp(1) - 1
        math.sqrt(2.0) * torch.erfinv(2 * u - 1),                           # N(0, 1)
        math.sqrt(3.0) * (2 * u - 1),                                       # U(-sqrt 3, sqrt 3)
        -torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs()) / math.sqrt(2.0),  # Laplace(0, 1/sqrt 2)
    ])
    z = std_draws[family, torch.arange(n_sets)]
    x = mean[:, None] + std[:, None] * z
    return SyntheticSets(x.unsqueeze(-1).float(), family, mean, std)


# --------------------------------------------------------------------------- few-shot episodes
@dataclass
class Episode:
    """One N-way K-shot episode.

    Attributes:
        support: ``(way, shot, D)``: row ``j`` is the support set of the episode's class ``j``.
        query: ``(way * queries, D)``.
        query_label: ``(way * queries,)`` int64 in ``0..way-1``, the episode class of each query.
        classes: ``(way,)`` indices of the episode's classes in the sampler's data.
        support_items, query_items: ``(way, shot)`` and ``(way, queries)`` item indices within each class.
    """

    support: Tensor
    query: Tensor
    query_label: Tensor
    classes: Tensor
    support_items: Tensor
    query_items: Tensor


class EpisodeSampler:
    """Draws N-way K-shot episodes with Q queries per class from one split ``(n_classes, n_per_class, D)``.

    Each episode takes ``way`` distinct classes; in each class a random permutation of its items gives the first
    ``shot`` as support and the next ``queries`` as queries, so a query is never in its own (or any) support set.
    A sampler holds only the tensor it was given: build it on ``SetData.test`` for evaluation and on
    ``SetData.train`` for training, and no episode can cross.

    With ``distinct_ids`` (``(n_classes,)`` original character ids, e.g. ``SetData.train_ids``) the ``way`` classes
    of an episode are also distinct characters (two rotations of one character never share an episode).

    Raises:
        ValueError: ``way`` exceeds the classes, or ``shot + queries`` the items per class, naming the numbers.
    """

    def __init__(self, data: Tensor, way: int, shot: int, queries: int = 1, seed: int = 0,
                 distinct_ids: Tensor | None = None) -> None:
        if data.dim() < 3:
            raise ValueError(f"EpisodeSampler: data must be (n_classes, n_per_class, D), got {tuple(data.shape)}")
        for name, v in (("way", way), ("shot", shot), ("queries", queries)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"fewshot.{name}: expected a positive int, got {v!r}")
        n_classes, n_per = data.shape[:2]
        if way > n_classes:
            raise ValueError(f"fewshot.way: {way} classes asked, the split has {n_classes}")
        if shot + queries > n_per:
            raise ValueError(f"fewshot.shot + fewshot.queries: {shot} + {queries} items per class asked, "
                             f"each class has {n_per}")
        self.data, self.way, self.shot, self.queries = data, way, shot, queries
        self.ids = None if distinct_ids is None else torch.as_tensor(distinct_ids)
        self.generator = torch.Generator().manual_seed(seed)

    def _classes(self) -> Tensor:
        g = self.generator
        if self.ids is None:
            return torch.randperm(self.data.shape[0], generator=g)[:self.way]
        chosen: list[int] = []
        seen: set[int] = set()
        for c in torch.randperm(self.data.shape[0], generator=g).tolist():
            if int(self.ids[c]) not in seen:
                chosen.append(c)
                seen.add(int(self.ids[c]))
                if len(chosen) == self.way:
                    break
        if len(chosen) < self.way:
            raise ValueError(f"fewshot.way: {self.way} distinct characters asked, the split has {len(seen)}")
        return torch.tensor(chosen)

    def sample(self) -> Episode:
        """The next episode (deterministic given the seed and the number drawn before)."""
        classes = self._classes()
        n_per = self.data.shape[1]
        perm = torch.stack([torch.randperm(n_per, generator=self.generator) for _ in range(self.way)])
        s_items, q_items = perm[:, :self.shot], perm[:, self.shot:self.shot + self.queries]
        support = self.data[classes[:, None], s_items]                       # (way, shot, D)
        query = self.data[classes[:, None], q_items].reshape(self.way * self.queries, -1)
        label = torch.arange(self.way).repeat_interleave(self.queries)
        return Episode(support, query, label, classes, s_items, q_items)

    def __iter__(self):
        while True:
            yield self.sample()
