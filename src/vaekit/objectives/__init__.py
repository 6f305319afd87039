"""Objectives: functions of log-weights and KL terms (ELBO, beta-ELBO, IWAE, warm-up, free bits, MMD/InfoVAE)."""

from .elbo import beta_elbo, elbo, free_bits_kl, iwae_from_log_weights, kl_warmup
from .iwae import DReGObjective, IWAEObjective  # registers 'iwae' and 'dreg'
from .mmd import InfoVAEObjective, gaussian_rbf_mmd2, imq_kernel, mmd_unbiased, rbf_kernel  # registers 'infovae'
from .registry import OBJECTIVES, Objective, build_objective
from .stein import SteinObjective, SteinVIWAEObjective  # registers 'stein' and 'stein_viwae'
from .sequential import SequentialObjective  # registers 'sequential'
from .conditional import M2Objective  # registers 'm2'

__all__ = ["elbo", "beta_elbo", "kl_warmup", "free_bits_kl", "iwae_from_log_weights", "OBJECTIVES", "Objective",
           "build_objective", "IWAEObjective", "DReGObjective", "SteinObjective", "SteinVIWAEObjective",
           "InfoVAEObjective", "SequentialObjective", "M2Objective", "mmd_unbiased", "rbf_kernel", "imq_kernel", "gaussian_rbf_mmd2"]
