r"""Objectives of the conditional models (issue 13): the CVAE's, Sohn et al.'s hybrid, and M2's.

Each returns ``(loss, metrics)`` like :mod:`vaekit.objectives.registry`'s objectives; ``loss`` is a scalar to
minimise, ``metrics`` hold detached batch means named for what they are.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import NonNegativeFloat, PositiveInt
from .registry import OBJECTIVES


def gsnn_bound(model: nn.Module, x: Tensor, samples: int = 1, **cond: Any) -> Tensor:
    r"""Sohn et al. (2015)'s Gaussian stochastic neural network term, per example ``(B,)`` in nats:

    .. math:: \mathcal L_{GSNN}(x) = \log\frac1S\sum_{s=1}^S p(y|x, z_s),\quad z_s \sim p(z|x)

    (their Eq. 6 with the prior network as the proposal; a lower bound on ``log p(y|x)`` by Jensen). Needs a prior
    with reparameterised samples (every vaekit family has them)."""
    p = model.prior(**cond)
    z = p.rsample((samples,)) if p.batch_shape == (x.shape[0],) else p.rsample((samples, x.shape[0]))
    return torch.logsumexp(model.log_likelihood(x, z, **cond), 0) - math.log(samples)


def cvae_objective(model: nn.Module, x: Tensor, k: int = 1, hybrid_alpha: float | None = None,
                   gsnn_samples: int = 1, **cond: Any) -> tuple[Tensor, dict[str, Tensor]]:
    r"""``-ELBO(x | c)`` averaged over the batch; with ``hybrid_alpha`` = α, Sohn et al.'s hybrid objective

    .. math:: \tilde{\mathcal L}_{hybrid} = \alpha\,\mathcal L_{CVAE} + (1-\alpha)\,\mathcal L_{GSNN}

    (Sohn et al. 2015, Eq. 7), which trains the prior network to predict on its own as it must at test time.

    Raises:
        ValueError: ``hybrid_alpha`` outside [0, 1].
    """
    out = model(x, k=k, **cond)
    elbo = out.log_likelihood.mean(0) - out.kl
    metrics = {"elbo": elbo.mean().detach(), "kl": out.kl.mean().detach()}
    if hybrid_alpha is None:
        return -elbo.mean(), metrics
    if not 0.0 <= hybrid_alpha <= 1.0:
        raise ValueError(f"hybrid_alpha must be in [0, 1], got {hybrid_alpha}")
    gsnn = gsnn_bound(model, x, gsnn_samples, **cond)
    metrics["gsnn"] = gsnn.mean().detach()
    return -(hybrid_alpha * elbo + (1 - hybrid_alpha) * gsnn).mean(), metrics


def m2_objective(model: nn.Module, x_unlabelled: Tensor, x_labelled: Tensor, y_labelled: Tensor, alpha: float,
                 k: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
    r"""Kingma et al. (2014)'s :math:`\mathcal J^\alpha` per batch (their Eq. 9), as a loss to minimise:

    .. math:: -\Bigl[\overline{\mathcal U(x_u)} + \overline{\mathcal L(x_l, y_l)}
              + \alpha\,\overline{\log q(y_l|x_l)}\Bigr]

    with batch means (bars). ``alpha`` is the classifier weight per labelled example relative to one ELBO term
    (see :func:`paper_alpha` for the paper's α = 0.1·N in these units). With ``y_treatment="relaxed"``,
    :math:`\mathcal U` is the Gumbel-softmax surrogate.

    Logged: ``elbo_unlabelled`` (U, a bound with enumeration), ``elbo_labelled``, ``classifier_nll``, ``error``.
    """
    u = model(x_unlabelled, k=k)
    lab = model(x_labelled, k=k, label=y_labelled)
    U = u.log_likelihood.mean(0) - u.kl
    L = lab.log_likelihood.mean(0) - lab.kl
    logits = model.classifier_logits(x_labelled)
    nll = F.cross_entropy(logits, y_labelled)
    loss = -(U.mean() + L.mean()) + alpha * nll
    metrics = {"elbo_unlabelled": U.mean().detach(), "elbo_labelled": L.mean().detach(), "classifier_nll": nll.detach(),
               "error": (logits.argmax(-1) != y_labelled).double().mean().detach()}
    return loss, metrics


@OBJECTIVES.register("m2")
class M2Objective:
    r"""Kingma et al. (2014)'s semi-supervised objective for ``vaekit train`` (``train.objective: {type: m2}``).

    A batch mixes unlabelled rows (``label == -1``) and labelled ones (their class), as the loop forms it for
    ``data.labels`` (:class:`vaekit.train.data.SemiSupervised`); the loss is :func:`m2_objective` on the two parts,

    .. math:: -\Bigl[\overline{\mathcal U(x_u)} + \overline{\mathcal L(x_l, y_l)}
              + \alpha\,\overline{\log q(y_l|x_l)}\Bigr],

    a part that is empty in a batch left out. Without ``label`` (validation, which scores log p(x)), every row is
    unlabelled and the loss is :math:`-\overline{\mathcal U(x)}`, so ``-loss`` is the bound on log p(x) with y
    summed out (nats).

    Args:
        alpha: classifier weight per labelled example relative to one ELBO term; None (default): the paper's
            α = 0.1·N in these units, :func:`paper_alpha` (N training rows, n_l labelled), set by the loop
            through :meth:`bind`.
        k: posterior samples per example.

    Logged: ``elbo`` (the batch's unlabelled bound U, y summed out), ``elbo_labelled``, ``classifier_nll``,
    ``error`` (on the batch's labelled rows), ``loss``.

    Raises:
        ValueError: called with labels before an ``alpha`` is known (``alpha: null`` and no :meth:`bind`).
    """

    def __init__(self, alpha: NonNegativeFloat | None = None, k: PositiveInt = 1) -> None:
        if alpha is not None and alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha, self.k = (None if alpha is None else float(alpha)), k

    def bind(self, n_train: int, n_labelled: int) -> float:
        """Fix ``alpha`` at the paper's value for this data set when the config left it out; returns it."""
        if self.alpha is None:
            self.alpha = paper_alpha(n_train, n_labelled)
        return self.alpha

    def __call__(self, model: nn.Module, x: Tensor, step: int, **cond: Any) -> tuple[Tensor, dict[str, Tensor]]:
        extra = sorted(set(cond) - {"label"})
        if extra:
            raise ValueError(f"the m2 objective takes the keyword 'label' only, not {extra}")
        label = cond.get("label")
        if label is None:
            u = model(x, k=self.k)
            U = u.log_likelihood.mean(0) - u.kl
            loss = -U.mean()
            return loss, {"loss": loss.detach(), "elbo": U.mean().detach()}
        if self.alpha is None:
            raise ValueError("the m2 objective has no alpha: give train.objective.alpha, or let the loop bind() it "
                             "to the paper's 0.1 N")
        lab = label >= 0
        n_l = int(lab.sum())
        if n_l == 0:
            return self(model, x, step)
        loss = torch.zeros((), device=x.device)
        metrics: dict[str, Tensor] = {}
        if n_l < x.shape[0]:  # in m2_objective's order (unlabelled, labelled, classifier): the same noise draws
            u = model(x[~lab], k=self.k)
            U = u.log_likelihood.mean(0) - u.kl
            loss = loss - U.mean()
            metrics["elbo"] = U.mean().detach()
        xl, yl = x[lab], label[lab]
        lo = model(xl, k=self.k, label=yl)
        L = lo.log_likelihood.mean(0) - lo.kl
        logits = model.classifier_logits(xl)
        nll = F.cross_entropy(logits, yl)
        loss = loss - L.mean() + self.alpha * nll
        metrics.update(elbo_labelled=L.mean().detach(), classifier_nll=nll.detach(),
                       error=(logits.argmax(-1) != yl).double().mean().detach())
        metrics["loss"] = loss.detach()
        return loss, metrics


def paper_alpha(n_train: int, n_labelled: int, rate: float = 0.1) -> float:
    r"""Kingma et al.'s :math:`\alpha = 0.1 N` in :func:`m2_objective`'s per-batch units: ``rate * n_train / n_labelled``.

    The paper's objective (their Eqs. 8-9) sums the ELBOs over the data and adds
    :math:`\alpha\,\mathbb E_{\tilde p_l}[\log q(y|x)]`, the *mean* over the labelled set, so each labelled example
    carries :math:`\alpha / n_l` classifier terms per ELBO term. :func:`m2_objective` weights the labelled batch's
    mean ELBO and mean classifier term by 1 and ``alpha``, so the same ratio is ``0.1 N / n_l``: 60 at 100 labels,
    2 at 3000 (with N = 60,000). What differs from the paper: the labelled ELBO has the unlabelled one's weight
    per batch (the labelled set is cycled, not seen once per epoch)."""
    if not 0 < n_labelled < n_train:
        raise ValueError(f"need 0 < n_labelled < n_train, got {n_labelled}, {n_train}")
    return rate * n_train / n_labelled


__all__ = ["gsnn_bound", "cvae_objective", "m2_objective", "paper_alpha", "M2Objective"]
