r"""The sequential VAE's losses (Zhao, Song & Ermon 2017, arXiv:1702.08658; :class:`~vaekit.models.SequentialVAE`).

``sequential`` in :data:`~vaekit.objectives.OBJECTIVES` (:class:`SequentialObjective`): the paper's loss at every
refinement step, or the model's own ELBO (the last step's).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..registry import PositiveInt
from .registry import OBJECTIVES


@OBJECTIVES.register("sequential")
class SequentialObjective:
    r"""Train a model with refinement steps (``step_terms``: a :class:`~vaekit.models.SequentialVAE`).

    With :math:`\ell_t = \log p(x|\eta_t)` the reconstruction after step ``t`` and
    :math:`\kappa_t = \mathrm{KL}(q_t(z_t|x,\hat x_{t-1})\,\|\,p(z_t))` (nats, ``k`` paths averaged):

    .. math::
        \text{per\_step:}\quad \mathcal J(x) = \sum_{t=1}^T \bigl(\ell_t - \kappa_t\bigr),\qquad
        \text{final:}\quad \mathcal L_T(x) = \ell_T - \sum_{t=1}^T \kappa_t \le \log p(x)

    ``per_step`` is the paper's loss, a reconstruction loss at every step (inspired by infusion training), each
    step's KL charged once; it is a sum of ELBO-like terms, not a bound on :math:`\log p(x)`, and it asks every
    intermediate output to look like the data. ``final`` is the model's ELBO (the honest bound; the same value as
    the ``elbo`` objective on this model). Both equal the plain ELBO when ``T = 1``. The loss is the batch mean of
    :math:`-\mathcal J` or :math:`-\mathcal L_T`.

    Args:
        bound: ``per_step`` (the paper's) or ``final``.
        k: posterior paths per example, averaged.

    Logged: ``elbo`` (the batch mean of :math:`\mathcal L_T`, always the true ELBO), ``log_likelihood``
    (:math:`\ell_T`), ``kl`` (:math:`\sum_t\kappa_t`), ``per_step`` (:math:`\mathcal J`), ``log_likelihood_1``
    (:math:`\ell_1`, what the first step alone reconstructs), ``loss``.

    Raises:
        ValueError: the model has no ``step_terms`` (at the first call, naming its type).
    """

    def __init__(self, bound: Literal["per_step", "final"] = "per_step", k: PositiveInt = 1) -> None:
        if bound not in ("per_step", "final"):
            raise ValueError(f"bound must be 'per_step' or 'final', got {bound!r}")
        self.bound, self.k = bound, k

    def __call__(self, model: nn.Module, x: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor | float]]:
        terms = getattr(model, "step_terms", None)
        if terms is None:
            raise ValueError(f"the sequential objective needs a model with refinement steps (step_terms), such as "
                             f"model.type: sequential_vae; got {type(model).__name__}")
        _, ll, kl = terms(x, self.k)  # (T, k, B) each
        ll, kl = ll.mean(1), kl.mean(1)  # (T, B)
        final = ll[-1] - kl.sum(0)
        per_step = (ll - kl).sum(0)
        loss = -(per_step if self.bound == "per_step" else final).mean()
        with torch.no_grad():
            metrics = {"loss": loss.detach(), "elbo": final.mean(), "log_likelihood": ll[-1].mean(),
                       "kl": kl.sum(0).mean(), "per_step": per_step.mean(), "log_likelihood_1": ll[0].mean()}
        return loss, metrics


__all__ = ["SequentialObjective"]
