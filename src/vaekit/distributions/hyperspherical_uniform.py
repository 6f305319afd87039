"""The uniform distribution on the unit sphere S^{m-1} (the prior of the sphere latents)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from ._sphere import log_sphere_area, uniform_sphere
from .constraints import sphere
from .sampling import RsampleAndLogProb

__all__ = ["HypersphericalUniform"]

class HypersphericalUniform(RsampleAndLogProb, Distribution):
    r"""Uniform distribution on :math:`S^{m-1} \subset \mathbb R^m`.

    .. math::
        p(z) = \frac{1}{|S^{m-1}|}, \qquad |S^{m-1}| = \frac{2\pi^{m/2}}{\Gamma(m/2)}, \qquad H = \log|S^{m-1}|.

    Samples are normalised standard normal vectors (Muller 1959). There are no
    parameters, so ``rsample`` is ``sample`` and ``has_rsample`` is trivially honest.

    Args:
        dim: the ambient dimension ``m >= 2`` (the event shape is ``(m,)``).
        batch_shape: optional batch shape (default ``()``: it broadcasts against any batch).
        dtype, device: of samples and log-densities.

    References:
        Davidson et al. (2018), Hyperspherical Variational Auto-Encoders, arXiv:1804.00891.
    """

    arg_constraints: dict = {}
    support = sphere
    has_rsample = True

    def __init__(self, dim: int, batch_shape: torch.Size | tuple[int, ...] = torch.Size(),
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
                 validate_args: bool | None = None) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        if dim < 2:
            raise ValueError(f"dim must be >= 2 (the sphere S^(dim-1) in R^dim), got {dim}")
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be floating point, got {dtype}")
        self.dim = dim
        self.dtype = dtype
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self._log_area = log_sphere_area(dim)
        super().__init__(torch.Size(batch_shape), torch.Size((dim,)), validate_args=validate_args)

    def expand(self, batch_shape: torch.Size, _instance: "HypersphericalUniform | None" = None) -> "HypersphericalUniform":
        return HypersphericalUniform(self.dim, torch.Size(batch_shape), self.dtype, self.device,
                                     validate_args=self._validate_args)

    @property
    def log_area(self) -> float:
        r""":math:`\log|S^{m-1}|`."""
        return self._log_area

    @property
    def mean(self) -> Tensor:
        return torch.zeros(self._extended_shape(), dtype=self.dtype, device=self.device)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> Tensor:
        """``(*sample_shape, *batch_shape, m)`` uniform draws."""
        shape = self._extended_shape(torch.Size(sample_shape))
        return uniform_sphere(tuple(shape[:-1]), self.dim, self.dtype, self.device)

    def log_prob(self, value: Tensor) -> Tensor:
        """``-log |S^{m-1}|`` broadcast to ``value.shape[:-1]`` (batch shape included)."""
        if self._validate_args:
            self._validate_sample(value)
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        return torch.full(shape, -self._log_area, dtype=value.dtype, device=value.device)

    def entropy(self) -> Tensor:
        return torch.full(self.batch_shape, self._log_area, dtype=self.dtype, device=self.device)

    def __repr__(self) -> str:
        return f"HypersphericalUniform(dim={self.dim}, batch_shape={tuple(self.batch_shape)})"

