r"""The conditional VAE (Sohn, Lee & Yan 2015; Doersch 2016, §4) and the deterministic baseline it is compared with.

.. math::
    \log p(x|c) \ge \mathbb E_{q(z|x,c)}[\log p(x|z,c)] - \mathrm{KL}(q(z|x,c)\,\|\,p(z|c))

``c`` is a class label, an observed part of the image, or any tensor (:mod:`vaekit.models.conditions`). With a
mask condition the model is Sohn et al.'s structured-output CVAE: ``x`` is the whole image, only the pixels the
mask hides are scored (y, the output), the recognition network q(z|x, y) sees the whole image and the prior
network p(z|x_obs) only the observed pixels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..latents.base import LatentLayer
from ..latents.space import LatentSpace, latent_space_of
from ..likelihoods.base import Likelihood
from .base import LatentVariableModel
from .conditions import Condition, ConditionError, MaskCondition


def _with(z: Tensor, e: Tensor) -> Tensor:
    """``[z, e]`` with the condition features ``e`` ``(B, E)`` broadcast over z's sample dims ``(*S, B, D)``."""
    return torch.cat([z, e.expand(*z.shape[:-1], e.shape[-1]).to(z.dtype)], -1)


class ConditionalVAE(LatentVariableModel):
    r"""A VAE whose encoder, decoder and (optionally) prior all see a condition ``c`` (keyword arguments).

    .. math::
        q(z|x,c) = \mathrm{latent}(\mathrm{enc}([x, e(c)])),\quad p(x|z,c) = \mathrm{lik}(\mathrm{dec}([z, e(c)])),\quad
        p(z|c) = \mathrm{prior\_latent}(\mathrm{prior\_net}(e(c)))\ \text{or the latent family's fixed prior}

    (Sohn et al. 2015, "Learning Structured Output Representation using Deep Conditional Generative Models",
    NIPS; Doersch 2016, arXiv:1606.05908 §4). The learned prior is a second layer of the *same latent family*, so
    the model works with any family; its KL is analytic where registered, else Monte Carlo.

    Shapes: ``x`` ``(B, data_dim)``; ``posterior`` batch ``(B,)``; ``prior`` batch ``(B,)`` with a prior network,
    ``()`` without; ``log_likelihood`` ``(*S, B)`` in nats. With a mask condition ``log_likelihood`` sums only the
    unobserved pixels, so ``log_weights`` bounds ``log p(y | x_obs)``, the conditional log-likelihood of the
    missing pixels.

    Raises:
        ConditionError: a missing or unexpected condition, a label out of range, a mask of the wrong shape;
            ``sample(n)`` without its condition says which it needs.
    """

    def __init__(self, encoder: nn.Module, latent: LatentLayer, decoder: nn.Module, likelihood: Likelihood,
                 condition: Condition, prior_net: nn.Module | None = None, prior_latent: LatentLayer | None = None) -> None:
        super().__init__()
        if (prior_net is None) != (prior_latent is None):
            raise ValueError("a learned conditional prior needs both prior_net and prior_latent")
        self.encoder, self.latent, self.decoder, self.likelihood = encoder, latent, decoder, likelihood
        self.condition = condition
        self.prior_net, self.prior_latent = prior_net, prior_latent

    @property
    def data_dim(self) -> int:
        return self.likelihood.data_dim

    @property
    def latent_dim(self) -> int:
        return self.latent.dim

    @property
    def structured(self) -> bool:
        """True for a mask condition: only the unobserved pixels are scored (structured output prediction)."""
        return isinstance(self.condition, MaskCondition)

    def _embed(self, batch: int | None, cond: dict[str, Any]) -> Tensor:
        return self.condition.embed(batch, type(self).__name__, **cond)

    def posterior(self, x: Tensor, **cond: Any) -> Distribution:
        """q(z|x, c): batch ``(B,)``, event ``(D,)``."""
        return self.latent(self.encoder(torch.cat([x, self._embed(x.shape[0], cond).to(x.dtype)], -1)))

    def prior(self, **cond: Any) -> Distribution:
        """p(z|c): batch ``(B,)`` from the prior network, or the family's fixed prior (batch ``()``; the
        condition is still checked, so a model never silently ignores a wrong one)."""
        if self.prior_net is None:
            if cond:
                self._embed(self.condition.batch_size(cond) if set(self.condition.names) <= set(cond) else None, cond)
            return self.latent.prior()
        return self.prior_latent(self.prior_net(self._embed(self.condition.batch_size(self._need(cond)), cond)))

    def _need(self, cond: dict[str, Any]) -> dict[str, Any]:
        self.condition.check(cond, type(self).__name__)
        return cond

    def _scored(self, dist_params: Tensor, x: Tensor, cond: dict[str, Any]) -> Tensor:
        if not self.structured:
            return self.likelihood.log_prob(dist_params, x)
        hidden = ~self.condition.mask(x.shape[0], type(self).__name__, cond["mask"])
        per_pixel = self.likelihood(dist_params).base_dist.log_prob(x)
        return (per_pixel * hidden.to(per_pixel.dtype)).sum(-1)

    def log_likelihood(self, x: Tensor, z: Tensor, **cond: Any) -> Tensor:
        """log p(x|z, c) in nats, ``(*S, B)``: summed over all pixels, or (mask condition) over the hidden ones."""
        e = self._embed(x.shape[0], cond)
        return self._scored(self.decoder(_with(z, e)), x, cond)

    def decode(self, z: Tensor, **cond: Any) -> Distribution:
        """p(x|z, c) for ``z`` ``(*S, B, D)``: batch ``(*S, B)``, event ``(data_dim,)``."""
        e = self._embed(z.shape[-2] if z.dim() >= 2 else None, cond)
        return self.likelihood(self.decoder(_with(z, e)))

    def encode(self, x: Tensor, **cond: Any) -> Tensor:
        """The posterior's point estimate, ``(B, D)``."""
        return self.latent.point_estimate(self.posterior(x, **cond))

    @property
    def latent_space(self) -> LatentSpace:
        return latent_space_of(self.latent.prior())

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, **cond: Any) -> Tensor:
        """``n`` draws ``z ~ p(z|c)`` decoded to ``(n, data_dim)``; ``c`` is one condition (repeated) or ``n`` rows.

        With a mask condition the observed pixels are copied from ``observed`` (a completion).

        Raises:
            ConditionError: no condition given, naming the one this model needs.
        """
        if not cond:
            raise ConditionError(f"{type(self).__name__} is conditional: sample(n, ...) needs the condition "
                                 f"{list(self.condition.names)} ({self.condition.description}), e.g. "
                                 + ("sample(16, label=3)" if self.condition.names == ("label",) else
                                    "sample(n, mask=m, observed=x)" if self.structured else "sample(n, c=c)"))
        cond = self.condition.expand(n, self._need(cond))
        p = self.prior(**cond)
        z = p.sample() if p.batch_shape == (n,) else p.sample((n,))
        px = self.decode(z, **cond)
        out = px.mean if mean else px.sample()
        if self.structured:
            m = self.condition.mask(n, type(self).__name__, cond["mask"]).to(out.dtype)
            out = m * torch.as_tensor(cond["observed"], dtype=out.dtype) + (1 - m) * out
        return out

    def reconstruct(self, x: Tensor, **cond: Any) -> Tensor:
        return self.decode(self.encode(x, **cond), **cond).mean


class MaskedPredictor(nn.Module):
    r"""The deterministic baseline of structured output prediction: ``p(y | x_obs) = lik(net([x_obs * m, m]))``.

    Sohn et al. (2015)'s "baseline NN": no latent, so its ``log p(y|x_obs)`` (nats, summed over the hidden
    pixels) is exact. ``conditional_log_likelihood(x, mask)`` ``(B,)``; ``predict(x, mask)`` the completed mean.
    """

    def __init__(self, net: nn.Module, likelihood: Likelihood) -> None:
        super().__init__()
        self.net, self.likelihood = net, likelihood
        self.condition = MaskCondition(likelihood.data_dim)

    def conditional_log_likelihood(self, x: Tensor, mask: Tensor) -> Tensor:
        e = self.condition.embed(x.shape[0], "MaskedPredictor", mask=mask, observed=x).to(x.dtype)
        hidden = ~self.condition.mask(x.shape[0], "MaskedPredictor", mask)
        per_pixel = self.likelihood(self.net(e)).base_dist.log_prob(x)
        return (per_pixel * hidden.to(per_pixel.dtype)).sum(-1)

    @torch.no_grad()
    def predict(self, x: Tensor, mask: Tensor) -> Tensor:
        e = self.condition.embed(x.shape[0], "MaskedPredictor", mask=mask, observed=x).to(x.dtype)
        m = self.condition.mask(x.shape[0], "MaskedPredictor", mask).to(x.dtype)
        return m * x + (1 - m) * self.likelihood(self.net(e)).mean


__all__ = ["ConditionalVAE", "MaskedPredictor", "ConditionError"]
