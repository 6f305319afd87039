"""Objectives: functions of log-weights and KL terms (ELBO, beta-ELBO, IWAE, warm-up, free bits)."""

from .elbo import beta_elbo, elbo, free_bits_kl, iwae_from_log_weights, kl_warmup
from .iwae import DReGObjective, IWAEObjective  # registers 'iwae' and 'dreg'
from .registry import OBJECTIVES, Objective, build_objective

__all__ = ["elbo", "beta_elbo", "kl_warmup", "free_bits_kl", "iwae_from_log_weights", "OBJECTIVES", "Objective",
           "build_objective", "IWAEObjective", "DReGObjective"]
