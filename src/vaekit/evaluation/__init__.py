"""Model-agnostic evaluation: ELBO, IWAE-k bound, AIS with HMC, BDMC, diagnostics (Parzen only as a warning).

Every estimator uses only the model protocol (``forward``, ``log_weights``, ``prior``, ``log_likelihood``,
``encode``), never a concrete model class.
"""

from .ais import AISResult, ais, sigmoid_schedule
from .bdmc import BDMCRow, bdmc, run_bdmc, simulate
from .bounds import DatasetBound, elbo_estimate, evaluate_bound, iwae_estimate
from .diagnostics import active_units, classification_error, kl_per_dimension, mutual_information, posterior_mean_variance
from .estimators import format_table, parse_spec, run_estimators
from .hmc import HMCResult, StepSizeAdapter, hmc_step, run_hmc
from .parzen import ParzenWarning, parzen_log_density, parzen_score, theis_demo

__all__ = ["iwae_estimate", "elbo_estimate", "evaluate_bound", "DatasetBound", "active_units", "classification_error", "kl_per_dimension",
           "posterior_mean_variance", "mutual_information", "ais", "AISResult", "sigmoid_schedule", "bdmc", "BDMCRow",
           "run_bdmc", "simulate", "run_estimators", "parse_spec", "format_table", "hmc_step", "run_hmc", "HMCResult",
           "StepSizeAdapter", "parzen_log_density", "parzen_score", "theis_demo", "ParzenWarning"]
