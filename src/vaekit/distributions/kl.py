"""Closed-form KL divergences of vaekit's distributions, registered with ``torch.distributions.kl.register_kl``.

Importing this module (``vaekit.distributions`` does) makes ``kl_divergence``
and ``vaekit.latents.kl_term`` use these formulas.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import register_kl

from .bessel import bessel_ratio
from .hyperspherical_uniform import HypersphericalUniform
from .power_spherical import PowerSpherical
from .von_mises_fisher import VonMisesFisher

__all__: list[str] = []


def _check_dims(p_dim: int, q_dim: int, p_name: str, q_name: str) -> None:
    if p_dim != q_dim:
        raise ValueError(f"KL({p_name} || {q_name}): event dimensions differ ({p_dim} vs {q_dim})")


def _broadcast(kl: Tensor, q_batch: torch.Size) -> Tensor:
    return kl.expand(torch.broadcast_shapes(kl.shape, q_batch))


# KL(vMF(mu, k) || U(S^{m-1})) = -H[vMF] + log|S^{m-1}|
#   = k A_m(k) + log C_m(k) + log|S^{m-1}|,  A_m = I_{m/2}/I_{m/2-1}.
# Davidson et al. (2018), Hyperspherical VAEs, arXiv:1804.00891, eq. (16)/App. B. Constant in mu; 0 at k = 0.
# In float64, rounding below 0 clamped (the two terms agree to ~1e-13 at k = 0).
@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p: VonMisesFisher, q: HypersphericalUniform) -> Tensor:
    _check_dims(p.event_shape[0], q.dim, "VonMisesFisher", "HypersphericalUniform")
    return _broadcast((q.log_area - p._entropy64()).clamp_min(0).to(p.loc.dtype), q.batch_shape)


# KL(PowerSpherical(mu, k) || U(S^{m-1})) = -H[PS] + log|S^{m-1}|, with
#   H[PS] = log N(k, m) - k (log 2 + psi(alpha) - psi(alpha + beta)), alpha = (m-1)/2 + k, beta = (m-1)/2.
# De Cao & Aziz (2020), The Power Spherical distribution, arXiv:2006.04437, Sec. 3 (entropy) and App.
# Computed as D(beta) - D(2 beta), D(a) = lgamma(a) - lgamma(a + k) + k psi(a + k) (PowerSpherical.kl_to_uniform):
# the same value with no O(k) terms to cancel, exactly 0 at k = 0.
@register_kl(PowerSpherical, HypersphericalUniform)
def _kl_ps_uniform(p: PowerSpherical, q: HypersphericalUniform) -> Tensor:
    _check_dims(p.event_shape[0], q.dim, "PowerSpherical", "HypersphericalUniform")
    return _broadcast(p.kl_to_uniform(), q.batch_shape)


# KL(U || U) = 0 for equal dimensions (same density).
@register_kl(HypersphericalUniform, HypersphericalUniform)
def _kl_uniform_uniform(p: HypersphericalUniform, q: HypersphericalUniform) -> Tensor:
    _check_dims(p.dim, q.dim, "HypersphericalUniform", "HypersphericalUniform")
    shape = torch.broadcast_shapes(p.batch_shape, q.batch_shape)
    return torch.zeros(shape, dtype=p.dtype, device=p.device)


# KL(vMF(mu1, k1) || vMF(mu2, k2)) = E_1[log q1 - log q2]
#   = log C_m(k1) - log C_m(k2) + (k1 mu1 - k2 mu2)^T E_1[z],  E_1[z] = A_m(k1) mu1
#   = log C_m(k1) - log C_m(k2) + A_m(k1) (k1 - k2 mu2^T mu1).
# Follows from the exponential-family form q(z) = C_m(k) exp(k mu^T z) (Mardia & Jupp 2000, Directional Statistics, 9.3).
@register_kl(VonMisesFisher, VonMisesFisher)
def _kl_vmf_vmf(p: VonMisesFisher, q: VonMisesFisher) -> Tensor:
    _check_dims(p.event_shape[0], q.event_shape[0], "VonMisesFisher", "VonMisesFisher")
    k1, k2 = p.concentration.double(), q.concentration.double()
    a = bessel_ratio(p.event_shape[0] / 2 - 1, k1)
    # (log C1 + k1) - (log C2 + k2) keeps the O(kappa) parts out of the subtraction; all in float64, because
    # 1 - A_m(k1) ~ (m-1)/(2 k1) keeps only a few float32 digits at k1 ~ 1e5
    cos = (p.loc.double() * q.loc.double()).sum(-1)
    kl = (p._log_normalizer_plus_kappa64() - q._log_normalizer_plus_kappa64() - k1 * (1 - a) + k2 * (1 - a * cos))
    return kl.clamp_min(0).to(torch.promote_types(p.loc.dtype, q.loc.dtype))
