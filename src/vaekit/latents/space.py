"""What an evaluator needs to know to move in a latent space: its support, geometry and a bijection.

Evaluators that move ``z`` (HMC inside AIS, plots that walk the latent space) read a model's
``latent_space`` instead of guessing from its dimension. The description is derived from the
prior's ``support`` (every ``torch.distributions.Distribution`` has one), so a new family needs no
extra code unless its support is new.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.distributions import Distribution, Transform, biject_to, constraints

from ..distributions.constraints import sphere
from .base import slerp

__all__ = ["LatentSpace", "latent_space_of"]


@dataclass(frozen=True)
class LatentSpace:
    r"""The space one latent layer lives in (or, with ``parts``, a product of such spaces).

    Attributes:
        support: the ``torch.distributions.constraints`` object of the prior's samples.
        dim: the event size ``D`` (the ambient dimension for a sphere: ``S^{D-1}`` in ``R^D``).
        geometry: ``"euclidean"`` (``R^D``), ``"sphere"`` (the unit sphere ``S^{D-1}``), ``"simplex"``
            (relaxed one-hot codes, possibly in groups), ``"constrained"`` (anything else with a
            bijection) or ``"product"`` (a stacked model: see ``parts``).
        bijection: a ``Transform`` from unconstrained ``R^D`` onto the support (``biject_to(support)``;
            the identity for ``R^D``), or None where none exists.
        note: when ``bijection`` is None, why, and what to use instead (for a sphere: an auxiliary
            radius, so that a sampler moves in ``R^D`` and the direction ``z/|z|`` is the latent).
        parts: for ``geometry == "product"``, the spaces of ``z = (z_1, ..., z_L)`` in order.
    """

    support: constraints.Constraint | None
    dim: int
    geometry: str
    bijection: Transform | None = None
    note: str = ""
    parts: tuple["LatentSpace", ...] = field(default_factory=tuple)

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

    A support torch knows a bijection for (``biject_to``) gets it; the unit sphere and grouped
    simplices get ``bijection=None`` and a note saying what to use instead.
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
        return LatentSpace(support, dim, "simplex", biject_to(constraints.simplex))
    if "Simplex" in type(base).__name__:
        return LatentSpace(support, dim, "simplex", None,
                           "grouped simplices: apply a stick-breaking bijection to each group of the one-hot code")
    try:
        return LatentSpace(support, dim, "constrained", biject_to(support))
    except NotImplementedError:
        return LatentSpace(support, dim, "constrained", None, f"no bijection is registered for {support!r}")
