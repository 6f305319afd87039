"""The latent-layer contract: features ``h`` -> posterior ``q(z|h)``, and a prior ``p(z)``.

A latent layer is the differentiable stochastic layer at the heart of a VAE.
It is a plain ``nn.Module`` split in two halves so that gradient estimators can
rebuild the distribution from detached parameters (DReG, Tucker et al. 2018):

* :meth:`LatentLayer.params` — the network part, ``h -> dict of tensors``;
* :meth:`LatentLayer.distribution` — the parameter dict -> a
  ``torch.distributions.Distribution`` with ``batch_shape = h.shape[:-1]`` and
  ``event_shape = (dim,)``.

``forward(h) = distribution(**params(h))``. The same layer serves as a
conditional prior ``p(z_l | z_{l+1})`` in a stacked (hierarchical) model:
feed it the top-down features instead of the encoder's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from ..registry import Registry

LATENTS: Registry["LatentLayer"] = Registry("latent layer")


def has_analytic_kl(q: Distribution, p: Distribution) -> bool:
    """True when ``torch.distributions.kl`` has a registered formula for ``(type(q), type(p))``."""
    from torch.distributions.kl import _dispatch_kl

    return _dispatch_kl(type(q), type(p)) is not NotImplemented


def kl_term(q: Distribution, p: Distribution, z: Tensor | None = None, log_q: Tensor | None = None) -> Tensor:
    r"""KL(q || p) = E_q[log q(z) - log p(z)], analytic where registered, else Monte Carlo.

    Args:
        q, p: distributions with the same event shape; ``p``'s batch shape broadcasts to ``q``'s.
        z: samples from ``q`` of shape ``(k, *batch, *event)``, used only for the
            Monte Carlo fallback (the single-sample estimate ``log q(z) - log p(z)``
            on the *same* sample the likelihood term uses).
        log_q: ``q.log_prob(z)`` if the caller already has it (saves a pass).

    Returns:
        ``(*batch,)`` when analytic, ``(k, *batch)`` for the Monte Carlo estimate.
    """
    if has_analytic_kl(q, p):
        return kl_divergence(q, p)
    if z is None:
        raise NotImplementedError(
            f"no analytic KL({type(q).__name__} || {type(p).__name__}) is registered; pass samples z for a Monte Carlo estimate"
        )
    if log_q is None:
        log_q = q.log_prob(z)
    return log_q - p.log_prob(z)


class LatentLayer(nn.Module):
    """Base class of every posterior family.

    Subclasses set ``dim`` (the event size) and implement :meth:`params`,
    :meth:`distribution` and :meth:`prior`. Optional overrides:
    :meth:`point_estimate` (what ``encode`` returns: the mean, or the mean
    direction on a sphere) and :meth:`interpolate` (straight lines by default,
    great circles on spheres).
    """

    #: True for families whose support is the unit sphere (slerp, uniform prior).
    on_sphere: bool = False

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        if in_features < 1 or dim < 1:
            raise ValueError(f"in_features and dim must be positive, got {in_features} and {dim}")
        self.in_features = in_features
        self.dim = dim

    def params(self, h: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def distribution(self, **params: Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, h: Tensor) -> Distribution:
        """``q(z|h)``, batch shape ``h.shape[:-1]``, event shape ``(dim,)``."""
        if h.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects features of width {self.in_features}, got shape {tuple(h.shape)}"
            )
        return self.distribution(**self.params(h))

    def prior(self) -> Distribution:  # pragma: no cover - abstract
        """``p(z)`` with empty batch shape (it broadcasts against any batch)."""
        raise NotImplementedError

    def kl(self, q: Distribution, p: Distribution | None = None, z: Tensor | None = None,
           log_q: Tensor | None = None) -> Tensor:
        """KL(q || p) (default ``p`` = this layer's prior); see :func:`kl_term`."""
        return kl_term(q, self.prior() if p is None else p, z, log_q)

    def rsample_kl(self, params: dict[str, Tensor], k: int) -> tuple[Tensor, Tensor] | None:
        r"""Optional fast path: ``k`` reparameterised samples and the analytic per-dimension KL to the prior.

        Returns ``(z, kl_per_dim)`` of shapes ``(k, *batch, dim)`` and ``(*batch, dim)``, computed
        without building ``Distribution`` objects, or ``None`` (the default) when the family has
        no such path; the model then uses :meth:`distribution` and ``kl_divergence``. A family
        that implements it must draw ``z`` from the same law as ``distribution(**params).rsample``.
        """
        return None

    def rsample_log_ratio(self, params: dict[str, Tensor], sample_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        r"""``z ~ q(z|x)`` and the log density ratio :math:`\log p(z) - \log q(z|x)` at it.

        The importance weight of Burda et al. (2015) is ``log p(x|z) + log p(z) - log q(z|x)``;
        this returns its latent part. The default builds ``q`` and ``p`` and evaluates both
        log-densities (a flow's ``rsample_and_log_prob`` gives ``log q`` from the same pass);
        families with a cheaper closed form override it.
        """
        q = self.distribution(**params)
        if hasattr(q, "rsample_and_log_prob"):
            z, log_q = q.rsample_and_log_prob(sample_shape)
        else:
            z = q.rsample(sample_shape) if q.has_rsample else q.sample(sample_shape)
            log_q = q.log_prob(z)
        return z, self.prior().log_prob(z) - log_q

    def point_estimate(self, q: Distribution) -> Tensor:
        """A deterministic code for ``encode``: the posterior mean."""
        return q.mean

    def interpolate(self, z0: Tensor, z1: Tensor, steps: int) -> Tensor:
        """Points from ``z0`` to ``z1`` (shape ``(steps, *z0.shape)``), straight in R^d."""
        t = torch.linspace(0.0, 1.0, steps, dtype=z0.dtype, device=z0.device).view(-1, *([1] * z0.dim()))
        return (1 - t) * z0 + t * z1

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, dim={self.dim}"


def slerp(z0: Tensor, z1: Tensor, steps: int) -> Tensor:
    r"""Spherical linear interpolation between unit vectors (Shoemake 1985).

    .. math:: \mathrm{slerp}(z_0, z_1; t) = \frac{\sin((1-t)\Omega)}{\sin\Omega} z_0 + \frac{\sin(t\Omega)}{\sin\Omega} z_1,
              \quad \cos\Omega = z_0^\top z_1

    Falls back to normalised linear interpolation where ``Omega`` is ~0.
    Returns shape ``(steps, *z0.shape)``.
    """
    t = torch.linspace(0.0, 1.0, steps, dtype=z0.dtype, device=z0.device).view(-1, *([1] * z0.dim()))
    z0n = z0 / z0.norm(dim=-1, keepdim=True)
    z1n = z1 / z1.norm(dim=-1, keepdim=True)
    cos = (z0n * z1n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    near = so < 1e-6
    safe_so = torch.where(near, torch.ones_like(so), so)
    out = (torch.sin((1 - t) * omega) * z0n + torch.sin(t * omega) * z1n) / safe_so
    lin = (1 - t) * z0n + t * z1n
    out = torch.where(near, lin, out)
    return out / out.norm(dim=-1, keepdim=True)


LOG_2PI = math.log(2 * math.pi)
