"""Data for conditional and semi-supervised models: a balanced labelled subset, and image masks.

* :func:`labelled_subset` — ``n`` labelled examples balanced over the classes (``n / K`` each), chosen with a
  fixed seed; the rest of the training split is the unlabelled pool (Kingma et al. 2014's 100 / 600 / 1000 /
  3000-label MNIST settings).
* :func:`stratified_subset` — ``n`` labelled examples in the classes' own proportions (scikit-learn's stratified
  split), for data whose smallest class cannot give ``n / K`` (TREC's ABBR questions).
* :func:`paired_batches` — one epoch of steps, each an unlabelled batch and a labelled batch of the same size
  (the labelled set is cycled in fresh random orders).
* :data:`MASKS` / :func:`make_mask` — which pixels are observed: ``left``, ``right``, ``top``, ``bottom`` halves,
  ``quadrant0..3`` (one quadrant observed, row-major: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right),
  ``three_quadrants0..3`` (all but that quadrant observed), ``centre_column`` (Doersch's task).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import Tensor

MASKS: tuple[str, ...] = ("left", "right", "top", "bottom", *(f"quadrant{i}" for i in range(4)),
                          *(f"three_quadrants{i}" for i in range(4)), "centre_column")


def make_mask(name: str, image_shape: Sequence[int] = (1, 28, 28)) -> Tensor:
    """The bool mask ``(C * H * W,)`` of the observed pixels (True = observed) for image rows in C, H, W order.

    Raises:
        ValueError: an unknown name (listing :data:`MASKS`) or an image shape that is not (C, H, W).
    """
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
    c, h, w = image_shape
    rows = torch.arange(h).view(h, 1).expand(h, w)
    cols = torch.arange(w).view(1, w).expand(h, w)
    top, left = rows < h // 2, cols < w // 2
    quads = [top & left, top & ~left, ~top & left, ~top & ~left]
    named = {"left": left, "right": ~left, "top": top, "bottom": ~top, "centre_column": cols == w // 2 - 1}
    named.update({f"quadrant{i}": q for i, q in enumerate(quads)})
    named.update({f"three_quadrants{i}": ~q for i, q in enumerate(quads)})
    if name not in named:
        raise ValueError(f"unknown mask {name!r}; choose one of {', '.join(MASKS)}")
    return named[name].unsqueeze(0).expand(c, h, w).reshape(-1).clone()


def labelled_subset(y: Tensor, n: int, seed: int = 0, n_classes: int | None = None) -> tuple[Tensor, Tensor]:
    """``(labelled_idx, unlabelled_idx)``: ``n / K`` examples of each of the ``K`` classes, drawn with ``seed``.

    Both index tensors are int64 and sorted; together they cover ``range(len(y))`` once.

    Raises:
        ValueError: ``n`` not a positive multiple of ``K``, or a class with fewer than ``n / K`` examples.
    """
    k = int(y.max()) + 1 if n_classes is None else n_classes
    if n < k or n % k:
        raise ValueError(f"n labels must be a positive multiple of the {k} classes (balanced), got {n}")
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(k):
        idx = (y == c).nonzero().flatten()
        if len(idx) < n // k:
            raise ValueError(f"class {c} has {len(idx)} examples, fewer than the {n // k} asked")
        chosen.append(idx[torch.randperm(len(idx), generator=g)[: n // k]])
    lab = torch.cat(chosen).sort().values
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[lab] = False
    return lab, keep.nonzero().flatten()


def stratified_subset(y: Tensor, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(labelled_idx, unlabelled_idx)``: ``n`` examples drawn with ``seed`` so that each class keeps its share of
    ``y`` (to within one example; scikit-learn's ``train_test_split(stratify=y)``, which allocates the rounding
    remainder; used rather than our own rounding rule). Both index tensors are int64 and sorted; together they
    cover ``range(len(y))`` once.

    Raises:
        ValueError: ``n`` not in [K, len(y) − K] for the K classes present (every class needs a labelled and an
            unlabelled example), or a class with a single example.
    """
    from sklearn.model_selection import train_test_split

    y_np = y.cpu().numpy()
    counts = torch.bincount(y.long())
    k = int((counts > 0).sum())
    if not k <= n <= len(y) - k:
        raise ValueError(f"n labels must lie in [{k}, {len(y) - k}] for {len(y)} examples of {k} classes, got {n}")
    if int(counts[counts > 0].min()) < 2:
        raise ValueError(f"class {int((counts == 1).nonzero()[0])} has a single example; it cannot be stratified")
    lab, unl = train_test_split(torch.arange(len(y)).numpy(), train_size=n, stratify=y_np, random_state=seed)
    return torch.as_tensor(lab, dtype=torch.long).sort().values, torch.as_tensor(unl, dtype=torch.long).sort().values


def paired_batches(n_unlabelled: int, n_labelled: int, batch_size: int, generator: torch.Generator,
                   labelled_batch_size: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch over the unlabelled pool: ``(unlabelled positions, labelled positions)`` per step, the first of
    ``batch_size`` rows (the last may be smaller), the second of ``labelled_batch_size`` (None: the same size as
    its unlabelled partner); the labelled positions run through fresh random orders of ``range(n_labelled)``, so
    every labelled example is used equally."""
    order = torch.randperm(n_unlabelled, generator=generator)
    lab: list[Tensor] = []
    have = 0
    for u in order.split(batch_size):
        m = len(u) if labelled_batch_size is None else labelled_batch_size
        while have < m:
            lab.append(torch.randperm(n_labelled, generator=generator))
            have += n_labelled
        flat = torch.cat(lab)
        yield u, flat[:m]
        lab, have = [flat[m:]], have - m


__all__ = ["MASKS", "make_mask", "labelled_subset", "paired_batches"]
