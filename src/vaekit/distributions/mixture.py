"""A mixture of diagonal Gaussians with reparameterised (implicit) samples (Graves 2016)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from .sampling import RsampleAndLogProb

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _normal_log_pdf(x: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    return -0.5 * ((x - loc) / scale) ** 2 - scale.log() - _HALF_LOG_2PI


class MixtureOfDiagonalNormals(RsampleAndLogProb, Distribution):
    r"""Mixture of ``K`` diagonal Gaussians in ``R^D`` whose ``rsample`` carries gradients to every parameter.

    .. math::
        q(z) = \sum_{k=1}^K \pi_k \prod_{d=1}^D \mathcal N(z_d; \mu_{kd}, \sigma_{kd}^2),
        \qquad \pi = \mathrm{softmax}(\text{logits})

    Reparameterisation (Graves 2016, arXiv:1607.05690; equivalently the implicit
    reparameterisation of Figurnov et al. 2018, arXiv:1805.08498) of the
    sequential distributional transform :math:`u_d = F_d(z_d \mid z_{<d};\theta)`.
    Each conditional is a 1-D mixture with posterior-updated weights

    .. math::
        F_d(z_d \mid z_{<d}) = \sum_k w_{kd}\,\Phi\!\Big(\frac{z_d-\mu_{kd}}{\sigma_{kd}}\Big),\qquad
        w_{kd} \propto \pi_k \prod_{j<d} \mathcal N(z_j; \mu_{kj}, \sigma_{kj}^2),

    and holding ``u`` fixed gives the total derivative

    .. math::
        \frac{dz_d}{d\theta} = -\frac{1}{p_d(z_d\mid z_{<d})}
            \Big(\frac{\partial F_d}{\partial\theta} + \sum_{j<d}\frac{\partial F_d}{\partial z_j}\frac{dz_j}{d\theta}\Big).

    Values are drawn exactly by ancestral sampling (component, then Gaussian),
    which has the same law as the sequential conditional sampler. Gradients are
    attached by a surrogate with value 0: with ``S_d`` the partial derivative of
    ``F_d/p_d`` in ``θ`` at fixed ``z`` and ``L_{dj} = (∂F_d/∂z_j)/p_d`` (``j < d``),
    the total derivative solves the unit-lower-triangular system
    ``(I + L)\,dz = -dS``, so ``z = sg(z) - (I + L)^{-1}(S - sg(S))`` with ``L``
    detached. ``S_d`` is written in log space so that no small density is ever
    divided by:

    .. math::
        dS_d = \sum_k \Big[\frac{w_k \Phi(u_k)}{p_d}\, d\log w_k + r_k \sigma_k\, du_k\Big],\quad
        u_k = \frac{z_d-\mu_{kd}}{\sigma_{kd}},\quad r_k = \frac{w_k \mathcal N(z_d;\mu_{kd},\sigma_{kd}^2)}{p_d},

    with the coefficients detached and, in the upper tail, ``Φ(u_k)`` replaced
    by ``-Φ(-u_k)`` (valid because ``Σ_k dw_k = 0``), which avoids cancellation.
    ``L`` uses the same coefficients with
    ``∂\log w_{kd}/∂z_j = a_{kj} - \sum_{k'} w_{k'd} a_{k'j}``, ``a_{kj} = -(z_j-\mu_{kj})/\sigma_{kj}^2``,
    so the chain through earlier dimensions is included. The resulting gradients are unbiased for
    ``logits``, ``loc`` and ``scale``; for ``K = 1`` they reduce to the usual
    ``z = mu + sigma * eps`` pathwise gradients.

    ``torch.distributions.MixtureSameFamily`` has no ``rsample``, which is why
    this class exists.

    Args:
        logits: ``(*batch, K)`` unnormalised log mixture weights.
        loc: ``(*batch, K, D)`` component means.
        scale: ``(*batch, K, D)`` component standard deviations, positive.
        validate_args: torch's argument validation switch.

    **Where the gradient is reliable.** Each draw's Jacobian is exact and the mean unbiased, but
    ``dz_d/dθ`` divides by the conditional density ``p_d(z_d | z_<d)``, which is tiny for a draw that
    lands between well-separated components, so the per-draw gradients are heavy-tailed once the
    components separate. Measured by ``benchmarks/mixture_gradient_tails.py`` (``K = 5``, unit scales,
    ``f(z) = sum_d z_d + z_d^2``, 80k draws, against the closed-form gradient; results in
    ``benchmarks/results/mixture_gradient_tails.json``):

    * means up to about 4σ apart (``D = 10``; 6σ in ``D = 1``): light tails. The top 0.1% of draws carry at
      most 53% of the squared deviation from the exact gradient (the score-function estimator on the same
      ``f``: up to 78%, its scale gradients being skewed), Hill tail indices of 1.4 or more, and at most
      0.2% of the 4000-draw averages more than 4 of their own standard errors off (the score function's
      skewed scale gradients: up to 0.4%).
    * about 6σ apart (``D = 10``): transition (top 0.1% carry up to 68%).
    * 8σ and more apart (``D = 10``; 8σ in ``D = 1`` for the logits): tail index about 1 in the logits and
      in some of the means and scales (0.9 to 1.0); the top 0.1% of draws carry 98-100% of the squared
      deviation, so
      the variance is infinite in practice and a sample standard error says nothing: at 11σ, 3% of the
      4000-draw averages of the logits' gradient miss it by more than 4 of their own standard errors
      (up to 6.6; a finite-variance estimator: 6e-5). The score-function estimator keeps tail indices
      of 7 to 17 in the logits there.

    So with components that separate by more than a few standard deviations (a posterior that has
    found distinct modes), treat these gradients' noise as unbounded: average over more draws, or
    differentiate the component weights by the score function (or by summing over the ``K``
    components' Gaussian reparameterisations) instead.

    Notes:
        ``rsample`` is vectorised over dimensions: ``O(K D^2)`` work and ``O(D^2)``
        memory per sample for ``L`` and one batched triangular solve (no Python
        loop over ``D``); ``log_prob`` is one log-sum-exp, ``O(KD)``.

    References:
        A. Graves (2016), Stochastic Backpropagation through Mixture Density Distributions, arXiv:1607.05690.
        M. Figurnov, S. Mohamed, A. Mnih (2018), Implicit Reparameterization Gradients, arXiv:1805.08498.
    """

    arg_constraints = {"logits": constraints.real_vector, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, logits: Tensor, loc: Tensor, scale: Tensor, validate_args: bool | None = None) -> None:
        for name, t in (("logits", logits), ("loc", loc), ("scale", scale)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name} must be a Tensor, got {type(t).__name__}")
        if logits.dim() < 1 or loc.dim() < 2 or scale.dim() < 2:
            raise ValueError(
                f"expected logits (*batch, K), loc and scale (*batch, K, D); got shapes {tuple(logits.shape)}, "
                f"{tuple(loc.shape)}, {tuple(scale.shape)}")
        k = logits.shape[-1]
        if loc.shape[-2] != k or scale.shape[-2] != k:
            raise ValueError(f"logits has K={k} components but loc/scale have {loc.shape[-2]}/{scale.shape[-2]}")
        if loc.shape[-1] != scale.shape[-1]:
            raise ValueError(f"loc has D={loc.shape[-1]} but scale has D={scale.shape[-1]}")
        batch_shape = torch.broadcast_shapes(logits.shape[:-1], loc.shape[:-2], scale.shape[:-2])
        d = loc.shape[-1]
        self.logits = logits.expand(*batch_shape, k)
        self.loc = loc.expand(*batch_shape, k, d)
        self.scale = scale.expand(*batch_shape, k, d)
        super().__init__(batch_shape, torch.Size((d,)), validate_args=validate_args)

    @property
    def num_components(self) -> int:
        return self.logits.shape[-1]

    @property
    def probs(self) -> Tensor:
        """Mixture weights ``pi``, ``(*batch, K)``."""
        return self.logits.softmax(-1)

    def expand(self, batch_shape: torch.Size, _instance=None) -> "MixtureOfDiagonalNormals":
        new = self._get_checked_instance(MixtureOfDiagonalNormals, _instance)
        batch_shape = torch.Size(batch_shape)
        k, d = self.num_components, self.event_shape[0]
        new.logits = self.logits.expand(*batch_shape, k)
        new.loc, new.scale = self.loc.expand(*batch_shape, k, d), self.scale.expand(*batch_shape, k, d)
        Distribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> Tensor:
        """``sum_k pi_k mu_k``, ``(*batch, D)``."""
        return (self.probs.unsqueeze(-1) * self.loc).sum(-2)

    @property
    def variance(self) -> Tensor:
        """``sum_k pi_k (sigma_k^2 + mu_k^2) - mean^2``, ``(*batch, D)``."""
        pi = self.probs.unsqueeze(-1)
        return (pi * (self.scale ** 2 + self.loc ** 2)).sum(-2) - self.mean ** 2

    def log_prob(self, value: Tensor) -> Tensor:
        r"""``log q(z) = logsumexp_k [log pi_k + sum_d log N(z_d; mu_kd, sigma_kd^2)]``; ``(*sample, *batch)``."""
        if self._validate_args:
            self._validate_sample(value)
        comp = _normal_log_pdf(value.unsqueeze(-2), self.loc, self.scale).sum(-1)  # (*S, *batch, K)
        return torch.logsumexp(self.logits.log_softmax(-1) + comp, dim=-1)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Ancestral sample (component index, then Gaussian), no gradients; ``(*sample, *batch, D)``."""
        shape = self._extended_shape(sample_shape)
        idx = torch.distributions.Categorical(logits=self.logits).sample(sample_shape)  # (*S, *batch)
        d = self.event_shape[0]
        gather = idx[..., None, None].expand(*idx.shape, 1, d)
        loc = torch.gather(self.loc.expand(*sample_shape, *self.loc.shape), -2, gather).squeeze(-2)
        scale = torch.gather(self.scale.expand(*sample_shape, *self.scale.shape), -2, gather).squeeze(-2)
        return loc + scale * torch.randn(shape, dtype=loc.dtype, device=loc.device)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Exact sample with Graves/implicit gradients (see class docstring); ``(*sample, *batch, D)``."""
        z = self.sample(sample_shape)  # (*S, *batch, D), detached
        zk = z.unsqueeze(-2)  # (*S, *batch, 1, D)
        loc, scale = self.loc, self.scale  # (*batch, K, D), live
        u = (zk - loc) / scale  # (*S, *batch, K, D): live in loc, scale; z detached
        log_n = -0.5 * u ** 2 - scale.log() - _HALF_LOG_2PI
        # log w_kd = log_softmax_k(log pi_k + sum_{j<d} log N_kj): an exclusive cumulative sum over d
        prefix = torch.cat([torch.zeros_like(log_n[..., :1]), log_n[..., :-1].cumsum(-1)], -1)
        log_w = (self.logits.log_softmax(-1).unsqueeze(-1) + prefix).log_softmax(-2)  # (*S, *batch, K, D)
        with torch.no_grad():
            log_joint = log_w + log_n
            log_p = torch.logsumexp(log_joint, -2, keepdim=True)  # log p_d(z_d | z_<d), (*S, *batch, 1, D)
            resp = (log_joint - log_p).exp()  # r_kd
            log_cdf, log_sf = torch.special.log_ndtr(u), torch.special.log_ndtr(-u)
            lower = torch.logsumexp(log_w + log_cdf, -2, keepdim=True) < math.log(0.5)
            # coef_kd = w_kd Phi(u_kd) / p_d, or -w_kd Phi(-u_kd) / p_d in the upper tail (same derivative)
            coef = torch.where(lower, (log_w + log_cdf - log_p).exp(), -(log_w + log_sf - log_p).exp())
            # L_dj = (dF_d/dz_j) / p_d for j < d, with d log w_kd / dz_j = a_kj - sum_k' w_k'd a_k'j,
            # a_kj = d log N_kj / dz_j = -u_kj / sigma_kj
            a = -u / scale
            w = log_w.exp()
            lmat = torch.einsum("...kd,...kj->...dj", coef, a) \
                - coef.sum(-2).unsqueeze(-1) * torch.einsum("...kd,...kj->...dj", w, a)  # (*S, *batch, D, D)
            lmat = lmat.tril(-1) + torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
        # partial derivatives of F_d / p_d in theta at fixed z (surrogate whose value is 0). A component with
        # pi_k = 0 has coef_k = 0 and log w_k = -inf, and 0 * (-inf) would be NaN: its term is 0 (it has no
        # derivative to carry either, since d log w_k / d theta enters only multiplied by w_k = 0)
        log_w_finite = torch.where(torch.isneginf(log_w), torch.zeros_like(log_w), log_w)
        s = (coef * log_w_finite + resp * scale.detach() * u).sum(-2)  # (*S, *batch, D)
        s = s - s.detach()
        # total derivative: (I + L) dz = -dS  (the chain through z_<d)
        dz = torch.linalg.solve_triangular(lmat, s.unsqueeze(-1), upper=False, unitriangular=True).squeeze(-1)
        return z - dz

    def entropy(self) -> Tensor:  # pragma: no cover - no closed form
        raise NotImplementedError("a Gaussian mixture has no closed-form entropy; use a Monte Carlo estimate")
