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

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, kl_divergence

from ..registry import Registry

LATENTS: Registry["LatentLayer"] = Registry("latent layer")


def has_analytic_kl(q: Distribution, p: Distribution) -> bool:
    """True when ``torch.distributions.kl`` has a registered formula for ``(type(q), type(p))``."""
    from torch.distributions.kl import _dispatch_kl

    return _dispatch_kl(type(q), type(p)) is not NotImplemented


def kl_estimate(q: Distribution, p: Distribution, log_q: Tensor | None = None, log_p: Tensor | None = None) -> Tensor:
    r"""KL(q || p) per example, shape ``q.batch_shape`` (nats): analytic where registered, else Monte Carlo.

    .. math:: \mathrm{KL}(q\|p) \approx \frac1k\sum_{i=1}^k \bigl(\log q(z_i) - \log p(z_i)\bigr),\quad z_i\sim q

    The Monte Carlo form needs ``log_q`` and ``log_p`` of shape ``(k, *batch)`` on the samples the
    likelihood term uses, and averages them over the sample dimension: the one place that rule lives.

    Raises:
        NotImplementedError: no analytic KL is registered for ``(type(q), type(p))`` and no samples were given.
    """
    if has_analytic_kl(q, p):
        return kl_divergence(q, p)
    if log_q is None or log_p is None:
        raise NotImplementedError(
            f"no analytic KL({type(q).__name__} || {type(p).__name__}) is registered; pass log q and log p of "
            "posterior samples for a Monte Carlo estimate")
    return (log_q - log_p).mean(0)


def kl_by_dimension(q: Distribution, p: Distribution) -> Tensor | None:
    """Analytic KL per latent dimension, ``(*batch, D)``, when ``q`` and ``p`` factorise over dimensions
    (``Independent`` over one dimension of a base pair with a registered KL); else None."""
    if isinstance(q, Independent) and isinstance(p, Independent) and q.reinterpreted_batch_ndims == 1 \
            and p.reinterpreted_batch_ndims == 1 and has_analytic_kl(q.base_dist, p.base_dist):
        return kl_divergence(q.base_dist, p.base_dist)
    return None


class LatentLayer(nn.Module):
    """Base class of every posterior family.

    Subclasses set ``dim`` (the event size) and implement :meth:`params`,
    :meth:`distribution` (a distribution with ``rsample_and_log_prob``, see
    :class:`vaekit.distributions.RsampleAndLogProb`) and :meth:`prior`. Optional override:
    :meth:`point_estimate` (what ``encode`` returns: the mean, or the mean direction
    on a sphere). How to move in the space (straight lines, great circles) follows
    from the prior's support: :class:`~vaekit.latents.LatentSpace`.
    """

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
        """``q(z|h)``, batch shape ``h.shape[:-1]``, event shape ``(dim,)``.

        Raises:
            ValueError: ``h`` has the wrong width.
            TypeError: :meth:`distribution` returned a distribution without ``rsample_and_log_prob``
                (derive it from :class:`vaekit.distributions.RsampleAndLogProb`).
        """
        if h.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects features of width {self.in_features}, got shape {tuple(h.shape)}"
            )
        q = self.distribution(**self.params(h))
        if not hasattr(q, "rsample_and_log_prob"):
            raise TypeError(f"{type(self).__name__}.distribution returned a {type(q).__name__} without "
                            "rsample_and_log_prob(sample_shape); derive it from vaekit.distributions.RsampleAndLogProb")
        return q

    def prior(self) -> Distribution:  # pragma: no cover - abstract
        """``p(z)`` with empty batch shape (it broadcasts against any batch)."""
        raise NotImplementedError

    def point_estimate(self, q: Distribution) -> Tensor:
        """A deterministic code for ``encode``: the posterior mean."""
        return q.mean

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

