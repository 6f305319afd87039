"""Relaxed categorical (Gumbel-softmax) latent layer for discrete codes."""

from __future__ import annotations

from typing import Annotated

import annotated_types as at
import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..distributions.relaxed import MAX_TEMPERATURE, MIN_TEMPERATURE, GroupedRelaxedOneHotCategorical
from .base import LATENTS, LatentLayer


@LATENTS.register("relaxed_categorical")
class RelaxedCategoricalLatent(LatentLayer):
    r"""``G = dim / n_categories`` independent Gumbel-softmax codes with a uniform prior.

    .. math::
        q(z|h) = \prod_{g=1}^G \mathrm{Concrete}(z_g; \pi_g(h), \tau), \qquad
        p(z) = \prod_{g=1}^G \mathrm{Concrete}(z_g; \mathbf 1/n, \tau)

    (Jang et al. 2017, arXiv:1611.01144; Maddison et al. 2017, arXiv:1611.00712).
    ``z`` is the concatenation of the ``G`` relaxed one-hot vectors (event ``(dim,)``).

    KL: no closed form is registered, so the VAE uses the single-sample Monte Carlo
    estimate ``log q(z) - log p(z)`` on the relaxed densities, i.e. it optimises the
    ELBO of the relaxed model (Maddison et al. 2017, §5). With ``straight_through=True``
    the decoder sees exact one-hot draws of ``Categorical(π)``, so ``log q`` and ``log p``
    are the discrete log-probabilities and the estimate is unbiased for the discrete KL
    ``sum_g KL(Cat(π_g) || Uniform(n))``; the gradient is the (biased) straight-through one.

    Args:
        in_features: width of ``h``.
        dim: ``G * n_categories``.
        n_categories: classes per group ``n >= 2``.
        temperature: ``τ`` in ``[1e-3, 1e3]``, fixed (anneal it by rebuilding or setting ``layer.temperature``).
        straight_through: hard one-hot forward values, relaxed gradients.
    """

    def __init__(self, in_features: int, dim: int, n_categories: Annotated[int, at.Ge(2)] = 10,
                 temperature: Annotated[float, at.Interval(ge=MIN_TEMPERATURE, le=MAX_TEMPERATURE)] = 0.5,
                 straight_through: bool = False) -> None:
        super().__init__(in_features, dim)
        if n_categories < 2:
            raise ValueError(f"n_categories must be >= 2, got {n_categories}")
        if dim % n_categories:
            raise ValueError(f"dim ({dim}) must be a multiple of n_categories ({n_categories})")
        if not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
            raise ValueError(f"temperature must be in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}] (the range in which "
                             f"the relaxed density is computed to float32 precision), got {temperature}")
        self.n_categories = n_categories
        self.groups = dim // n_categories
        self.temperature = float(temperature)
        self.straight_through = bool(straight_through)
        self.head = nn.Linear(in_features, dim)
        self.register_buffer("_zero", torch.zeros(self.groups, n_categories), persistent=False)

    def params(self, h: Tensor) -> dict[str, Tensor]:
        return {"logits": self.head(h).unflatten(-1, (self.groups, self.n_categories))}  # (*batch, G, n)

    def distribution(self, logits: Tensor) -> Distribution:
        return GroupedRelaxedOneHotCategorical(self.temperature, logits, self.straight_through)

    def prior(self) -> Distribution:
        return GroupedRelaxedOneHotCategorical(self.temperature, self._zero, self.straight_through)

    def point_estimate(self, q: Distribution) -> Tensor:
        """The class probabilities ``softmax(logits)``, flattened to ``(*batch, dim)``."""
        if not isinstance(q, GroupedRelaxedOneHotCategorical):
            raise TypeError(f"expected a GroupedRelaxedOneHotCategorical, got {type(q).__name__}")
        return q.probs

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, n_categories={self.n_categories}, temperature={self.temperature}, "
                f"straight_through={self.straight_through}")
