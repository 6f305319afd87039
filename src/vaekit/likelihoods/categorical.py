"""Categorical observation model over discrete pixel values (one softmax per pixel)."""

from __future__ import annotations

from typing import Annotated

import annotated_types as at
import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, constraints

from .base import LIKELIHOODS, Likelihood


class QuantizedCategorical(Distribution):
    r"""Independent categoricals over ``n`` levels ``{0, 1/(n-1), ..., 1}`` per value.

    .. math:: \log p(x) = \sum_i \log \mathrm{softmax}(\ell_i)_{c_i},\qquad c_i = \mathrm{round}(x_i (n-1))

    ``logits`` has shape ``(*batch, D, n)``; values have shape ``(*batch, D)`` in [0, 1].
    """

    arg_constraints = {"logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(self, logits: Tensor, validate_args: bool | None = None) -> None:
        self.levels = logits.shape[-1]
        self._cat = Categorical(logits=logits, validate_args=False)
        super().__init__(logits.shape[:-2], logits.shape[-2:-1], validate_args=validate_args)

    @property
    def logits(self) -> Tensor:
        return self._cat.logits

    def log_prob(self, value: Tensor) -> Tensor:
        idx = torch.round(value * (self.levels - 1)).long()
        return self._cat.log_prob(idx).sum(-1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return self._cat.sample(sample_shape).to(self.logits.dtype) / (self.levels - 1)

    @property
    def mean(self) -> Tensor:
        lv = torch.linspace(0, 1, self.levels, dtype=self.logits.dtype, device=self.logits.device)
        return (self._cat.probs * lv).sum(-1)


@LIKELIHOODS.register("categorical")
class CategoricalLikelihood(Likelihood):
    """A softmax over ``levels`` discrete values per pixel (256 for raw 8-bit images).

    Data must be exactly ``k/(levels-1)`` for integer ``k`` (e.g. ``uint8/255``).
    """

    def __init__(self, data_dim: int, levels: Annotated[int, at.Ge(2)] = 256) -> None:
        super().__init__(data_dim)
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.levels = levels
        self.params_per_value = levels

    def forward(self, params: Tensor) -> Distribution:
        # params: (..., levels*D) as `levels` blocks of D  ->  (..., D, levels)
        logits = params.unflatten(-1, (self.levels, self.data_dim)).transpose(-1, -2)
        return QuantizedCategorical(logits)

    def validate(self, x: Tensor, name: str = "x") -> None:
        super().validate(x, name)
        scaled = x * (self.levels - 1)
        off = (scaled - scaled.round()).abs().max()
        if float(x.min()) < 0 or float(x.max()) > 1 or float(off) > 1e-3:
            raise ValueError(
                f"{name} must hold values k/{self.levels - 1} in [0, 1] for a categorical likelihood "
                f"with {self.levels} levels (max distance to a level: {float(off):.3g})"
            )
