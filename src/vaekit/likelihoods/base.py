"""Observation models: decoder output -> a ``Distribution`` over x whose ``log_prob`` sums over data dims."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..registry import Registry

LIKELIHOODS: Registry["Likelihood"] = Registry("likelihood")


class Likelihood(nn.Module):
    """Base observation model.

    The decoder emits ``params_per_value * D`` numbers per example, laid out as
    ``params_per_value`` blocks of ``D`` (``D`` = flattened data size).
    :meth:`forward` turns them into a distribution with event shape ``(D,)``.
    :meth:`validate` checks a data tensor once, before training or scoring.
    """

    params_per_value: int = 1

    def __init__(self, data_dim: int) -> None:
        super().__init__()
        if data_dim < 1:
            raise ValueError(f"data_dim must be positive, got {data_dim}")
        self.data_dim = data_dim

    @property
    def out_features(self) -> int:
        """How many numbers the decoder must output per example."""
        return self.params_per_value * self.data_dim

    def forward(self, params: Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """``log p(x | params)`` summed over the data dim: ``forward(params).log_prob(x)``.

        ``params`` ``(*S, B, out_features)`` and ``x`` ``(B, D)`` give ``(*S, B)``. Families
        override it to skip building the ``Distribution`` (the hot path of every objective).
        """
        return self(params).log_prob(x)

    def validate(self, x: Tensor, name: str = "x") -> None:
        """Raise ``ValueError`` naming the problem if ``x`` cannot be scored by this model."""
        if not torch.is_tensor(x):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if x.dim() < 1 or x.shape[-1] != self.data_dim:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)} but the model expects (batch, {self.data_dim}) "
                f"(flattened data of size {self.data_dim})"
            )
        bad = ~torch.isfinite(x)
        if bad.any():
            raise ValueError(f"{name} contains {int(bad.sum())} non-finite values (NaN or inf)")
