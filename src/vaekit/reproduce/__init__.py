"""Paper reproductions (``vaekit reproduce NAME``): training sets, evaluation and result tables."""

from __future__ import annotations

from typing import Any

__all__ = ["PAPER_NLL", "reproduce_iwae", "train_run", "evaluate_run"]


def __getattr__(name: str) -> Any:
    # Lazy, so ``python -m vaekit.reproduce.iwae`` does not import the module twice (runpy warning).
    if name in __all__:
        from . import iwae

        return getattr(iwae, name)
    raise AttributeError(f"module 'vaekit.reproduce' has no attribute {name!r}")
