"""The one fast-path method every vaekit posterior has: ``rsample_and_log_prob(sample_shape)``."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["RsampleAndLogProb"]


class RsampleAndLogProb:
    """Mixin for ``torch.distributions.Distribution`` subclasses: a sample and its log-density in one call.

    ``rsample_and_log_prob(sample_shape) -> (z, log_prob(z))`` with ``z`` of shape
    ``(*sample_shape, *batch_shape, *event_shape)`` and ``log_prob`` of shape ``(*sample_shape, *batch_shape)``
    (nats). Models and objectives call only this (and ``kl_divergence``), never a family-specific hook.
    This default draws with ``rsample`` (``sample`` for families without reparameterisation) and then
    evaluates ``log_prob``; families with a cheaper closed form from the noise override it (the diagonal
    Gaussian, a flow's forward pass), as distrax's ``sample_and_log_prob`` and nflows' ``sample_and_log_prob``.
    """

    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> tuple[Tensor, Tensor]:
        z = self.rsample(sample_shape) if self.has_rsample else self.sample(sample_shape)  # type: ignore[attr-defined]
        return z, self.log_prob(z)  # type: ignore[attr-defined]
