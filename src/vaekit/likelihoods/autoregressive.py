r"""An autoregressive Bernoulli observation model over pixels: a MADE conditioned on the decoder's output.

.. math::
    \log p(x|z) = \sum_{i=1}^D \log \mathrm{Bernoulli}\bigl(x_i;\ \sigma(\ell_i)\bigr),\qquad
    \ell_i = h_i + \mathrm{MADE}(x_{<i}, h)_i,\qquad h = \mathrm{decoder}(z) \in \mathbb R^D

with ``<`` the raster order of the flattened image (Germain et al. 2015, MADE, arXiv:1502.03509; used as a
"powerful" decoder to test the information preference of Zhao, Song & Ermon 2017, arXiv:1702.08658, §4).
One masked pass gives every :math:`\ell_i` at once, so ``log p(x|z)`` is exact and as cheap as a factorised
decoder's; sampling runs ``D`` passes, one pixel each.

Using it from a config: keep any decoder network and set the likelihood::

    model:
      type: vae
      encoder: {type: mlp, hidden: [500]}
      latent: {type: gaussian, dim: 32}
      decoder: {type: mlp, hidden: [500]}          # z -> h, D numbers (the decoder's out_features = data_dim)
      likelihood: {type: made_bernoulli, hidden: [1000], skip: true}

From Python, in any model with a ``decoder`` net that outputs ``D`` numbers::

    from vaekit.likelihoods import MADEBernoulliLikelihood
    lik = MADEBernoulliLikelihood(data_dim=784, hidden=(1000,))
    log_px = lik.log_prob(decoder(z), x)   # z (*S, B, dz), x (B, 784) -> (*S, B) nats, exact
    px = lik(decoder(z))                   # a MADEBernoulli distribution: .log_prob(x), .sample(), .mean

Every model that speaks the protocol through ``likelihood.log_prob(params, x)`` (the VAE, the conditional
models, IWAE and AIS evaluation) works with it unchanged: ``log_weights`` and ``log_joint`` stay exact.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from ..nets.made import MADE
from ..registry import PositiveInt
from .base import LIKELIHOODS
from .bernoulli import BernoulliLikelihood, _bernoulli_log_prob_sum_eager


class AutoregressiveBernoulli(Distribution):
    r"""Bernoulli pixels scored in one pass and sampled pixel by pixel: the shared part of
    :class:`MADEBernoulli` and :class:`~vaekit.likelihoods.PixelCNNBernoulli`. A subclass gives
    :meth:`logits` (every :math:`\ell_i(x_{<i}, h)` at once) and :meth:`order` (the autoregressive order).

    Batch shape ``context.shape[:-1]``, event shape ``(D,)``."""

    arg_constraints = {"context": constraints.real}
    support = constraints.independent(constraints.boolean, 1)
    has_rsample = False

    def __init__(self, context: Tensor, validate_args: bool | None = None) -> None:
        self.context = context
        super().__init__(context.shape[:-1], context.shape[-1:], validate_args=validate_args)

    def logits(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def order(self) -> list[int]:
        """The pixels in the autoregressive order (default: raster)."""
        return list(range(self.event_shape[0]))

    def log_prob(self, value: Tensor) -> Tensor:
        """``log p(x|h)`` in nats, summed over the ``D`` pixels: shape ``broadcast(value, h).shape[:-1]``."""
        return _bernoulli_log_prob_sum_eager(self.logits(value), value)

    @torch.no_grad()
    def _ancestral(self, sample_shape: torch.Size) -> tuple[Tensor, Tensor]:
        """One ancestral pass: ``(x, p)`` with ``x_i ~ Bernoulli(p_i)``, ``p_i = σ(ℓ_i(x_{<i}, h))``, pixel by pixel."""
        shape = torch.Size(sample_shape) + self.batch_shape + self.event_shape
        x = self.context.new_zeros(shape)
        p = self.context.new_zeros(shape)
        for i in self.order():  # each pass scores every pixel; the i-th is kept
            p[..., i] = torch.sigmoid(self.logits(x)[..., i])
            x[..., i] = torch.bernoulli(p[..., i])
        return x, p

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Exact ancestral samples, ``(*sample_shape, *batch, D)`` in {0, 1}: ``D`` passes."""
        return self._ancestral(torch.Size(sample_shape))[0]

    @property
    def mean(self) -> Tensor:
        r"""An unbiased one-draw estimate of ``E[x]``, not the exact mean (which has no closed form):
        the conditional probabilities :math:`p_i = \sigma(\ell_i(x_{<i}, h))` along one ancestral draw
        (:math:`\mathbb E_{x_{<i}}[p_i] = P(x_i = 1)`). A grey-level image, random, for plots; ``D`` passes."""
        return self._ancestral(torch.Size())[1]


class MADEBernoulli(AutoregressiveBernoulli):
    r"""``p(x|h) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(\ell_i(x_{<i}, h)))`` over binary vectors of length ``D``.

    Args:
        context: ``h``, shape ``(*batch, D)``: the decoder's output for each ``z``.
        made: a :class:`~vaekit.nets.made.MADE` with ``input_dim = D``, ``context_dim = D``, ``num_outputs = 1``.
        skip: add ``h`` to the MADE's logits (``\ell = h + MADE``), so that the MADE's zero output is the
            factorised Bernoulli decoder with logits ``h``.

    Batch shape ``context.shape[:-1]``, event shape ``(D,)``; values in {0, 1} (``log_prob`` also scores
    intensities in [0, 1] as the cross-entropy, like :class:`~vaekit.likelihoods.BernoulliLikelihood`).
    """

    def __init__(self, context: Tensor, made: MADE, skip: bool = True, validate_args: bool | None = None) -> None:
        if context.dim() < 1 or context.shape[-1] != made.input_dim:
            raise ValueError(f"context must have shape (*batch, {made.input_dim}), got {tuple(context.shape)}")
        self.made, self.skip = made, skip
        super().__init__(context, validate_args=validate_args)

    def logits(self, x: Tensor) -> Tensor:
        r"""``\ell_i(x_{<i}, h)`` for every pixel in one pass: ``x`` broadcastable against ``h`` -> ``(*batch', D)``.

        ``x`` of shape ``(B, D)`` against ``h`` of shape ``(S, B, D)`` is encoded once by the first masked layer
        and broadcast over ``S``."""
        (out,) = self.made(x, self.context)
        return out + self.context if self.skip else out

    def order(self) -> list[int]:
        """The pixels by increasing MADE degree."""
        return torch.argsort(self.made.degrees).tolist()


@LIKELIHOODS.register("made_bernoulli")
class MADEBernoulliLikelihood(BernoulliLikelihood):
    r"""Autoregressive Bernoulli likelihood: the decoder's ``D`` outputs ``h`` condition a MADE over the pixels.

    .. math:: \log p(x|z) = \sum_i x_i\ell_i - \mathrm{softplus}(\ell_i),\quad
              \ell_i = h_i + \mathrm{MADE}(x_{<i}, h)_i,\quad h = \mathrm{decoder}(z)

    (see the module docstring for a config and a Python example). Exact, in nats, one pass; the raster order.

    Args:
        data_dim: ``D``, the flattened image size (supplied by the model builder).
        hidden: widths of the MADE's hidden layers; each must be ``>= D`` (every degree ``0..D-1`` is carried,
            degree 0 seeing only ``h``), e.g. ``[1000]`` for 28x28 images.
        activation: the MADE's hidden activation.
        skip: logits ``h + MADE(x_{<i}, h)`` (True) or ``MADE(x_{<i}, h)`` alone (False).

    ``params_per_value`` is 1: the decoder emits ``D`` numbers per ``z``, as for ``bernoulli``.

    Raises:
        ValueError: a hidden width below ``D`` (the message names the width and ``D``); at config time
            ``model.likelihood: ...``.
    """

    params_per_value = 1

    def __init__(self, data_dim: int, hidden: Sequence[PositiveInt] = (1000,),
                 activation: Literal["relu", "elu", "tanh", "softplus"] = "relu", skip: bool = True) -> None:
        super().__init__(data_dim)
        self.made = MADE(data_dim, list(hidden), context_dim=data_dim, num_outputs=1, activation=activation)
        self.skip = skip
        # the MADE starts near zero, so training starts from the factorised decoder (with skip) and learns
        # the dependencies on x_{<i}
        with torch.no_grad():
            self.made.out.weight.mul_(0.1)
            self.made.out.bias.zero_()

    def forward(self, params: Tensor) -> MADEBernoulli:
        return MADEBernoulli(params, self.made, self.skip)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """``log p(x|z)`` in nats: ``params`` ``(*S, B, D)`` (the decoder's output) and ``x`` ``(B, D)`` -> ``(*S, B)``."""
        return super().log_prob(self(params).logits(x), x)


__all__ = ["AutoregressiveBernoulli", "MADEBernoulli", "MADEBernoulliLikelihood"]
