"""The evaluation splits exactly as the trainer saw them (fixed binarisation), for every post-training tool."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..config import RunConfig

__all__ = ["eval_data"]


def eval_data(cfg: RunConfig, split: str, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor | None, Any]:
    """The evaluation tensor of ``split`` as training saw it, its labels (or None), and the data set.

    ``val`` and ``test`` are binarised once with the run's fixed seeds (as :func:`vaekit.train.prepare_data`
    does during training); ``train`` under dynamic binarisation gets one fixed, seeded draw so that repeated
    evaluations agree.

    Raises:
        ValueError: ``split`` is not train/val/test, the run has no validation split, or ``cfg`` is the
            config of a model built by hand (``cfg.model`` None: ``fit(model, data)`` was given the data
            in memory, so they cannot be reloaded from the config).
    """
    from ..train import prepare_data
    from ..train.seeding import derive_seed

    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if cfg.model is None:
        raise ValueError("this run trained a model built by hand on data given in memory (model: null in its "
                         "config); its data cannot be reloaded: evaluate with "
                         "vaekit.pipeline.evaluate_model(model, x, ...)")
    data = prepare_data(cfg, torch.device(device))
    ds = data.dataset
    if split == "train":
        x = data.train
        if data.dynamic:
            from ..data import static_binarize

            x = static_binarize(x, derive_seed(cfg.seed, "binarize-fixed", "train-eval"))
        return x, ds.train.y, ds
    if split == "val":
        if data.val is None:
            raise ValueError(f"data set {cfg.data.name!r} has no validation split in this run (data.val_size=0)")
        return data.val, ds.val.y, ds
    return data.test, ds.test.y, ds
