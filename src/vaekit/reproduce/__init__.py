"""Paper reproductions, all run by one runner: ``vaekit reproduce NAME [--budget small|paper] [--runs ...]``.

:mod:`vaekit.reproduce.runner` holds the shared training call, evaluation call, per-run result cache and
result writer; each reproduction module (``iwae``, ``latents``, ``evaluation``) declares only its runs,
budgets, paper numbers and tables. :data:`REPRODUCTIONS` maps names to modules.
:func:`reproduce_all` (``vaekit reproduce --all``) runs them all at one budget and writes the dashboard
(``docs/results/README.md``, :mod:`vaekit.reproduce.dashboard`).
"""

from __future__ import annotations

from .dashboard import reproduce_all
from .runner import REPRODUCTIONS, Budget, EvalSettings, Report, Reproduction, RunSpec, get_reproduction, reproduce

__all__ = ["REPRODUCTIONS", "get_reproduction", "reproduce", "Reproduction", "Budget", "EvalSettings", "RunSpec",
           "Report", "reproduce_all"]
