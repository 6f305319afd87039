"""Model-agnostic evaluation: ELBO, IWAE-k bound, diagnostics (and, in later modules, AIS/BDMC)."""

from .bounds import DatasetBound, elbo_estimate, evaluate_bound, iwae_bound
from .diagnostics import active_units, kl_per_dimension, posterior_mean_variance

__all__ = ["iwae_bound", "elbo_estimate", "evaluate_bound", "DatasetBound", "active_units", "kl_per_dimension",
           "posterior_mean_variance"]

# AIS/BDMC/Parzen and the estimator runner (issue 4).
from .ais import AISResult, ais, sigmoid_schedule
from .bdmc import BDMCRow, bdmc, run_bdmc, simulate
from .estimators import format_table, parse_spec, run_estimators
from .hmc import HMCResult, StepSizeAdapter, hmc_step, run_hmc
from .parzen import ParzenWarning, parzen_log_density, parzen_score, theis_demo

__all__ += ["ais", "AISResult", "sigmoid_schedule", "bdmc", "BDMCRow", "run_bdmc", "simulate", "run_estimators",
            "parse_spec", "format_table", "hmc_step", "run_hmc", "HMCResult", "StepSizeAdapter",
            "parzen_log_density", "parzen_score", "theis_demo", "ParzenWarning"]
