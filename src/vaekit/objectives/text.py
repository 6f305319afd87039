r"""Objectives of the semi-supervised sentence VAE (Xu et al. 2017, arXiv:1603.02514): y summed out exactly, or
sampled with a score-function gradient and a baseline.

For an unlabelled sentence the M2 bound is :math:`\mathcal U(x) = \sum_y q(y|x)\mathcal L(x,y) + \mathcal H(q(y|x))`.
Its gradient with respect to the classifier's parameters :math:`\phi` is

.. math:: \nabla_\phi \mathcal U = \mathbb E_{y\sim q(y|x)}\bigl[(\mathcal L(x,y) - b)\,\nabla_\phi \log q(y|x)\bigr]
          + \nabla_\phi \mathcal H(q(y|x))

for any ``b`` that does not depend on ``y`` (the score-function or REINFORCE estimator; Williams 1992). One draw of
``y`` costs one decoder pass instead of ``K``; the baseline ``b`` (here a running mean of :math:`\mathcal L`, Mnih &
Gregor 2014) leaves the gradient unbiased and lowers its variance.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RunningBaseline", "enumerated_unlabelled_bound", "score_function_surrogate", "sampled_unlabelled_surrogate",
           "ssvae_loss"]


class RunningBaseline:
    r"""An exponential moving average of the learning signal: :math:`b \leftarrow \rho b + (1-\rho)\,\overline{\mathcal L}`
    (batch mean), and of its variance, for the optional normalisation :math:`(\mathcal L - b)/\max(1, \sigma)`.

    With ``per_token`` the baseline is :math:`b(x) = \bar r\,|x|`, a running mean :math:`\bar r` of the bound per
    token times the sentence's length: a bound in nats grows with the sentence, so a constant baseline leaves the
    length's spread in the learning signal. Neither depends on ``y``, so the gradient stays unbiased.

    Not an ``nn.Module`` state: it restarts at the first batch's mean after a resume (it only steers variance).
    """

    def __init__(self, decay: float = 0.9, normalise: bool = False, per_token: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay, self.normalise, self.per_token = decay, normalise, per_token
        self.mean: float | None = None
        self.var = 1.0

    def signal(self, value: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(value - b) / scale`` (detached) with ``b`` and ``scale`` from the batches before this one; then updates.
        ``lengths`` ``(B,)`` (tokens per sentence) is needed with ``per_token``."""
        v = value.detach()
        scale = torch.ones_like(v)
        if self.per_token:
            if lengths is None:
                raise ValueError("a per-token baseline needs the sentence lengths")
            scale = lengths.to(v.dtype)
        m = float((v / scale).mean())
        if self.mean is None:
            self.mean = m
        out = v - self.mean * scale
        if self.normalise:
            out = out / max(1.0, math.sqrt(self.var))
        self.var = self.decay * self.var + (1 - self.decay) * float(((v - self.mean * scale) ** 2).mean())
        self.mean = self.decay * self.mean + (1 - self.decay) * m
        return out


def _entropy(logits: Tensor) -> Tensor:
    lp = torch.log_softmax(logits, -1)
    return -(lp.exp() * lp).sum(-1)


def enumerated_unlabelled_bound(model: nn.Module, x: Tensor) -> Tensor:
    r""":math:`\mathcal U(x) = \sum_y q(y|x)\mathcal L(x,y) + \mathcal H(q(y|x))`, ``(B,)`` nats, with all ``K`` classes
    in one batch of ``K * B`` rows (``model.elbo(x, y)`` and ``model.classifier_logits(x)``)."""
    logits = model.classifier_logits(x)
    k, b = logits.shape[1], x.shape[0]
    xs = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
    ys = torch.arange(k, device=x.device).repeat_interleave(b)
    L, _ = model.elbo(xs, ys)
    q = torch.softmax(logits, -1)
    return (q.t() * L.view(k, b)).sum(0) + _entropy(logits)


def score_function_surrogate(logits: Tensor, y: Tensor, signal: Tensor) -> Tensor:
    r"""``(B,)`` terms whose value is 0 and whose gradient is :math:`\mathrm{signal}\cdot\nabla\log q(y|x)`
    (``signal`` detached: :math:`\mathcal L(x,y) - b`)."""
    log_q = torch.log_softmax(logits, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    term = signal.detach() * log_q
    return term - term.detach()


def sampled_unlabelled_surrogate(model: nn.Module, x: Tensor, baseline: RunningBaseline | None = None,
                                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    r"""One draw :math:`y\sim q(y|x)` per sentence: ``(surrogate, estimate)``, both ``(B,)``.

    ``estimate`` :math:`= \mathcal L(x,y) + \mathcal H(q(y|x))` is an unbiased estimate of :math:`\mathcal U(x)`;
    ``surrogate`` has the same value and, summed, the gradient of the module docstring (pathwise for the encoder and
    decoder, score function for the classifier, baseline from ``baseline`` or none).
    """
    logits = model.classifier_logits(x)
    with torch.no_grad():
        y = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
    L, _ = model.elbo(x, y)
    from ..nets.text import sentence_lengths

    signal = baseline.signal(L, sentence_lengths(x)) if baseline is not None else L.detach()
    est = L + _entropy(logits)
    return est + score_function_surrogate(logits, y, signal), est.detach()


def ssvae_loss(model: nn.Module, x_unlabelled: Tensor, x_labelled: Tensor, y_labelled: Tensor, alpha: float,
               treatment: Literal["enumerate", "sample"] = "enumerate", baseline: RunningBaseline | None = None,
               kl_weight: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    r"""Xu et al.'s objective per batch, as a loss: :math:`-[\overline{\mathcal U(x_u)} + \overline{\mathcal L(x_l,y_l)}
    + \alpha\,\overline{\log q(y_l|x_l)}]` (bars: batch means; ``alpha`` per labelled example, as in
    :func:`vaekit.objectives.conditional.m2_objective`).

    ``kl_weight`` < 1 anneals the z-KL of the labelled term only (the unlabelled bound is used as it is).

    Raises:
        ValueError: an unknown ``treatment``.
    """
    if treatment == "enumerate":
        U = enumerated_unlabelled_bound(model, x_unlabelled)
        u_loss, u_log = -U.mean(), U.mean().detach()
    elif treatment == "sample":
        sur, est = sampled_unlabelled_surrogate(model, x_unlabelled, baseline)
        u_loss, u_log = -sur.mean(), est.mean()
    else:
        raise ValueError(f"treatment must be 'enumerate' or 'sample', got {treatment!r}")
    L, kl = model.elbo(x_labelled, y_labelled)
    L_annealed = L + (1.0 - kl_weight) * kl
    logits = model.classifier_logits(x_labelled)
    nll = F.cross_entropy(logits, y_labelled)
    loss = u_loss - L_annealed.mean() + alpha * nll
    return loss, {"elbo_unlabelled": u_log, "elbo_labelled": L.mean().detach(), "classifier_nll": nll.detach(),
                  "error": (logits.argmax(-1) != y_labelled).double().mean()}
