"""Initialisations that depend on the data."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["output_layer", "init_output_bias", "init_weights"]


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str = "glorot_uniform") -> int:
    r"""Re-initialise every ``nn.Linear`` of ``model`` in place; returns how many layers were set.

    ``"glorot_uniform"``: :math:`W \sim U(-a, a)`, :math:`a = \sqrt{6 / (n_{in} + n_{out})}`, biases 0
    (Glorot & Bengio 2010, via ``torch.nn.init.xavier_uniform_``). Burda et al.'s IWAE code initialises
    every layer this way, the mean and log-sigma heads included; PyTorch's default bound
    ``1/sqrt(n_in)`` is 0.58 times as wide for a 200-200 layer.

    Raises:
        ValueError: an unknown ``scheme``.
    """
    if scheme != "glorot_uniform":
        raise ValueError(f"train.init_weights: unknown scheme {scheme!r}; allowed 'default', 'glorot_uniform'")
    n = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            n += 1
    return n


def output_layer(model: nn.Module) -> nn.Linear:
    """The layer that emits the likelihood's parameters: the one ``nn.Linear`` among ``model.modules()``
    whose ``out_features`` equals ``model.likelihood.out_features``.

    Found by width alone, so it works for any model that has a ``likelihood`` (a VAE's decoder, a stacked
    VAE's bottom decoder, a hand-built model) without knowing where the decoder sits. Layers inside the
    likelihood itself (an autoregressive likelihood's MADE) are not candidates.

    Raises:
        ValueError: the model has no ``likelihood``, no such layer (e.g. a convolutional output), or
            several (named, e.g. an encoder whose hidden width equals the data size).
    """
    lik = getattr(model, "likelihood", None)
    width = getattr(lik, "out_features", None)
    if width is None:
        raise ValueError(f"{type(model).__name__} has no .likelihood with out_features; cannot find its output layer")
    own = {id(m) for m in lik.modules()}
    found = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and m.out_features == width and id(m) not in own]
    if not found:
        raise ValueError(f"{type(model).__name__} has no nn.Linear with out_features={width} (the likelihood's "
                         "input width) whose bias could be initialised")
    if len(found) > 1:
        raise ValueError(f"{type(model).__name__} has {len(found)} nn.Linear layers with out_features={width}: "
                         f"{[name for name, _ in found]}; cannot tell which one feeds the likelihood")
    return found[0][1]


@torch.no_grad()
def init_output_bias(model: nn.Module, x_train: Tensor, eps: float = 1e-3) -> Tensor:
    r"""Set the output layer's bias (:func:`output_layer`) to the logit of the mean training pixel.

    .. math:: b_i = \log\frac{\bar x_i}{1-\bar x_i},\qquad \bar x_i = \mathrm{clip}\Bigl(\tfrac1N\sum_n x_{n,i},\ \epsilon,\ 1-\epsilon\Bigr)

    so that at initialisation (weights near zero) the decoder predicts the
    marginal pixel means (Burda et al. 2015, arXiv:1509.00519, as in the
    authors' code). Only for Bernoulli likelihoods, whose decoder output is
    logits of length ``data_dim``; the clip keeps always-black pixels finite.

    Args:
        model: a model with a Bernoulli ``likelihood``.
        x_train: ``(N, data_dim)`` training intensities in ``[0, 1]``.

    Returns:
        the bias that was set, ``(data_dim,)``.

    Raises:
        ValueError: not a Bernoulli likelihood, or no unique output layer (see :func:`output_layer`).
    """
    from ..likelihoods import BernoulliLikelihood

    lik = getattr(model, "likelihood", None)
    if not isinstance(lik, BernoulliLikelihood):
        raise ValueError(f"train.init_output_bias needs a Bernoulli likelihood, the model has {type(lik).__name__}")
    layer = output_layer(model)
    if layer.bias is None or layer.bias.shape != (x_train.shape[-1],):
        raise ValueError(f"output layer bias has shape {None if layer.bias is None else tuple(layer.bias.shape)}, "
                         f"expected ({x_train.shape[-1]},)")
    p = x_train.double().mean(0).clamp(eps, 1 - eps)
    bias = torch.log(p) - torch.log1p(-p)
    layer.bias.copy_(bias.to(layer.bias))
    return layer.bias.detach().clone()
