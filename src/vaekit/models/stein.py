r"""The Stein VAE (Pu, Gan, Henao, Li, Han & Carin 2017, "VAE Learning via Stein Variational Gradient
Descent", arXiv:1704.05155): an implicit encoder whose particles are moved by SVGD.

The encoder is a sampler, not a density: for noise ``ξ_j ~ N(0, I)``,

.. math:: z_j = f_\eta(x, \xi_j),\qquad j = 1..M,

so ``q(z|x)`` has no closed form and no ``log q``. Training (:mod:`vaekit.objectives.stein`) moves the
particles one SVGD step towards ``p(z|x) ∝ p(x|z) p(z)`` (:func:`vaekit.inference.svgd_direction`) and
regresses the encoder onto the move; the decoder maximises ``log p(x|z_j)`` at the particles. The prior is
``N(0, I)``, so AIS (which needs only ``prior()`` and ``log_likelihood``) evaluates ``log p(x)``; the ELBO,
the IWAE bounds and ``log_weights``, which need ``log q``, are refused with a message that says so.

Here ``f_η(x, ξ) = head([g(x), ξ])``: the data network ``g`` runs once per example, the small ``head`` once
per particle (the paper concatenates the noise with the input or a hidden layer; where it joins is a
choice of ours).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..distributions.normal import standard_normal
from ..likelihoods import LIKELIHOODS
from ..likelihoods.base import Likelihood
from ..nets.mlp import Activation
from ..registry import ConfigError, PositiveFloat, PositiveInt, build
from .base import MODELS, LatentVariableModel
from .build import build_net

__all__ = ["SteinVAE", "build_stein_vae", "NO_DENSITY"]

NO_DENSITY = ("{name}: the posterior is implicit (particles z_j = f(x, xi_j), Pu et al. 2017) and has no density "
              "q(z|x), so log q(z|x), the ELBO, the IWAE bound and log_weights cannot be computed; estimate log p(x) "
              "with AIS, which needs only the prior and the likelihood (vaekit eval RUN_DIR --estimators ais:1000, "
              "or vaekit.evaluation.ais)")


class SteinVAE(LatentVariableModel):
    r"""A VAE with an implicit (particle) encoder, trained by amortised SVGD (Pu et al. 2017, arXiv:1704.05155).

    Protocol: ``posterior_density = False``. ``prior()`` is ``N(0, I_D)``; ``log_likelihood``, ``log_joint``,
    ``decode``, ``sample`` and ``latent_space`` are those of a VAE. ``posterior``, ``forward`` and
    ``log_weights`` raise ``NotImplementedError`` naming AIS. :meth:`particles` draws the encoder's samples.

    Args:
        encoder: ``(…, data_dim) -> (…, H)``, run once per example.
        head: ``(…, H + noise_dim) -> (…, D)``, run once per particle.
        decoder: ``(…, D) -> (…, likelihood.out_features)``.
        likelihood: the observation model.
        latent_dim: ``D``.
        noise_dim: size of each particle's noise ``ξ``.
        particles: ``M``, particles per example in training.
        bandwidth: the SVGD kernel's bandwidth rule (``"median"``, ``"median_log"``, ``"median_diag"``; see
            :mod:`vaekit.inference.svgd`) or a number.
    """

    posterior_density = False

    def __init__(self, encoder: nn.Module, head: nn.Module, decoder: nn.Module, likelihood: Likelihood,
                 latent_dim: int, noise_dim: int, particles: int = 8, bandwidth: str | float = "median") -> None:
        super().__init__()
        if particles < 2:
            raise ValueError(f"particles must be >= 2 (SVGD moves sets of particles), got {particles}")
        self.encoder, self.head, self.decoder, self.likelihood = encoder, head, decoder, likelihood
        self.latent_dim, self.noise_dim, self.n_particles, self.bandwidth = latent_dim, noise_dim, particles, bandwidth

    @property
    def data_dim(self) -> int:
        return self.likelihood.data_dim

    def _refuse(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"{what}: " + NO_DENSITY.format(name=type(self).__name__))

    # ----- the implicit encoder ----------------------------------------------------------------------------------
    def particles(self, x: Tensor, m: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        r"""``m`` (default ``M``) encoder samples per example, ``z_j = head([g(x), ξ_j])``, shape ``(m, B, D)``.

        Differentiable with respect to the encoder's parameters (the SVGD surrogate needs ``∂z_j/∂η``).

        Raises:
            ValueError: ``m < 1``.
        """
        m = self.n_particles if m is None else m
        if m < 1:
            raise ValueError(f"m must be >= 1, got {m}")
        h = self.encoder(x)  # (B, H)
        xi = torch.randn((m, *h.shape[:-1], self.noise_dim), generator=generator, dtype=h.dtype, device=h.device)
        return self.head(torch.cat([h.expand(m, *h.shape), xi], -1))

    def posterior(self, x: Tensor) -> Distribution:
        """Refused: the implicit posterior has no density (see :data:`NO_DENSITY`)."""
        raise self._refuse("posterior")

    def forward(self, x: Tensor, k: int = 1) -> Any:
        """Refused: a :class:`~vaekit.models.VAEOutput` needs a KL, which needs ``log q``."""
        raise self._refuse("forward (the ELBO's VAEOutput)")

    def log_weights(self, x: Tensor, k: int, *, chunk_size: int | None = None) -> Tensor:
        """Refused: importance weights need ``log q(z|x)``."""
        raise self._refuse("log_weights")

    # ----- generative side -----------------------------------------------------------------------------------------
    def prior(self) -> Distribution:
        """p(z) = N(0, I_D): empty batch shape, event shape ``(D,)``."""
        return standard_normal(self.latent_dim, next(self.decoder.parameters()))

    def decode(self, z: Tensor) -> Distribution:
        """p(x|z) for ``z`` ``(*S, D)``: batch shape ``S``, event shape ``(data_dim,)``."""
        return self.likelihood(self.decoder(z))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) in nats, summed over data dims; ``z`` ``(*S, B, D)``, ``x`` ``(B, data_dim)`` -> ``(*S, B)``."""
        return self.likelihood.log_prob(self.decoder(z), x)

    def encode(self, x: Tensor) -> Tensor:
        """The mean of ``M`` particles drawn with a fixed noise seed (0), ``(B, D)``: deterministic."""
        g = torch.Generator(device=x.device).manual_seed(0)
        return self.particles(x, generator=g).mean(0)


@MODELS.register("stein_vae")
def build_stein_vae(data_dim: int, image_shape: Sequence[int] | None, encoder: dict, decoder: dict, likelihood: dict,
                    dim: PositiveInt = 20, noise_dim: PositiveInt | None = None, particles: PositiveInt = 8,
                    head_hidden: Sequence[PositiveInt] = (200,), head_activation: Activation = "tanh",
                    bandwidth: Literal["median", "median_log", "median_diag"] | PositiveFloat = "median") -> SteinVAE:
    """``model: {type: stein_vae, encoder: {...}, decoder: {...}, likelihood: {...}, dim: 20, particles: 8}``.

    ``noise_dim`` defaults to ``dim``; the head is an MLP ``H + noise_dim -> head_hidden -> dim``.

    Raises:
        ConfigError: naming the dotted key (``model.particles: SVGD moves sets of at least 2 particles, got 1``);
            the registry has already checked every key's type and range.
    """
    if particles < 2:
        raise ConfigError(f"model.particles: SVGD moves sets of at least 2 particles, got {particles}")
    noise_dim = dim if noise_dim is None else noise_dim
    lik = build(LIKELIHOODS, likelihood, "model.likelihood", data_dim=data_dim)
    enc = build_net(encoder, "model.encoder", data_dim, None, image_shape)
    head = build_net({"type": "mlp", "hidden": list(head_hidden), "activation": head_activation}, "model.head_hidden",
                     enc.out_features + noise_dim, dim, None)
    dec = build_net(decoder, "model.decoder", dim, lik.out_features, image_shape)
    return SteinVAE(enc, head, dec, lik, dim, noise_dim, particles, bandwidth)
