"""Observation models p(x|z): Bernoulli, Gaussian, categorical over pixel values, autoregressive Bernoulli (MADE)."""

from .autoregressive import MADEBernoulli, MADEBernoulliLikelihood
from .base import LIKELIHOODS, Likelihood
from .bernoulli import BernoulliLikelihood
from .categorical import CategoricalLikelihood, QuantizedCategorical
from .gaussian import GaussianLikelihood

__all__ = ["LIKELIHOODS", "Likelihood", "BernoulliLikelihood", "GaussianLikelihood", "CategoricalLikelihood",
           "QuantizedCategorical", "MADEBernoulli", "MADEBernoulliLikelihood"]
