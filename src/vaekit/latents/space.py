r"""What an evaluator needs to know to move in a latent space: its support, geometry and a chart to R^U.

Evaluators that move ``z`` (HMC inside AIS, plots that walk the latent space) read a model's
``latent_space`` instead of guessing from its dimension. The description is derived from the
prior's ``support`` (every ``torch.distributions.Distribution`` has one), so a new family needs no
extra code unless its support is new.

A sampler that needs ``R^U`` (HMC) moves an unconstrained point ``u`` and scores
``log p_z(z(u)) + c(u)`` with ``(z(u), c(u)) = space.from_unconstrained(u)``; the correction ``c`` makes
that a normalised density on ``R^U`` whose image under ``u -> z(u)`` is exactly ``p_z``, so annealing or
sampling in ``u`` is annealing or sampling in ``z``:

* ``R^D``: ``z = u``, ``c = 0``.
* a support with a bijection ``T`` (``torch.distributions.biject_to``): ``z = T(u)``,
  ``c = log|det dT/du|`` (for the simplex, torch's stick-breaking map, Jacobian with respect to the
  first ``n - 1`` coordinates, the measure the relaxed categorical's density is written in).
* the sphere ``S^{D-1}``, which has no global chart: an auxiliary radius. ``u = r z`` in ``R^D`` with
  ``r ~ chi_D`` independent of ``z``; since ``du = r^{D-1} dr dσ(z)``,
  ``p_u(u) = p_z(u/|u|)\, \chi_D(|u|) / |u|^{D-1}``, so ``c(u) = -|u|^2/2 - (D/2 - 1)\log 2 - \log\Gamma(D/2)``
  (for the uniform prior ``p_u`` is ``N(0, I_D)``). The marginal of ``z = u/|u|`` is ``p_z`` times whatever
  factor of ``z`` the sampler's target carries, so the annealed targets are the right ones (the
  auxiliary-variable construction of Neal 2011, "MCMC using Hamiltonian dynamics", arXiv:1206.1901, §5.2,
  used for spheres by e.g. Lan, Zhou & Shahbaba 2014, arXiv:1112.4118).
* one-hot (straight-through, discrete) codes: no chart (``U = 0``); a sampler enumerates the classes
  of each group instead (AIS uses a Gibbs sweep).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.distributions import Distribution, Transform, biject_to, constraints

from ..distributions.constraints import sphere
from .base import slerp

__all__ = ["LatentSpace", "latent_space_of"]

#: Geometries with a chart to ``R^U`` (see :meth:`LatentSpace.from_unconstrained`).
CHARTED = ("euclidean", "sphere", "simplex", "constrained")


@dataclass(frozen=True)
class LatentSpace:
    r"""The space one latent layer lives in (or, with ``parts``, a product of such spaces).

    Attributes:
        support: the ``torch.distributions.constraints`` object of the prior's samples.
        dim: the event size ``D`` (the ambient dimension for a sphere: ``S^{D-1}`` in ``R^D``).
        geometry: ``"euclidean"`` (``R^D``), ``"sphere"`` (the unit sphere ``S^{D-1}``), ``"simplex"``
            (relaxed one-hot codes: ``groups`` simplices of ``n_categories`` entries each),
            ``"discrete"`` (exact one-hot codes, ``groups`` of ``n_categories``), ``"constrained"``
            (anything else with a bijection) or ``"product"`` (a stacked model: see ``parts``).
        bijection: a ``Transform`` from unconstrained space onto the support (``biject_to(support)``;
            the identity for ``R^D``; for grouped simplices, the map of one group), or None where none
            exists.
        note: when ``bijection`` is None, why, and what is used instead.
        parts: for ``geometry == "product"``, the spaces of ``z = (z_1, ..., z_L)`` in order.
        n_categories: classes per group for ``"simplex"`` and ``"discrete"`` (0 otherwise).
    """

    support: constraints.Constraint | None
    dim: int
    geometry: str
    bijection: Transform | None = None
    note: str = ""
    parts: tuple["LatentSpace", ...] = field(default_factory=tuple)
    n_categories: int = 0

    @property
    def groups(self) -> int:
        """Number of simplices / one-hot groups (``dim // n_categories``; 1 for other geometries)."""
        return self.dim // self.n_categories if self.n_categories else 1

    @property
    def unconstrained_dim(self) -> int:
        """``U``, the size of the unconstrained point ``u`` (``D``; ``G (n - 1)`` for grouped simplices; 0
        for discrete codes).

        Raises:
            ValueError: a product space (use each of ``parts``), or a constrained space with no bijection.
        """
        if self.geometry in ("euclidean", "sphere"):
            return self.dim
        if self.geometry == "simplex":
            return self.groups * (self.n_categories - 1)
        if self.geometry == "discrete":
            return 0
        if self.geometry == "constrained" and self.bijection is not None:
            return int(self.bijection.inverse_shape(torch.Size([self.dim]))[-1])
        raise ValueError(f"a {self.geometry} latent space has no single chart ({self.note or 'use .parts'})")

    def from_unconstrained(self, u: Tensor) -> tuple[Tensor, Tensor]:
        r"""Map ``u`` ``(*batch, U)`` to ``(z, c)``: ``z`` ``(*batch, D)`` on the support and the log-density
        correction ``c`` ``(*batch)`` such that ``p_z(z(u)) e^{c(u)}`` is a normalised density on ``R^U``
        whose image is ``p_z`` (module docstring: the log-det-Jacobian of a bijection, or the auxiliary
        radius's term on a sphere). Differentiable in ``u``.

        Raises:
            ValueError: a discrete or product space, or ``u`` of the wrong width.
        """
        if u.shape[-1] != self.unconstrained_dim:
            raise ValueError(f"u must have last dimension {self.unconstrained_dim} for this {self.geometry} space, "
                             f"got shape {tuple(u.shape)}")
        if self.geometry == "euclidean":
            return u, u.new_zeros(u.shape[:-1])
        if self.geometry == "sphere":
            r2 = u.pow(2).sum(-1)
            d = self.dim
            c = -0.5 * r2 - (0.5 * d - 1) * math.log(2.0) - math.lgamma(0.5 * d)
            return u / r2.sqrt().unsqueeze(-1), c
        if self.geometry == "simplex":
            t = biject_to(constraints.simplex)
            ug = u.unflatten(-1, (self.groups, self.n_categories - 1))
            zg = t(ug)
            return zg.flatten(-2), t.log_abs_det_jacobian(ug, zg).sum(-1)
        assert self.bijection is not None  # "constrained": unconstrained_dim raised otherwise
        z = self.bijection(u)
        ladj = self.bijection.log_abs_det_jacobian(u, z)
        return z, ladj.reshape(*u.shape[:-1], -1).sum(-1) if ladj.dim() > u.dim() - 1 else ladj

    def to_unconstrained(self, z: Tensor) -> Tensor:
        """A ``u`` with ``from_unconstrained(u)[0] == z``, drawn so that ``z ~ p_z`` gives ``u ~ p_u``: the inverse
        bijection, or on a sphere ``u = r z`` with a fresh ``r ~ chi_D`` (from the global RNG).

        Raises:
            ValueError: a discrete or product space.
        """
        if self.geometry == "euclidean":
            return z
        if self.geometry == "sphere":
            r = torch.distributions.Chi2(torch.tensor(float(self.dim), dtype=z.dtype, device=z.device)).sample(
                z.shape[:-1]).sqrt()
            return r.unsqueeze(-1) * z / z.norm(dim=-1, keepdim=True)
        if self.geometry == "simplex":
            t = biject_to(constraints.simplex)
            zg = z.unflatten(-1, (self.groups, self.n_categories))
            # stick-breaking's inverse takes logs of the entries: floor them so a draw that underflowed
            # to 0 maps to a finite point (the density there is ~0 anyway)
            zg = zg.clamp_min(torch.finfo(z.dtype).tiny)
            return t.inv(zg / zg.sum(-1, keepdim=True)).flatten(-2)
        if self.geometry == "constrained" and self.bijection is not None:
            return self.bijection.inv(z)
        raise ValueError(f"a {self.geometry} latent space has no chart ({self.note or 'use .parts'})")

    def interpolate(self, z0: Tensor, z1: Tensor, steps: int) -> Tensor:
        """Points from ``z0`` to ``z1`` along this space's geodesic, ``(steps, *z0.shape)``: great circles
        (:func:`~vaekit.latents.slerp`) on a sphere, straight lines elsewhere.

        Raises:
            ValueError: ``steps < 2``, or a product space (interpolate each part instead).
        """
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        if self.geometry == "product":
            raise ValueError("a stacked latent (z_1, ..., z_L) has no single path; interpolate each of .parts")
        if self.geometry == "sphere":
            return slerp(z0, z1, steps)
        t = torch.linspace(0.0, 1.0, steps, dtype=z0.dtype, device=z0.device).view(-1, *([1] * z0.dim()))
        return (1 - t) * z0 + t * z1


def latent_space_of(prior: Distribution) -> LatentSpace:
    """Describe the space of ``prior``'s samples (its ``support`` and event size).

    A support torch knows a bijection for (``biject_to``) gets it; the unit sphere gets
    ``bijection=None`` and the auxiliary-radius chart; grouped simplices (a support with integer
    attribute ``n`` and boolean ``one_hot``, as :class:`~vaekit.distributions.GroupedRelaxedOneHotCategorical`
    has) get a stick-breaking map per group, or ``"discrete"`` when the values are exact one-hot codes.
    """
    support = prior.support
    dim = int(prior.event_shape[-1]) if len(prior.event_shape) else 1
    if support is sphere or isinstance(support, type(sphere)):
        return LatentSpace(support, dim, "sphere", None,
                           "the sphere S^{D-1} has no global bijection to R^{D-1}; move in R^D with an auxiliary "
                           "radius (z = y/|y|, the radius carrying a chi distribution) or with a geodesic integrator")
    base = getattr(support, "base_constraint", support)
    if base is constraints.real or base is constraints.real_vector:
        return LatentSpace(support, dim, "euclidean", biject_to(constraints.real_vector))
    if base is constraints.simplex:
        return LatentSpace(support, dim, "simplex", biject_to(constraints.simplex), n_categories=dim)
    n = getattr(base, "n", None)
    if isinstance(n, int) and isinstance(getattr(base, "one_hot", None), bool) and dim % n == 0:
        if base.one_hot:
            return LatentSpace(support, dim, "discrete", None,
                               "exact one-hot codes (straight-through): no chart; enumerate each group's classes",
                               n_categories=n)
        return LatentSpace(support, dim, "simplex", biject_to(constraints.simplex),
                           "grouped simplices: torch's stick-breaking map applied to each group", n_categories=n)
    try:
        return LatentSpace(support, dim, "constrained", biject_to(support))
    except NotImplementedError:
        return LatentSpace(support, dim, "constrained", None, f"no bijection is registered for {support!r}")
