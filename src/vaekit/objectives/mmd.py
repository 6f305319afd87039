r"""Maximum mean discrepancy and the InfoVAE objective (Zhao, Song & Ermon 2017; issue 17).

* :func:`rbf_kernel`, :func:`imq_kernel`: the kernels, on the last dim.
* :func:`mmd_unbiased`: Gretton et al.'s (2012, JMLR 13, Lemma 6) unbiased estimate of :math:`\mathrm{MMD}^2`.
* :func:`gaussian_rbf_mmd2`: its closed form for two Gaussians under the RBF kernel (a test reference).
* ``infovae`` in :data:`~vaekit.objectives.OBJECTIVES` (:class:`InfoVAEObjective`): reconstruction
  + (1 − α) KL(q(z|x) ‖ p(z)) + (α + λ − 1) MMD²(q(z), p(z)).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..registry import PositiveFloat, PositiveInt
from .registry import OBJECTIVES

Kernel = Literal["rbf", "imq"]


def _sqdist(x: Tensor, y: Tensor) -> Tensor:
    """``||x_i - y_j||^2``, ``(n, d)`` and ``(m, d)`` -> ``(n, m)`` (clamped at 0 against rounding)."""
    return (x.pow(2).sum(-1)[:, None] + y.pow(2).sum(-1)[None, :] - 2.0 * x @ y.T).clamp_min(0.0)


def rbf_kernel(x: Tensor, y: Tensor, scale: float) -> Tensor:
    r"""``k(x, y) = exp(-||x - y||^2 / c)`` with ``c = scale``: ``(n, d)``, ``(m, d)`` -> ``(n, m)``."""
    return torch.exp(-_sqdist(x, y) / scale)


def imq_kernel(x: Tensor, y: Tensor, scale: float) -> Tensor:
    r"""Inverse multiquadric ``k(x, y) = c / (c + ||x - y||^2)`` with ``c = scale`` (Tolstikhin et al. 2018, WAE):
    ``(n, d)``, ``(m, d)`` -> ``(n, m)``. Heavier tails than the RBF, so its gradients do not vanish for far-apart
    samples."""
    return scale / (scale + _sqdist(x, y))


KERNELS = {"rbf": rbf_kernel, "imq": imq_kernel}


def default_scale(dim: int) -> float:
    """The kernel scale ``c = 2 d`` used when none is given (``2 d σ²`` for a standard normal prior, WAE's IMQ choice)."""
    return 2.0 * dim


def mmd_unbiased(x: Tensor, y: Tensor, kernel: Kernel = "rbf", scale: float | None = None) -> Tensor:
    r"""Unbiased estimate of the squared MMD between the distributions of ``x`` ``(n, d)`` and ``y`` ``(m, d)``:

    .. math::
        \widehat{\mathrm{MMD}}^2_u = \frac{1}{n(n-1)}\sum_{i\ne j} k(x_i, x_j) + \frac{1}{m(m-1)}\sum_{i\ne j} k(y_i, y_j)
        - \frac{2}{nm}\sum_{i,j} k(x_i, y_j)

    (Gretton, Borgwardt, Rasch, Schölkopf & Smola 2012, JMLR 13, Eq. 3). Its expectation is exactly
    :math:`\mathrm{MMD}^2 \ge 0` (0 iff the distributions agree, for a characteristic kernel); a single estimate
    can be negative. A scalar, in the kernel's units (dimensionless, at most 2).

    Args:
        kernel: ``"rbf"`` (:func:`rbf_kernel`) or ``"imq"`` (:func:`imq_kernel`).
        scale: the kernel's ``c``; default :func:`default_scale` of ``d``.

    Raises:
        ValueError: fewer than 2 samples on a side, different widths, an unknown kernel, or ``scale <= 0``.
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd_unbiased expects (n, d) and (m, d) samples, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"mmd_unbiased needs at least 2 samples on each side, got n={n}, m={m}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
    c = default_scale(x.shape[1]) if scale is None else float(scale)
    if c <= 0:
        raise ValueError(f"kernel scale must be > 0, got {scale}")
    k = KERNELS[kernel]
    kxx, kyy, kxy = k(x, x, c), k(y, y, c), k(x, y, c)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2.0 * kxy.mean()


def gaussian_rbf_mmd2(mu1: Tensor, var1: Tensor, mu2: Tensor, var2: Tensor, scale: float) -> Tensor:
    r"""Closed-form :math:`\mathrm{MMD}^2` between :math:`\mathcal N(\mu_1, \mathrm{diag}\,v_1)` and
    :math:`\mathcal N(\mu_2, \mathrm{diag}\,v_2)` under ``k(x, y) = exp(-||x - y||^2 / c)``:

    .. math::
        \mathbb E\,k(x, y) = \prod_j \Bigl(1 + \tfrac{2(a_j + b_j)}{c}\Bigr)^{-1/2}
        \exp\Bigl(-\sum_j \frac{(\mu_{a,j} - \mu_{b,j})^2}{c + 2(a_j + b_j)}\Bigr),\quad x\sim\mathcal N(\mu_a, a),\ y\sim\mathcal N(\mu_b, b)

    and :math:`\mathrm{MMD}^2 = \mathbb E k(x,x') + \mathbb E k(y,y') - 2\,\mathbb E k(x,y)` (the Gaussian integral of a
    Gaussian kernel). Vectors ``(d,)``; a scalar."""

    def ek(ma: Tensor, va: Tensor, mb: Tensor, vb: Tensor) -> Tensor:
        s = va + vb
        return torch.prod((1 + 2 * s / scale) ** -0.5) * torch.exp(-((ma - mb) ** 2 / (scale + 2 * s)).sum())

    return ek(mu1, var1, mu1, var1) + ek(mu2, var2, mu2, var2) - 2 * ek(mu1, var1, mu2, var2)


@OBJECTIVES.register("infovae")
class InfoVAEObjective:
    r"""The InfoVAE family with the MMD divergence (Zhao, Song & Ermon 2017, arXiv:1706.02262 "InfoVAE", Eq. 6;
    the information-preference analysis of arXiv:1702.08658). The loss, per batch, is

    .. math::
        -\frac1B\sum_b \mathbb E_{q(z|x_b)}[\log p(x_b|z)] + (1-\alpha)\,\frac1B\sum_b \mathrm{KL}(q(z|x_b)\,\|\,p(z))
        + (\alpha+\lambda-1)\,\widehat{\mathrm{MMD}}^2_u\bigl(\{z_b\}_{b\le B},\ \{z'_b\}_{b\le B}\bigr)

    with :math:`z_b \sim q(z|x_b)` (one sample per example: draws from the aggregate posterior :math:`q(z)`) and
    :math:`z'_b \sim p(z)`, :func:`mmd_unbiased`. ``alpha = 0, lam = 1`` is the ELBO; ``alpha = 1`` drops the
    per-example KL (the "MMD-VAE"), which no longer pushes each :math:`q(z|x)` onto the prior and so does not
    reward an uninformative latent; a large ``lam`` matches :math:`q(z)` to :math:`p(z)`.

    Args:
        alpha: α (any real; ``1 - alpha`` is the KL weight).
        lam: λ > 0; the MMD weight is ``alpha + lam - 1``, which must be ``>= 0``.
        kernel: ``"imq"`` (default) or ``"rbf"``.
        kernel_scale: the kernel's ``c``; default ``2 * latent dim``.
        k: posterior samples per example for the reconstruction term (the first one feeds the MMD).

    Logged: ``elbo`` (the true ELBO of the batch), ``log_likelihood``, ``kl``, ``mmd`` (the batch's estimate),
    ``loss``. Needs a latent given as one tensor ``(k, B, D)`` (not a stacked model's tuple).

    Raises:
        ValueError: ``alpha + lam - 1 < 0`` (at config time ``train.objective: ...`` with the values).
    """

    def __init__(self, alpha: float = 1.0, lam: PositiveFloat = 1000.0, kernel: Kernel = "imq",
                 kernel_scale: PositiveFloat | None = None, k: PositiveInt = 1) -> None:
        if lam <= 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        if alpha + lam - 1 < 0:
            raise ValueError(f"the MMD weight alpha + lam - 1 must be >= 0, got alpha={alpha}, lam={lam}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
        self.alpha, self.lam, self.kernel, self.kernel_scale, self.k = float(alpha), float(lam), kernel, kernel_scale, k

    def __call__(self, model: nn.Module, x: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor | float]]:
        out = model(x, k=self.k)
        if not torch.is_tensor(out.z):
            raise ValueError("the infovae objective needs a single latent tensor; this model's latent is "
                             f"a {type(out.z).__name__}")
        ll = out.log_likelihood.mean(0)
        z = out.z[0].reshape(x.shape[0], -1)
        z_prior = out.prior.sample((x.shape[0],)).reshape(x.shape[0], -1).to(z.dtype)
        mmd = mmd_unbiased(z, z_prior, self.kernel, self.kernel_scale)
        loss = (-ll + (1.0 - self.alpha) * out.kl).mean() + (self.alpha + self.lam - 1.0) * mmd
        with torch.no_grad():
            ll_mean, kl_mean = ll.mean(), out.kl.mean()
            metrics = {"loss": loss.detach(), "elbo": ll_mean - kl_mean, "log_likelihood": ll_mean, "kl": kl_mean,
                       "mmd": mmd.detach()}
        return loss, metrics


__all__ = ["rbf_kernel", "imq_kernel", "mmd_unbiased", "gaussian_rbf_mmd2", "InfoVAEObjective"]
