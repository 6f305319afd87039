"""What the sphere families share: the (loc, concentration) constructor, uniform tangent directions and the
Householder map e1 -> mu."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from .constraints import sphere
from .sampling import RsampleAndLogProb


def log_sphere_area(m: int) -> float:
    r""":math:`\log |S^{m-1}| = \log 2 + \tfrac m2 \log\pi - \log\Gamma(\tfrac m2)` (surface area of the unit sphere in R^m)."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def uniform_sphere(shape: tuple[int, ...], m: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(*shape, m)`` uniform draws on S^{m-1}: normalised standard normals (Muller 1959)."""
    while True:
        x = torch.randn(*shape, m, dtype=dtype, device=device)
        n = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        if bool((n > 0).all()):  # a zero vector has probability 0, but never divide by it
            return x / n


def assemble(one_minus_w: Tensor, tangent: Tensor) -> Tensor:
    r"""``[w, sqrt(1 - w^2) v]`` from ``1 - w`` (``(*S,)``) and a unit tangent ``v`` (``(*S, m-1)``) -> ``(*S, m)``.

    Works from ``1 - w`` so that :math:`\sqrt{1-w^2} = \sqrt{(1-w)(1+w)}` keeps its
    precision when ``w`` is within 1e-5 of 1 (kappa ~ 1e5).
    """
    om = one_minus_w.unsqueeze(-1)
    radius = torch.sqrt((om * (2 - om)).clamp_min(0))
    return torch.cat([1 - om, radius * tangent], dim=-1)


def householder(loc: Tensor, x: Tensor) -> Tensor:
    r"""Map ``x`` by an orthogonal matrix that takes e1 to ``loc``, smooth in ``loc`` everywhere on the sphere.

    With :math:`s = -1` where :math:`\mu_1 \ge 0` and :math:`s = +1` where :math:`\mu_1 < 0`, and
    :math:`u = \mu - s e_1`,

    .. math:: z = s\,\Big(x - \frac{2\,u\,(u^\top x)}{u^\top u}\Big), \qquad u^\top u = 2 - 2 s\mu_1 \ge 2.

    For :math:`s = +1` this is the Householder reflection :math:`I - 2uu^\top/u^\top u`,
    :math:`u = e_1 - \mu` up to sign (Davidson et al. 2018; De Cao & Aziz 2020); for :math:`s = -1` it is
    minus the reflection with :math:`u = e_1 + \mu`, which also takes e1 to :math:`\mu`. Each is smooth
    away from its own singular point (:math:`\mu = e_1`, resp. :math:`-e_1`), and the switch keeps
    ``loc`` at least :math:`\sqrt 2` away from it, so there is no degenerate case to guard: a guard that
    returned the identity at :math:`\mu = e_1` made ``rsample``'s gradient with respect to ``loc`` zero
    there. Both maps give the same law for a rotation-invariant tangent draw, so the pathwise gradient is
    unbiased on either side (the switch itself is piecewise constant).

    Args:
        loc: ``(*B, m)`` unit vectors (broadcast against ``x``).
        x: ``(*S, *B, m)``.

    Returns:
        ``(*S, *B, m)``.
    """
    s = torch.where(loc[..., :1] >= 0, -1.0, 1.0).to(loc.dtype)  # (*B, 1), no gradient
    u = torch.cat([loc[..., :1] - s, loc[..., 1:]], -1)
    return s * (x - 2 * u * (u * x).sum(-1, keepdim=True) / (u * u).sum(-1, keepdim=True))


class DirectionalDistribution(RsampleAndLogProb, Distribution):
    """Common constructor and ``expand`` of the (mean direction, concentration) families on S^{m-1}.

    Subclasses (:class:`~vaekit.distributions.VonMisesFisher`, :class:`~vaekit.distributions.PowerSpherical`)
    add the density and the sampler; the parameters broadcast to ``batch_shape`` and the event is ``(m,)``.
    """

    arg_constraints = {"loc": sphere, "concentration": constraints.nonnegative}
    support = sphere
    has_rsample = True

    def __init__(self, loc: Tensor, concentration: Tensor | float, validate_args: bool | None = None) -> None:
        if not isinstance(loc, Tensor) or not loc.is_floating_point():
            raise TypeError(f"loc must be a floating-point tensor, got {type(loc).__name__}"
                            + (f" of dtype {loc.dtype}" if isinstance(loc, Tensor) else ""))
        if loc.dim() < 1 or loc.shape[-1] < 2:
            raise ValueError(f"loc must have shape (*batch, m) with m >= 2, got {tuple(loc.shape)}")
        if isinstance(concentration, (int, float)) and not isinstance(concentration, bool):
            concentration = torch.tensor(float(concentration), dtype=loc.dtype, device=loc.device)
        if not isinstance(concentration, Tensor) or not concentration.is_floating_point():
            raise TypeError(f"concentration must be a float or floating-point tensor, got {type(concentration).__name__}")
        m = loc.shape[-1]
        batch_shape = torch.broadcast_shapes(loc.shape[:-1], concentration.shape)
        self.loc = loc.expand(*batch_shape, m)
        self.concentration = concentration.expand(batch_shape)
        self._m = m
        super().__init__(batch_shape, torch.Size((m,)), validate_args=validate_args)

    def expand(self, batch_shape: torch.Size, _instance: "DirectionalDistribution | None" = None):
        cls = type(self)
        new = self._get_checked_instance(cls, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(*batch_shape, self._m)
        new.concentration = self.concentration.expand(batch_shape)
        new._m = self._m
        Distribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new
