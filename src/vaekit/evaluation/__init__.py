"""Model-agnostic evaluation: ELBO, IWAE-k bound, diagnostics (and, in later modules, AIS/BDMC)."""

from .bounds import DatasetBound, elbo_estimate, evaluate_bound, iwae_bound
from .diagnostics import active_units, kl_per_dimension, posterior_mean_variance

__all__ = ["iwae_bound", "elbo_estimate", "evaluate_bound", "DatasetBound", "active_units", "kl_per_dimension",
           "posterior_mean_variance"]
