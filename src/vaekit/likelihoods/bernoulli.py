"""Bernoulli observation model from logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.distributions import Bernoulli, Distribution, Independent, constraints

from ..compile import maybe_compiled
from .base import LIKELIHOODS, Likelihood


def _bernoulli_log_prob_sum(logits: Tensor, x: Tensor) -> Tensor:
    r"""``sum_i x_i l_i - softplus(l_i)`` over the last dim, with one ``log`` per 16 values.

    .. math::
        \sum_i x_i\ell_i - \mathrm{softplus}(\ell_i)
        = \sum_{j<16} \Bigl[\sum_{i \equiv j} \bigl(x_i\ell_i - \max(\ell_i, 0)\bigr)
          - \log \prod_{i \equiv j} (1 + e^{-|\ell_i|})\Bigr]

    with ``i`` running over the ``d // 16`` rows of the ``(d // 16, 16)`` view of the last dim (16
    lanes: one AVX-512 vector, two AVX2 ones). Every factor lies in (1, 2], so a lane's product of
    ``d // 16`` factors stays below 2^128 (float32's range) for ``d`` up to 2032 (784 pixels: 49
    factors, at most 2^49), and its rounding (about ``d/16`` ulp, relative) is below that of summing
    the softplus terms one by one. Both sums run over the same index space, so ``torch.compile``
    emits one loop that reads each logit once, with one ``exp`` per value and one ``log`` per
    ``d // 16`` (speed: softplus was the largest non-GEMM cost of IWAE-5000 evaluation). Values past
    the last multiple of 16 use ``log1p``; a wider last dim is summed in blocks of 1024.
    """
    d = logits.shape[-1]
    if d > 2032:
        return sum(_bernoulli_log_prob_sum(lb, xb) for lb, xb in  # type: ignore[return-value]
                   zip(logits.split(1024, -1), x.expand_as(logits).split(1024, -1)))
    a = logits.abs()
    v = x * logits - 0.5 * (logits + a)
    t = torch.exp(-a)
    m = d - d % 16
    if m == 0:  # fewer than 16 values: no lanes (and inductor cannot lower a (0, 16) view of a dynamic size)
        return (v - torch.log1p(t)).sum(-1)
    lanes = (v[..., :m].unflatten(-1, (m // 16, 16)).sum(-2)
             - (1.0 + t[..., :m]).unflatten(-1, (m // 16, 16)).prod(-2).log())
    out = lanes.sum(-1)
    if m == d:
        return out
    return out + (v[..., m:] - torch.log1p(t[..., m:])).sum(-1)


def _bernoulli_log_prob_sum_eager(logits: Tensor, x: Tensor) -> Tensor:
    """The same sum as :func:`_bernoulli_log_prob_sum` in the form that is fastest uncompiled (two passes)."""
    return (x * logits).sum(-1) - F.softplus(logits).sum(-1)


class _BernoulliLogLik(torch.autograd.Function):
    r"""``sum_i x_i l_i - softplus(l_i)`` as one autograd node, with

    .. math:: \partial/\partial \ell_i = x_i - \sigma(\ell_i), \qquad \partial/\partial x_i = \ell_i

    Written by hand because ``binary_cross_entropy_with_logits(reduction="none")`` on a
    broadcast target costs four extra passes (a ``log_sigmoid`` buffer, a filled weight, copies);
    on FM-MLP's batch it was 0.46 ms of a 1.3 ms forward under the profiler.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(logits, x)
        return _bernoulli_log_prob_sum_eager(logits, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        logits, x = ctx.saved_tensors
        g = g.unsqueeze(-1)
        gl = gx = None
        if ctx.needs_input_grad[0]:
            gl = torch.sigmoid(logits).neg_().add_(x).mul_(g)
        if ctx.needs_input_grad[1]:
            gx = (logits * g).sum_to_size(x.shape)
        return gl, gx


#: compiled for large no-grad calls (IWAE evaluation), eager otherwise; see :mod:`vaekit.compile`
bernoulli_log_prob_sum = maybe_compiled(_bernoulli_log_prob_sum, eager=_bernoulli_log_prob_sum_eager)


class _BernoulliLogits(Bernoulli):
    r"""``Bernoulli`` whose ``log_prob`` accepts any x in [0, 1]:

    .. math:: \log p(x|\ell) = x\,\ell - \mathrm{softplus}(\ell)

    exact and stable for binary x; for grey-level x in [0,1] it is the
    cross-entropy used by Kingma & Welling (2013) on intensities.
    Computed as ``-binary_cross_entropy_with_logits(l, x)``, the same function
    (``x log sigma(l) + (1-x) log(1 - sigma(l)) = x l - softplus(l)``) in one ATen
    kernel with one fused backward, instead of three elementwise passes and their
    three autograd nodes (speed: this is the widest tensor of an MLP VAE's step).
    """

    support = constraints.unit_interval

    def log_prob(self, value: Tensor) -> Tensor:
        logits, value = torch.broadcast_tensors(self.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    r"""``p(x|z) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(\ell_i(z)))`` with decoder logits ``\ell``.

    Data must lie in [0, 1] (binary, or intensities for the continuous cross-entropy).
    """

    params_per_value = 1

    def forward(self, params: Tensor) -> Distribution:
        return Independent(_BernoulliLogits(logits=params, validate_args=False), 1, validate_args=False)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        r"""``sum_i x_i l_i - softplus(l_i)``, without building the ``Distribution``.

        With gradients: one autograd node (:class:`_BernoulliLogLik`). Without (evaluation):
        :func:`bernoulli_log_prob_sum`, which is cheaper per value.
        """
        if torch.is_grad_enabled() and (params.requires_grad or x.requires_grad):
            return _BernoulliLogLik.apply(params, x)
        return bernoulli_log_prob_sum(params, x)

    def validate(self, x: Tensor, name: str = "x") -> None:
        super().validate(x, name)
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name} has values in [{lo:g}, {hi:g}] but a Bernoulli likelihood needs data in [0, 1]; "
                "rescale (e.g. uint8/255) or choose likelihood.type=gaussian"
            )
