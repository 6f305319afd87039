"""The pipeline around a model: evaluation data, post-training evaluation, plot selection (library, not CLI)."""

from .data import eval_data

__all__ = ["eval_data"]
