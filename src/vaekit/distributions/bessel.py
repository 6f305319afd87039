r"""Modified Bessel functions of the first kind in log space, in pure torch (CPU and GPU, differentiable).

The von Mises-Fisher family needs :math:`\log I_v(x)` and the ratio
:math:`A_v(x) = I_{v+1}(x)/I_v(x)` for orders :math:`v = m/2 - 1` up to
several hundred and arguments up to :math:`10^5`, where :math:`I_v` itself
overflows (``I_0(1e5) ~ e^{1e5}``) or underflows (``I_{511}(1e-3)``).
torch has only ``i0e``/``i1e``, so this module computes

* :func:`log_ive` — :math:`\log(e^{-x} I_v(x))`,
* :func:`log_iv_over_xv` — :math:`\log(x^{-v} I_v(x))`, smooth at ``x = 0`` (and :func:`log_ive_over_xv`, the same minus ``x``),
* :func:`bessel_ratio` — :math:`I_{v+1}(x)/I_v(x)`,

for a Python-float order ``v >= 0`` and a tensor argument ``x >= 0``.

Method (why not a series): the power series needs ~x terms and the large-x
expansion fails for large orders. Instead

1. at a high order :math:`V = v + N \ge V_0` (``V_0 = 40``) use Debye's uniform
   asymptotic expansion (DLMF 10.41.3), uniform in :math:`x \in (0, \infty)`,

   .. math::
       I_V(Vz) \sim \frac{e^{V\eta}}{(2\pi V)^{1/2}(1+z^2)^{1/4}} \sum_{k\ge0} \frac{u_k(t)}{V^k},
       \quad t = (1+z^2)^{-1/2},\ \eta = (1+z^2)^{1/2} + \log\frac{z}{1+(1+z^2)^{1/2}},

   with the polynomials :math:`u_k` generated exactly (rational arithmetic) from
   :math:`u_{k+1}(t) = \tfrac12 t^2(1-t^2)u_k'(t) + \tfrac18\int_0^t (1-5s^2)u_k(s)\,ds`
   (DLMF 10.41.9), 14 terms; at ``V >= 40`` the truncation error is below 1e-15 relative;
2. step down to order ``v`` with the three-term recurrence written for ratios,
   :math:`r_{j-1} = 1/(2j/x + r_j)`, :math:`r_j = I_{j+1}/I_j` (DLMF 10.29.1),
   which is backward (decreasing order), hence stable: every term is positive,
   and :math:`\log I_{j-1} = \log I_j - \log r_{j-1}`.

All arithmetic runs in float64 internally and is cast back. Gradients use the
exact identities :math:`\partial_x \log I_v = A_v + v/x` and
:math:`A_v' = 1 - A_v^2 - (2v+1)A_v/x` (DLMF 10.29.2), so they are themselves
differentiable (higher-order gradients work).

References:
    NIST DLMF, chapter 10 (https://dlmf.nist.gov/10.41, 10.29).
    Amos (1974), Computation of modified Bessel functions and their ratios, Math. Comp. 28.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

__all__ = ["log_ive", "log_iv", "log_iv_over_xv", "log_ive_over_xv", "log_ive_over_xv_and_ratio", "bessel_ratio"]

_V0 = 40.0  # smallest order at which the Debye series is used directly
_N_TERMS = 14


def _debye_polynomials(n: int) -> list[list[float]]:
    """Coefficients (ascending powers of t) of Debye's u_0 .. u_{n-1}, from the exact rational recurrence."""
    polys: list[list[Fraction]] = [[Fraction(1)]]
    for _ in range(n - 1):
        u = polys[-1]
        # t^2 (1 - t^2) u'(t) / 2
        du = [Fraction(i) * c for i, c in enumerate(u)][1:]
        out = [Fraction(0)] * (len(u) + 3)
        for i, c in enumerate(du):
            out[i + 2] += c / 2
            out[i + 4] -= c / 2
        # (1/8) int_0^t (1 - 5 s^2) u(s) ds
        for i, c in enumerate(u):
            out[i + 1] += c / 8 / (i + 1)
            out[i + 3] -= 5 * c / 8 / (i + 3)
        while out and out[-1] == 0:
            out.pop()
        polys.append(out)
    return [[float(c) for c in p] for p in polys]


_U = _debye_polynomials(_N_TERMS)
_DEG = max(len(u) for u in _U)
# (DEG, K) matrix: column k holds u_k's coefficients, so one matmul evaluates every u_k(t)
_U_MATRIX = np.zeros((_DEG, _N_TERMS))
for _k, _u in enumerate(_U):
    _U_MATRIX[: len(_u), _k] = _u


def _debye_log_ive(v: float, x: Tensor) -> Tensor:
    """log(e^{-x} I_v(x)) by the Debye expansion (float64 ``x > 0``, ``v >= _V0``)."""
    z = x / v
    sq = torch.sqrt(1 + z * z)
    t = 1 / sq
    # v*eta - x = v*(sqrt(1+z^2) - z) + v*log(z / (1 + sqrt(1+z^2))), without cancellation for large z
    head = v / (sq + z) + v * (torch.log(z) - torch.log1p(sq))
    powers = t.unsqueeze(-1) ** torch.arange(_DEG, dtype=x.dtype, device=x.device)  # (..., DEG)
    u = powers @ torch.as_tensor(_U_MATRIX, dtype=x.dtype, device=x.device)  # (..., K): u_k(t)
    inv_v = torch.as_tensor([v ** -k for k in range(_N_TERMS)], dtype=x.dtype, device=x.device)
    series = u @ inv_v
    return head - 0.5 * math.log(2 * math.pi * v) - 0.25 * torch.log1p(z * z) + torch.log(series)


def _log_ive_and_ratio(v: float, x: Tensor, need_log: bool = True) -> tuple[Tensor | None, Tensor]:
    """(log ive_v(x), I_{v+1}(x)/I_v(x)) for float64 ``x > 0``; no autograd. ``need_log=False`` skips the log
    (returns ``None`` for it): the ratio alone needs no logarithm per step of the recurrence."""
    n = max(0, math.ceil(_V0 - v))
    top = v + n
    log_top = _debye_log_ive(top, x)
    r = torch.exp(_debye_log_ive(top + 1, x) - log_top)
    log_i = log_top if need_log else None
    two_over_x = 2 / x
    for j in range(n, 0, -1):
        r = torch.reciprocal(two_over_x * (v + j) + r)  # r_{order-1}
        if log_i is not None:
            log_i = log_i - torch.log(r)
    return log_i, r


def _small_x_ratio(v: float, x: Tensor) -> Tensor:
    r""":math:`A_v(x) = \frac{x}{2(v+1)}\bigl(1 - \frac{x^2}{4(v+1)(v+2)}\bigr) + O(x^5)`: exact in float64 for
    ``x < 1e-5`` (the next term is below 1e-20 relative)."""
    return x / (2 * (v + 1)) * (1 - x * x / (4 * (v + 1) * (v + 2)))


def _log_iv_over_xv_and_ratio64(v: float, x64: Tensor) -> tuple[Tensor, Tensor]:
    """(log(x^{-v} I_v(x)), A_v(x)) for float64 ``x >= 0`` from one recurrence; below 1e-5 both come from their
    series, exact in float64 there (the log's two-term series -v log 2 - lgamma(v+1) + x^2/(4(v+1)) to 1e-18
    relative), which also avoids the cancellation of v log x."""
    small = x64 < 1e-5
    xs = torch.where(small, torch.ones_like(x64), x64)
    log_i, r = _log_ive_and_ratio(v, xs)
    series = -v * math.log(2) - math.lgamma(v + 1) + x64 * x64 / (4 * (v + 1))
    value = torch.where(small, series, log_i + xs - v * torch.log(xs))
    return value, torch.where(small, _small_x_ratio(v, x64.clamp_min(0)), r)


def _ratio_derivative(v: float, x: Tensor, r: Tensor) -> Tensor:
    """:math:`A_v'(x) = 1 - A_v^2 - (2v+1) A_v / x` from ``r = A_v(x)`` (DLMF 10.29.2); its limit at x = 0 is
    1/(2v+2). Differentiable in ``x`` and ``r``, so a backward built on it can be differentiated again."""
    pos = x > 0
    xs = torch.where(pos, x, torch.ones_like(x))
    return torch.where(pos, 1 - r * r - (2 * v + 1) * r / xs, torch.full_like(x, 1 / (2 * v + 2)))


def _check(v: float, x: Tensor) -> None:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise TypeError(f"the Bessel order v must be a Python number, got {type(v).__name__}")
    if not v >= 0:
        raise ValueError(f"the Bessel order v must be >= 0, got {v}")
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")


class _Ratio(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, v: float) -> Tensor:  # type: ignore[override]
        x64 = x.detach().double()
        pos = x64 > 0
        xs = torch.where(pos, x64, torch.ones_like(x64))
        _, r = _log_ive_and_ratio(v, xs, need_log=False)
        out = torch.where(pos, r, torch.zeros_like(r)).to(x.dtype)
        # the output is saved, not recomputed in backward: as a saved output it still carries this node's
        # graph, so double backward differentiates through it
        ctx.save_for_backward(x, out)
        ctx.v = v
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, r = ctx.saved_tensors
        return grad * _ratio_derivative(ctx.v, x, r), None


class _LogIvOverXv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, v: float, scaled: bool) -> Tensor:  # type: ignore[override]
        x64 = x.detach().double()
        out, ratio = _log_iv_over_xv_and_ratio64(v, x64)
        if scaled:  # subtract x in float64, before the cast, so large x loses nothing
            out = out - x64
        # the derivative A_v(x) came with the forward's recurrence: kept for a first-order backward
        ratio = ratio.to(x.dtype)
        ctx.save_for_backward(x, ratio)
        ctx.v = v
        ctx.scaled = scaled
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, ratio = ctx.saved_tensors
        # a graph of the backward (double backward) needs A_v(x) as a function of x: recompute it differentiably
        d = bessel_ratio(ctx.v, x) if torch.is_grad_enabled() else ratio
        return grad * (d - 1 if ctx.scaled else d), None, None


class _LogIveOverXvAndRatio(torch.autograd.Function):
    """Both of :func:`log_ive_over_xv_and_ratio`'s outputs from one recurrence; the ratio is saved as an output,
    so the backward needs no second recurrence and double backward still differentiates through it."""

    @staticmethod
    def forward(ctx, x: Tensor, v: float) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        x64 = x.detach().double()
        log_part, ratio = _log_iv_over_xv_and_ratio64(v, x64)
        log_part, ratio = log_part - x64, ratio.to(x.dtype)
        ctx.save_for_backward(x, ratio)
        ctx.v = v
        return log_part.to(x.dtype), ratio

    @staticmethod
    def backward(ctx, grad_log: Tensor, grad_ratio: Tensor):  # type: ignore[override]
        x, r = ctx.saved_tensors
        return grad_log * (r - 1) + grad_ratio * _ratio_derivative(ctx.v, x, r), None


def log_ive_over_xv_and_ratio(v: float, x: Tensor) -> tuple[Tensor, Tensor]:
    r"""(:func:`log_ive_over_xv`, :func:`bessel_ratio`) of the same ``x`` from one Bessel recurrence: what the vMF
    entropy needs, at half the cost of the two calls (the recurrence is most of a vMF training step's latent cost).

    Args:
        v: order ``>= 0``. x: tensor ``>= 0``.

    Returns:
        :math:`\log(x^{-v}e^{-x}I_v(x))` and :math:`A_v(x)`, each of ``x``'s shape and dtype; differentiable (also
        twice) with the derivatives :math:`A_v - 1` and :math:`1 - A_v^2 - (2v+1)A_v/x`.
    """
    _check(v, x)
    return _LogIveOverXvAndRatio.apply(x, float(v))


def bessel_ratio(v: float, x: Tensor) -> Tensor:
    r"""The ratio :math:`A_v(x) = I_{v+1}(x) / I_v(x)`, in ``[0, 1)``.

    For the vMF on :math:`S^{m-1}` with ``v = m/2 - 1`` this is the mean
    resultant length :math:`E[\mu^\top z]`.

    Args:
        v: order, a Python float ``>= 0``.
        x: argument tensor, ``>= 0``, any shape.

    Returns:
        Tensor of ``x``'s shape and dtype; differentiable in ``x``
        (:math:`A_v' = 1 - A_v^2 - (2v+1)A_v/x`).
    """
    _check(v, x)
    return _Ratio.apply(x, float(v))


def log_iv_over_xv(v: float, x: Tensor) -> Tensor:
    r""":math:`\log(x^{-v} I_v(x))`, finite and smooth at ``x = 0`` (value :math:`-v\log 2 - \log\Gamma(v+1)`).

    Its derivative is :math:`A_v(x)` (:func:`bessel_ratio`), so the vMF
    log-normaliser built from it has no ``0 * inf`` at :math:`\kappa = 0`.

    Args:
        v: order ``>= 0``. x: tensor ``>= 0``.

    Returns:
        Tensor of ``x``'s shape and dtype.
    """
    _check(v, x)
    return _LogIvOverXv.apply(x, float(v), False)


def log_ive_over_xv(v: float, x: Tensor) -> Tensor:
    r""":math:`\log(x^{-v} e^{-x} I_v(x))`: :func:`log_iv_over_xv` minus ``x``, subtracted in float64.

    ``O(log x)`` even at ``x = 1e5``, so float32 callers keep full precision
    (the vMF uses it for ``log C_m(kappa) + kappa``). Derivative :math:`A_v(x) - 1`.
    """
    _check(v, x)
    return _LogIvOverXv.apply(x, float(v), True)


def log_ive(v: float, x: Tensor) -> Tensor:
    r"""Exponentially scaled :math:`\log(e^{-x} I_v(x))` (``-inf`` at ``x = 0`` when ``v > 0``).

    Args:
        v: order ``>= 0``. x: tensor ``>= 0``.

    Returns:
        Tensor of ``x``'s shape and dtype; gradient :math:`A_v(x) + v/x - 1`.
    """
    _check(v, x)
    v = float(v)
    pos = x > 0
    xs = torch.where(pos, x, torch.ones_like(x))
    val = log_iv_over_xv(v, xs) + v * torch.log(xs) - xs
    at_zero = torch.full_like(x, 0.0 if v == 0 else -math.inf)
    return torch.where(pos, val, at_zero)


def log_iv(v: float, x: Tensor) -> Tensor:
    r""":math:`\log I_v(x) = \log(e^{-x}I_v(x)) + x` (see :func:`log_ive`)."""
    return log_ive(v, x) + x
