"""Invertible transforms with log-determinants, usable as posterior refinements."""

from .iaf import IAF, IAFStep
from ..nets.made import MADE, MaskedLinear, create_masks

__all__ = ["IAF", "IAFStep", "MADE", "MaskedLinear", "create_masks"]
