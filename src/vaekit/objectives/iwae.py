"""Importance-weighted objectives: the IWAE bound (Burda et al. 2015) and its DReG gradient (Tucker et al. 2018).

Registered in :data:`~vaekit.objectives.OBJECTIVES`:

* ``iwae`` — maximise ``L_k = E[log (1/k) sum_i w_i]`` (Burda, Grosse & Salakhutdinov 2015,
  arXiv:1509.00519, Eq. 8) with the standard reparameterised gradient ``sum_i w~_i grad log w_i``.
* ``dreg`` — the same bound, with the doubly-reparameterised encoder gradient of Tucker, Lawson,
  Gu & Maddison (2018, arXiv:1810.04152, Eq. 5).

The "VAE with k samples" baseline of Burda et al. is the registered ``elbo`` objective with ``k``
(:class:`~vaekit.objectives.registry.ELBOObjective`). Burda et al.'s code averages the k log-weights,
``(1/k) sum_i log w_i`` (a Monte Carlo KL); ``elbo`` uses the analytic KL where the latent family has
one, i.e. ``(1/k) sum_i log p(x|z_i) - KL(q||p)``. Both have the same expectation (the ELBO) and the
same decoder-gradient expectation; the analytic form has lower variance.

Both objectives use only the model protocol (``log_weights``, ``posterior``, ``log_joint``) and keep no
state between calls, so they train any model, stacked ones included.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..registry import PositiveInt
from .elbo import iwae_from_log_weights
from .registry import OBJECTIVES


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")


def _metrics(loss: Tensor, log_w: Tensor) -> dict[str, Tensor]:
    """``loss``, ``iwae_bound`` (batch mean of L_k), ``elbo`` (mean log-weight) and ``ess`` (1/sum w~^2), detached."""
    with torch.no_grad():
        wn = torch.softmax(log_w, 0)
        return {"loss": loss.detach(), "iwae_bound": iwae_from_log_weights(log_w).mean(), "elbo": log_w.mean(),
                "ess": (1.0 / (wn * wn).sum(0)).mean()}


@OBJECTIVES.register("iwae")
class IWAEObjective:
    r"""Maximise the importance-weighted bound with ``k`` samples (Burda et al. 2015, arXiv:1509.00519).

    .. math::
        \mathcal L_k(x) = \mathbb E_{z_{1:k}\sim q}\Bigl[\log \frac1k \sum_{i=1}^k w_i\Bigr],\quad
        w_i = \frac{p(x, z_i)}{q(z_i|x)},\qquad
        \nabla \mathcal L_k = \mathbb E\Bigl[\sum_i \tilde w_i \nabla \log w_i\Bigr],\ \tilde w_i = \frac{w_i}{\sum_j w_j}

    ``loss = -mean_x L_k(x)`` on ``model.log_weights(x, k)`` (its autograd gradient is exactly the
    estimator above, with reparameterised ``z_i``). ``k = 1`` is the single-sample ELBO with a Monte Carlo KL.

    Logged: ``iwae_bound`` (the batch mean of the k-sample bound itself), ``elbo`` (the batch mean of
    the mean log-weight, ``(1/k) sum_i log w_i``: an unbiased ELBO estimate), ``ess`` (effective sample
    size ``1/sum_i w~_i^2``, averaged over the batch), ``loss``.
    """

    def __init__(self, k: PositiveInt = 1) -> None:
        _check_k(k)
        self.k = k

    def __call__(self, model: nn.Module, x: Tensor, step: int, **cond: Any) -> tuple[Tensor, dict[str, Tensor | float]]:
        lw = model.log_weights(x, self.k, **cond)  # (k, B)
        loss = -iwae_from_log_weights(lw).mean()
        return loss, _metrics(loss, lw)


class _LogWeight(nn.Module):
    """``log p(x, z) - log q(z|x)`` of the wrapped model, for :func:`torch.func.functional_call`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, z: Any) -> Tensor:
        return self.model.log_joint(x, z) - self.model.posterior(x).log_prob(z)


def _detach(z: Any) -> Any:
    return tuple(t.detach() for t in z) if isinstance(z, (tuple, list)) else z.detach()


@OBJECTIVES.register("dreg")
class DReGObjective:
    r"""The IWAE bound trained with the doubly-reparameterised gradient (DReG; Tucker et al. 2018, arXiv:1810.04152).

    .. math::
        \nabla_\theta: \ \sum_i \tilde w_i \nabla_\theta \log w_i \quad(\text{as IWAE}),\qquad
        \nabla_\phi: \ \sum_i \tilde w_i^2 \frac{\partial \log w_i}{\partial z_i}\frac{\partial z_i}{\partial \phi}

    (Tucker et al. 2018, Eq. 5). The loss is the surrogate
    ``-mean_x [sum_i sg(w~_i) log w_i^theta + sum_i sg(w~_i^2) log w_i^phi]`` on one reparameterised sample
    ``z_i ~ q(z|x)`` (see :meth:`model_terms`): ``log w^theta = log p_theta(x, sg(z)) - sg(log q)``
    differentiates in the generative parameters only, and ``log w^phi`` is the model's
    ``log_joint(x, z) - posterior(x).log_prob(z)`` evaluated with *every* parameter detached
    (:func:`torch.func.functional_call`), so the encoder gradient flows only through the sample path.
    For a stacked model the density of ``q(z_2|z_1)`` still depends on the live ``z_1`` (a path term),
    as it must. Its *value* is not the bound; the bound is logged as ``iwae_bound``. Both estimators
    are unbiased for ``grad L_k``; DReG's encoder signal-to-noise ratio does not vanish as ``k`` grows
    (Rainforth et al. 2018, arXiv:1802.04537).

    Logged: ``iwae_bound`` (the k-sample bound), ``elbo`` (mean log-weight), ``ess``, ``loss`` (the surrogate).
    ``value_metric = "iwae_bound"``: the loss is a surrogate, so the trainer's validation selection
    (:func:`vaekit.train.validate_objective`) reads the bound instead.
    """

    value_metric = "iwae_bound"

    def __init__(self, k: PositiveInt = 1) -> None:
        _check_k(k)
        self.k = k

    @staticmethod
    def model_terms(model: nn.Module, x: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
        r"""``(log_w, log_w_theta, log_w_phi)``, each ``(k, B)``, all on one reparameterised sample.

        * ``log_w``: the log-weights' values (no graph).
        * ``log_w_theta = log p_theta(x, sg(z)) - sg(log q(z))``: graph to the generative parameters only.
        * ``log_w_phi = log p_{sg(theta)}(x, z) - log q_{sg(phi)}(z)``: graph to the encoder only, through ``z``.
        """
        _check_k(k)
        z, log_q = model.posterior(x).rsample_and_log_prob((k,))
        log_w_theta = model.log_joint(x, _detach(z)) - log_q.detach()
        frozen = {f"model.{n}": p.detach() for n, p in model.named_parameters()}
        log_w_phi = torch.func.functional_call(_LogWeight(model), frozen, (x, z), strict=False)
        return log_w_theta.detach(), log_w_theta, log_w_phi

    def __call__(self, model: nn.Module, x: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor | float]]:
        log_w, log_w_theta, log_w_phi = self.model_terms(model, x, self.k)
        wn = torch.softmax(log_w, 0)  # log_w carries no graph, so wn is a constant weight
        surrogate = (wn * log_w_theta).sum(0) + (wn * wn * log_w_phi).sum(0)
        loss = -surrogate.mean()
        return loss, _metrics(loss, log_w)


__all__ = ["IWAEObjective", "DReGObjective"]
