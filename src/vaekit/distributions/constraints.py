"""Constraints torch lacks: the unit sphere (modelled on Pyro's ``_Sphere``)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import constraints

__all__ = ["sphere"]


class _Sphere(constraints.Constraint):
    r"""Vectors on the unit sphere :math:`S^{m-1} = \{z \in \mathbb R^m : \|z\| = 1\}` (last dimension is the event).

    The check allows a rounding slack of ``sqrt(eps)`` of the dtype (about
    3e-4 in float32, 1.5e-8 in float64), enough for normalised network outputs.
    """

    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        tol = torch.finfo(value.dtype).eps ** 0.5 if value.is_floating_point() else 0.0
        return (torch.linalg.vector_norm(value, dim=-1) - 1).abs() <= tol

    def __repr__(self) -> str:
        return "Sphere()"


sphere = _Sphere()
