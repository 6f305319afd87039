"""Samplers shared by training and evaluation (ARCHITECTURE.md's ``vaekit.inference`` layer).

* :mod:`vaekit.inference.svgd` — Stein variational gradient descent (Liu & Wang 2016), batched over
  examples, used by the Stein VAE (Pu et al. 2017).

HMC, used by AIS, still lives in :mod:`vaekit.evaluation.hmc`.
"""

from .svgd import median_bandwidth, rbf_kernel, run_svgd, svgd_direction

__all__ = ["svgd_direction", "run_svgd", "rbf_kernel", "median_bandwidth"]
