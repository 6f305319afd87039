"""Inverse-autoregressive-flow posterior: a diagonal Gaussian refined by T amortised IAF steps."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from ..distributions.normal import DiagonalNormal, standard_normal
from ..distributions.sampling import RsampleAndLogProb
from ..flows.iaf import IAF
from ..registry import NonNegativeFloat, PositiveInt
from .base import LATENTS, LatentLayer
from .gaussian import GaussianLatent


class IAFPosterior(RsampleAndLogProb, Distribution):
    r"""``q(z_T|x)`` of an IAF posterior (Kingma et al. 2016, arXiv:1606.04934, Algorithm 1).

    .. math::
        z_0 = \mu_0 + \sigma_0 \odot \epsilon,\ \epsilon \sim \mathcal N(0, I), \qquad z_T = f_T\circ\dots\circ f_1(z_0; c),

        \log q(z_T) = \log \mathcal N(z_0; \mu_0, \sigma_0^2) - \sum_{t=1}^T \sum_i \log \sigma_{t,i}

    Args:
        loc, scale: ``(*batch, D)`` base Gaussian parameters.
        context: ``(*batch, C)`` the context ``c`` every step is conditioned on.
        flow: the :class:`~vaekit.flows.IAF` module (shared, stateless).

    Notes:
        :meth:`rsample_and_log_prob` returns a sample and its ``log q`` from one
        forward pass (what the VAE uses). :meth:`log_prob` is exact for *any*
        value: it inverts the flow, ``T (D + 1)`` sequential MADE passes. Nothing
        is cached between calls. ``mean`` has no closed form and raises.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: Tensor, scale: Tensor, context: Tensor, flow: IAF,
                 validate_args: bool | None = None) -> None:
        if loc.shape != scale.shape or loc.shape[:-1] != context.shape[:-1]:
            raise ValueError(f"loc {tuple(loc.shape)}, scale {tuple(scale.shape)} and context "
                             f"{tuple(context.shape)} must share the batch shape (and loc/scale the event size)")
        self.loc, self.scale, self.context, self.flow = loc, scale, context, flow
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=validate_args)
        # loc and scale are checked above (arg_constraints) when validation is on; the base need not repeat it
        self.base = DiagonalNormal(loc, scale, validate_args=False)

    def expand(self, batch_shape: torch.Size, _instance=None) -> "IAFPosterior":
        new = self._get_checked_instance(IAFPosterior, _instance)
        batch_shape = torch.Size(batch_shape)
        d, c = self.event_shape[0], self.context.shape[-1]
        new.loc, new.scale = self.loc.expand(*batch_shape, d), self.scale.expand(*batch_shape, d)
        new.context, new.flow = self.context.expand(*batch_shape, c), self.flow
        new.base = DiagonalNormal(new.loc, new.scale, validate_args=False)
        Distribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _context_for(self, shape: torch.Size) -> Tensor:
        return self.context.expand(*shape, self.context.shape[-1])  # broadcast over sample dims

    def rsample_and_log_prob(self, sample_shape: torch.Size = torch.Size()) -> tuple[Tensor, Tensor]:
        """One forward pass: ``(z_T (*sample, *batch, D), log q(z_T) (*sample, *batch))``."""
        z0, log_q0 = self.base.rsample_and_log_prob(sample_shape)
        z, log_det = self.flow(z0, self._context_for(z0.shape[:-1]))
        return z, log_q0 - log_det

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return self.rsample_and_log_prob(sample_shape)[0]

    def log_prob(self, value: Tensor) -> Tensor:
        """Exact ``log q(value)`` by inverting the flow (``O(D)`` sequential passes), nats.

        ``value`` ``(*S, D)`` broadcasts against the batch shape like any torch distribution's (``(D,)`` gives
        ``(*batch,)``, ``(5, 1, D)`` with batch ``(B,)`` gives ``(5, B)``); the result is ``broadcast(S, batch)``.
        """
        if self._validate_args:
            self._validate_sample(value)
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        value = value.expand(*shape, self.event_shape[0])  # the flow's MADE runs row by row
        z0, log_det = self.flow.inverse(value, self._context_for(shape))
        return self.base.log_prob(z0) - log_det

    def transformed_base_point(self) -> Tensor:
        """``f(mu_0)``: the image of the base mean, ``(*batch, D)`` (a deterministic code, not the mean)."""
        return self.flow(self.loc, self.context)[0]


@LATENTS.register("iaf")
class IAFLatent(LatentLayer):
    r"""Diagonal Gaussian posterior refined by ``steps`` IAF steps conditioned on a context from ``h``.

    .. math::
        (\mu_0, \sigma_0) = \text{GaussianLatent head}(h),\quad c = W_c h + b_c,\quad
        z_T = \mathrm{IAF}(z_0; c),\qquad p(z) = \mathcal N(0, I)

    The flow is amortised: every step sees the per-example context ``c``
    (Kingma et al. 2016, arXiv:1606.04934, Algorithm 1), unlike a global flow
    shared across examples. No KL is registered for :class:`IAFPosterior`, so the
    VAE uses the Monte Carlo KL ``log q(z) - log p(z)`` on its own sample.

    Args:
        in_features: width of ``h``.
        dim: latent size ``D``.
        steps: number of IAF steps ``T``.
        hidden: MADE hidden widths (each ``>= D``); the paper's MNIST model uses two layers of 320.
        context_dim: width of ``c`` (default ``D``).
        gate_bias: initial ``s`` bias (see :class:`~vaekit.flows.IAFStep`).
        activation: MADE nonlinearity.
        scale_link, min_scale: the base Gaussian's scale map (as :class:`GaussianLatent`).
    """

    def __init__(self, in_features: int, dim: int, steps: PositiveInt = 2, hidden: Sequence[PositiveInt] = (320, 320),
                 context_dim: PositiveInt | None = None, gate_bias: float = 1.5, activation: str = "elu",
                 scale_link: Literal["softplus", "exp"] = "softplus", min_scale: NonNegativeFloat = 1e-4) -> None:
        super().__init__(in_features, dim)
        context_dim = dim if context_dim is None else context_dim
        if context_dim < 1:
            raise ValueError(f"context_dim must be positive, got {context_dim}")
        self.base = GaussianLatent(in_features, dim, scale_link=scale_link, min_scale=min_scale)
        self.context = nn.Linear(in_features, context_dim)
        self.flow = IAF(dim, steps, context_dim, list(hidden), gate_bias, activation)

    def params(self, h: Tensor) -> dict[str, Tensor]:
        return {**self.base.params(h), "context": self.context(h)}

    def distribution(self, loc: Tensor, scale: Tensor, context: Tensor) -> IAFPosterior:
        return IAFPosterior(loc, scale, context, self.flow)

    def prior(self) -> Distribution:
        return standard_normal(self.dim, self.base.head.bias)

    def point_estimate(self, q: Distribution) -> Tensor:
        """``f(mu_0)``, the flow applied to the base mean (the posterior mean has no closed form)."""
        if not isinstance(q, IAFPosterior):
            raise TypeError(f"IAFLatent.point_estimate expects an IAFPosterior, got {type(q).__name__}")
        return q.transformed_base_point()

