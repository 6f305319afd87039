"""What every model returns and the registry the CLI builds models from."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..registry import Registry

MODELS: Registry = Registry("model")


@dataclass
class VAEOutput:
    """One pass of ``k`` posterior samples for a batch of ``B`` inputs.

    Attributes (shapes ``[sample, batch, ...]``):
        z: ``(k, B, D)`` posterior samples (the top layer's for stacked models).
        log_likelihood: ``(k, B)`` log p(x | z_i), summed over data dims.
        log_prior: ``(k, B)`` log p(z_i), summed over every stochastic layer.
        log_posterior: ``(k, B)`` log q(z_i | x), summed over every stochastic layer.
        kl: ``(B,)`` analytic KL(q || p) where registered, else ``(k, B)``, the
            single-sample estimate log q - log p; summed over layers.
        kl_per_dim: ``(B, D)`` analytic per-dimension KL when the family factorises
            and has one, else None (free bits needs it).
    """

    z: Tensor
    log_likelihood: Tensor
    log_prior: Tensor
    log_posterior: Tensor
    kl: Tensor
    kl_per_dim: Tensor | None = None

    @property
    def log_weights(self) -> Tensor:
        """``(k, B)`` importance log-weights log p(x, z_i) - log q(z_i | x)."""
        return self.log_likelihood + self.log_prior - self.log_posterior

    @property
    def k(self) -> int:
        return self.log_likelihood.shape[0]
