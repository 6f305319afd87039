"""Initialisations that depend on the data."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["last_linear", "init_output_bias"]


def last_linear(module: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` among ``module.modules()`` (registration order), e.g. a decoder's output layer."""
    found = None
    for m in module.modules():
        if isinstance(m, nn.Linear):
            found = m
    if found is None:
        raise ValueError(f"{type(module).__name__} has no nn.Linear layer whose bias could be initialised")
    return found


@torch.no_grad()
def init_output_bias(model: nn.Module, x_train: Tensor, eps: float = 1e-3) -> Tensor:
    r"""Set the decoder's output bias to the logit of the mean training pixel.

    .. math:: b_i = \log\frac{\bar x_i}{1-\bar x_i},\qquad \bar x_i = \mathrm{clip}\Bigl(\tfrac1N\sum_n x_{n,i},\ \epsilon,\ 1-\epsilon\Bigr)

    so that at initialisation (weights near zero) the decoder predicts the
    marginal pixel means (Burda et al. 2015, arXiv:1509.00519, as in the
    authors' code). Only for Bernoulli likelihoods, whose decoder output is
    logits of length ``data_dim``; the clip keeps always-black pixels finite.

    Returns the bias that was set, ``(data_dim,)``.
    """
    from ..likelihoods import BernoulliLikelihood

    lik = getattr(model, "likelihood", None)
    if not isinstance(lik, BernoulliLikelihood):
        raise ValueError(f"train.init_output_bias needs a Bernoulli likelihood, the model has {type(lik).__name__}")
    decoder = getattr(model, "decoder", None)
    if decoder is None:
        raise ValueError(f"{type(model).__name__} has no .decoder to initialise")
    layer = last_linear(decoder)
    if layer.bias is None or layer.bias.shape != (x_train.shape[-1],):
        raise ValueError(f"decoder output bias has shape {None if layer.bias is None else tuple(layer.bias.shape)}, "
                         f"expected ({x_train.shape[-1]},)")
    p = x_train.double().mean(0).clamp(eps, 1 - eps)
    bias = torch.log(p) - torch.log1p(-p)
    layer.bias.copy_(bias.to(layer.bias))
    return layer.bias.detach().clone()
