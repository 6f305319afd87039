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
same decoder-gradient expectation; the analytic form has lower variance. For models whose ``kl`` is
the Monte Carlo estimate (stacked models), the two are identical.

Both objectives here need only ``model(x, k)`` (and, for DReG, ``model.dreg_log_weights`` or the
single-layer pieces ``encoder``/``latent``/``log_joint``), and keep no state between calls.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .elbo import iwae_bound
from .registry import OBJECTIVES


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")


@OBJECTIVES.register("iwae")
class IWAEObjective:
    r"""Maximise the importance-weighted bound with ``k`` samples (Burda et al. 2015, arXiv:1509.00519).

    .. math::
        \mathcal L_k(x) = \mathbb E_{z_{1:k}\sim q}\Bigl[\log \frac1k \sum_{i=1}^k w_i\Bigr],\quad
        w_i = \frac{p(x, z_i)}{q(z_i|x)},\qquad
        \nabla \mathcal L_k = \mathbb E\Bigl[\sum_i \tilde w_i \nabla \log w_i\Bigr],\ \tilde w_i = \frac{w_i}{\sum_j w_j}

    ``loss = -mean_x L_k(x)`` (its autograd gradient is exactly the estimator above, with
    reparameterised ``z_i``). ``k = 1`` is the single-sample ELBO with a Monte Carlo KL.

    Logged: ``iwae_bound`` (the batch mean of the k-sample bound itself), ``elbo`` (the batch mean of
    the mean log-weight, ``(1/k) sum_i log w_i``: an unbiased ELBO estimate), ``ess`` (effective sample
    size ``1/sum_i w~_i^2``, averaged over the batch), ``loss``.
    """

    def __init__(self, k: int = 1) -> None:
        _check_k(k)
        self.k = k

    def __call__(self, model: nn.Module, x: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor | float]]:
        lw = model(x, k=self.k).log_weights  # (k, B)
        bound = iwae_bound(lw)
        loss = -bound.mean()
        with torch.no_grad():
            wn = torch.softmax(lw, 0)
            metrics = {"loss": loss.detach(), "iwae_bound": bound.mean(), "elbo": lw.mean(),
                       "ess": (1.0 / (wn * wn).sum(0)).mean()}
        return loss, metrics


def stopped_log_joint(model: nn.Module, x: Tensor, z, inference: tuple[nn.Module, ...]) -> Tensor:
    r"""``log p_{sg(theta)}(x, z)``: the model's ``log_joint`` with every generative parameter detached.

    ``theta`` is every parameter of ``model`` outside the ``inference`` modules. The call goes through
    :func:`torch.func.functional_call` with detached copies of those parameters, so gradients reach
    the encoder only through ``z``, and nothing in the model is mutated.
    """
    skip = {id(p) for m in inference for p in m.parameters()}
    frozen = {name: p.detach() for name, p in model.named_parameters() if id(p) not in skip}
    return torch.func.functional_call(_LogJoint(model), {f"model.{n}": t for n, t in frozen.items()}, (x, z),
                                      strict=False)


class _LogJoint(nn.Module):
    """Adapter so :func:`torch.func.functional_call` can call ``model.log_joint``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, z) -> Tensor:
        return self.model.log_joint(x, z)


@OBJECTIVES.register("dreg")
class DReGObjective:
    r"""The IWAE bound trained with the doubly-reparameterised gradient (DReG; Tucker et al. 2018, arXiv:1810.04152).

    .. math::
        \nabla_\theta: \ \sum_i \tilde w_i \nabla_\theta \log w_i \quad(\text{as IWAE}),\qquad
        \nabla_\phi: \ \sum_i \tilde w_i^2 \frac{\partial \log w_i}{\partial z_i}\frac{\partial z_i}{\partial \phi}

    (Tucker et al. 2018, Eq. 5), with ``log w_i = log p_theta(x, z_i) - log q_{sg(phi)}(z_i|x)``: the
    density of ``q`` is rebuilt from detached parameters (``LatentLayer.distribution(**detached
    params)``) so the encoder gradient flows only through the sample path ``z_i = mu + sigma * eps_i``.
    Both estimators are unbiased for ``grad L_k``; DReG's encoder signal-to-noise ratio does not vanish
    as ``k`` grows (Rainforth et al. 2018, arXiv:1802.04537).

    The loss is the surrogate ``-mean_x [sum_i sg(w~_i) log w_i^theta + sum_i sg(w~_i^2) log w_i^phi]``
    built from one reparameterised sample (see :meth:`model_terms`): ``log w^theta`` has ``z``
    detached (it differentiates in the generative parameters only) and ``log w^phi`` has the
    generative parameters and ``q``'s density parameters detached (it differentiates in the encoder
    only, through ``z``). Its *value* is not the bound; the bound is logged as ``iwae_bound``.

    Models provide ``dreg_log_weights(x, k) -> (log_w, log_w_theta, log_w_phi)`` (as
    :class:`~vaekit.models.hierarchical.HierarchicalVAE` does); for a one-layer
    :class:`~vaekit.models.VAE` the terms are built here from ``encoder``/``latent``/``log_joint``.

    Logged: ``iwae_bound`` (the k-sample bound), ``elbo`` (mean log-weight), ``ess``, ``loss`` (the surrogate).
    """

    def __init__(self, k: int = 1) -> None:
        _check_k(k)
        self.k = k

    @staticmethod
    def model_terms(model: nn.Module, x: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
        r"""``(log_w, log_w_theta, log_w_phi)``, each ``(k, B)``, all on one reparameterised sample.

        * ``log_w``: the log-weights' values (no graph).
        * ``log_w_theta = log p_theta(x, sg(z)) - sg(log q(z))``: graph to the generative parameters only.
        * ``log_w_phi = log p_{sg(theta)}(x, z) - log q_{sg(phi)}(z)``: graph to the encoder only, through ``z``.
        """
        if hasattr(model, "dreg_log_weights"):
            return model.dreg_log_weights(x, k)
        for attr in ("encoder", "latent", "log_joint"):
            if not hasattr(model, attr):
                raise TypeError(f"dreg needs a model with dreg_log_weights(x, k) or {attr!r}; got {type(model).__name__}")
        params = model.latent.params(model.encoder(x))
        z = model.latent.distribution(**params).rsample((k,))
        q_sg = model.latent.distribution(**{n: t.detach() for n, t in params.items()})
        log_q_sg = q_sg.log_prob(z)
        log_w_theta = model.log_joint(x, z.detach()) - log_q_sg.detach()
        log_w_phi = stopped_log_joint(model, x, z, (model.encoder, model.latent)) - log_q_sg
        return log_w_theta.detach(), log_w_theta, log_w_phi

    def __call__(self, model: nn.Module, x: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor | float]]:
        log_w, log_w_theta, log_w_phi = self.model_terms(model, x, self.k)
        wn = torch.softmax(log_w, 0)  # log_w carries no graph, so wn is a constant weight
        surrogate = (wn * log_w_theta).sum(0) + (wn * wn * log_w_phi).sum(0)
        loss = -surrogate.mean()
        with torch.no_grad():
            metrics = {"loss": loss.detach(), "iwae_bound": iwae_bound(log_w).mean(), "elbo": log_w.mean(),
                       "ess": (1.0 / (wn * wn).sum(0)).mean()}
        return loss, metrics


__all__ = ["IWAEObjective", "DReGObjective", "stopped_log_joint"]
