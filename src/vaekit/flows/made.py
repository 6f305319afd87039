"""MADE, re-exported: it lives in :mod:`vaekit.nets.made` so that likelihoods (a lower layer than flows) can use it
for autoregressive observation models (:class:`vaekit.likelihoods.MADEBernoulliLikelihood`)."""

from ..nets.made import MADE, MaskedLinear, create_masks

__all__ = ["MADE", "MaskedLinear", "create_masks"]
