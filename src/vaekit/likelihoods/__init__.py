"""Observation models p(x|z): Bernoulli, Gaussian, categorical over pixel values, autoregressive Bernoulli (MADE, PixelCNN)."""

from .autoregressive import MADEBernoulli, MADEBernoulliLikelihood
from .base import LIKELIHOODS, Likelihood
from .bernoulli import BernoulliLikelihood
from .categorical import CategoricalLikelihood, QuantizedCategorical
from .gaussian import GaussianLikelihood
from .pixelcnn import PixelCNNBernoulli, PixelCNNBernoulliLikelihood

__all__ = ["LIKELIHOODS", "Likelihood", "BernoulliLikelihood", "GaussianLikelihood", "CategoricalLikelihood",
           "QuantizedCategorical", "MADEBernoulli", "MADEBernoulliLikelihood",
           "PixelCNNBernoulli", "PixelCNNBernoulliLikelihood"]
