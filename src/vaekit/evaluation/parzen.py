"""Parzen-window (Gaussian kernel density) log-likelihood "estimates": kept only as a documented bad example.

Theis, van den Oord & Bethge 2016 ("A note on the evaluation of generative models", arXiv:1511.01844) show
that Parzen scores are a poor proxy for log-likelihood in high dimensions and can rank models wrongly: a
Parzen window built on k-means centroids beats one built on true samples of the data distribution.
:func:`theis_demo` reproduces that. Nothing else in vaekit uses this module; use ``vaekit.evaluation.ais``
or the IWAE bound for likelihoods.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

WARNING = ("Parzen-window log-likelihood estimates are unreliable in high dimensions and can rank models "
           "wrongly (Theis, van den Oord & Bethge 2016, arXiv:1511.01844); use AIS or IWAE bounds instead.")


class ParzenWarning(UserWarning):
    """Issued whenever a Parzen score is computed (see the module docstring)."""


def parzen_log_density(x: Tensor, centres: Tensor, sigma: float, chunk: int = 512) -> Tensor:
    r"""Log density of every row of ``x`` under an isotropic Gaussian kernel density estimate.

    .. math::
        \log \hat p(x) = \log\frac1n\sum_{i=1}^n \mathcal N(x; c_i, \sigma^2 I)
        = \operatorname{logsumexp}_i\Big(-\frac{\lVert x-c_i\rVert^2}{2\sigma^2}\Big) - \log n
          - \frac D2\log(2\pi\sigma^2)

    Args:
        x: ``(N, D)`` points to score. centres: ``(n, D)`` kernel centres (model samples). sigma: bandwidth > 0.
        chunk: rows of ``x`` per block (memory ``O(chunk · n)``).

    Returns:
        ``(N,)`` float64 log densities. Distances use ``torch.cdist`` in float64.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if x.dim() != 2 or centres.dim() != 2 or x.shape[1] != centres.shape[1]:
        raise ValueError(f"x (N, D) and centres (n, D) must share D, got {tuple(x.shape)} and {tuple(centres.shape)}")
    c = centres.double()
    n, d = c.shape
    const = -math.log(n) - 0.5 * d * math.log(2 * math.pi * sigma ** 2)
    out = [torch.logsumexp(-torch.cdist(xb.double(), c).pow(2) / (2 * sigma ** 2), dim=1) + const
           for xb in x.split(chunk)]
    return torch.cat(out)


@dataclass
class ParzenResult:
    """Mean Parzen log density of the test points (nats), its s.e. over points, and the chosen bandwidth."""

    mean: float
    stderr: float
    sigma: float
    n_centres: int


def select_bandwidth(centres: Tensor, x_val: Tensor, sigmas: Tensor | None = None) -> float:
    """The ``sigma`` in ``sigmas`` (default: 40 log-spaced values in [0.01, 10]) maximising the mean
    validation log density, as in Breuleux et al. 2011 and the GAN paper's evaluation."""
    grid = sigmas if sigmas is not None else torch.logspace(-2, 1, 40)
    scores = [float(parzen_log_density(x_val, centres, float(s)).mean()) for s in grid]
    return float(grid[int(np.argmax(scores))])


def parzen_score(centres: Tensor, x_test: Tensor, x_val: Tensor, sigmas: Tensor | None = None) -> ParzenResult:
    """Parzen "log-likelihood" of ``x_test`` with the bandwidth chosen on ``x_val``. Warns (:class:`ParzenWarning`):
    this is not a trustworthy likelihood estimate (Theis et al. 2016, arXiv:1511.01844)."""
    warnings.warn(WARNING, ParzenWarning, stacklevel=2)
    sigma = select_bandwidth(centres, x_val, sigmas)
    v = parzen_log_density(x_test, centres, sigma)
    return ParzenResult(float(v.mean()), float(v.std() / math.sqrt(v.numel())), sigma, centres.shape[0])


def _digits_split(seed: int) -> tuple[Tensor, Tensor, Tensor]:
    from sklearn.datasets import load_digits
    x = torch.as_tensor(load_digits().data / 16.0, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.shape[0], generator=g)
    x = x[perm]
    return x[500:], x[200:500], x[:200]  # train, validation, test


def theis_demo(n_centres: int = 100, seed: int = 0,
               data: tuple[Tensor, Tensor, Tensor] | None = None) -> dict[str, Any]:
    """Theis et al.'s counter-example on sklearn's 8x8 digits (grey levels in [0, 1], 64 dims).

    Two "models", each ``n_centres`` points: (a) true samples of the data distribution (random training
    images), (b) k-means centroids of the training set (``sklearn.cluster.KMeans``), a degenerate model
    that cannot generate realistic samples. Bandwidths are chosen on validation data separately for each.
    Parzen scores (b) higher, i.e. it ranks a worse "model" above the data distribution itself.

    Args:
        n_centres: centres per model. seed: data split, sample choice and k-means seed.
        data: optional ``(train, val, test)`` tensors to use instead of digits.

    Returns:
        ``{"true_samples": ParzenResult, "kmeans": ParzenResult, "gap": kmeans.mean - true.mean, ...}``.
    """
    from sklearn.cluster import KMeans
    train, val, test = data if data is not None else _digits_split(seed)
    if n_centres > train.shape[0]:
        raise ValueError(f"n_centres={n_centres} exceeds the {train.shape[0]} training points")
    g = torch.Generator().manual_seed(seed + 1)
    true_c = train[torch.randperm(train.shape[0], generator=g)[:n_centres]]
    km = KMeans(n_clusters=n_centres, n_init=3, random_state=seed).fit(train.numpy())
    km_c = torch.as_tensor(km.cluster_centers_, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParzenWarning)
        r_true = parzen_score(true_c, test, val)
        r_km = parzen_score(km_c, test, val)
    warnings.warn(WARNING, ParzenWarning, stacklevel=2)
    return {"true_samples": r_true, "kmeans": r_km, "gap": r_km.mean - r_true.mean,
            "n_train": train.shape[0], "n_val": val.shape[0], "n_test": test.shape[0], "dim": train.shape[1]}
