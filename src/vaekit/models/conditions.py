"""Conditions of a conditional model: what it needs as keyword arguments, checked, and embedded as features.

A condition turns the keyword arguments of the protocol's methods (``posterior(x, **cond)``, ``prior(**cond)``,
``sample(n, **cond)``, ...) into a feature tensor ``(B, dim)`` that the encoder, decoder and prior network read.
Three kinds (issue 13):

* :class:`LabelCondition` — ``label``: class indices ``(B,)`` (or one int for the whole batch), one-hot embedded;
* :class:`MaskCondition` — ``mask``: which pixels are observed, ``(D,)`` or ``(B, D)`` bool, and ``observed``:
  ``(B, D)`` images whose masked pixels are the observed values; embedded as ``[observed * mask, mask]``
  (``2 D`` features), so that a 0 pixel and a missing one differ;
* :class:`TensorCondition` — ``c``: any ``(B, dim)`` float tensor given with the data.

Every error names the condition, what was expected and what came.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConditionError(ValueError):
    """A condition is missing, unexpected, or of the wrong shape, type or range."""


class Condition(nn.Module):
    """Base class: ``names`` are the keyword arguments it needs; ``dim`` is the width of :meth:`embed`."""

    names: tuple[str, ...] = ()
    dim: int = 0
    description: str = ""

    def check(self, cond: dict[str, Any], owner: str) -> None:
        """Raise :class:`ConditionError` for a missing or unexpected keyword argument."""
        missing = [n for n in self.names if cond.get(n) is None]
        extra = sorted(set(cond) - set(self.names))
        if missing:
            raise ConditionError(f"{owner} needs the condition {', '.join(repr(n) for n in missing)} "
                                 f"({self.description}); got {sorted(cond) or 'none'}")
        if extra:
            raise ConditionError(f"{owner} takes the condition(s) {list(self.names)}, not {extra}")

    def batch_size(self, cond: dict[str, Any]) -> int | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, batch: int | None, owner: str = "model", **cond: Any) -> Tensor:  # pragma: no cover - abstract
        """``(B, dim)`` features; ``batch`` is ``B`` when known from ``x`` (a scalar condition broadcasts to it)."""
        raise NotImplementedError

    def expand(self, n: int, cond: dict[str, Any]) -> dict[str, Any]:
        """The condition for ``n`` rows: a condition for one row (or a scalar) repeated ``n`` times."""
        return cond


class LabelCondition(Condition):
    """``label``: int64 class indices ``(B,)`` in ``[0, n_classes)``, or a Python int; one-hot embedded."""

    names = ("label",)

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        self.n_classes = self.dim = n_classes
        self.description = f"class indices in [0, {n_classes}), an int64 tensor (B,) or an int"
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # device/dtype of the embedding

    def labels(self, batch: int | None, owner: str, label: Any) -> Tensor:
        """The labels as an int64 tensor ``(B,)`` on the model's device, range-checked."""
        y = torch.as_tensor(label, device=self._anchor.device)
        if y.is_floating_point() or y.dtype == torch.bool:
            raise ConditionError(f"{owner}: label must hold integer class indices, got dtype {y.dtype}")
        if y.dim() == 0:
            y = y.expand(batch if batch is not None else 1)
        if y.dim() != 1 or (batch is not None and y.shape[0] != batch):
            raise ConditionError(f"{owner}: label must have shape ({batch if batch is not None else 'B'},), "
                                 f"got {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
            raise ConditionError(f"{owner}: label out of range: got values in [{int(y.min())}, {int(y.max())}], "
                                 f"the model has classes 0..{self.n_classes - 1}")
        return y.long()

    def batch_size(self, cond: dict[str, Any]) -> int | None:
        y = torch.as_tensor(cond["label"])
        return None if y.dim() == 0 else int(y.shape[0])

    def embed(self, batch: int | None, owner: str = "model", **cond: Any) -> Tensor:
        self.check(cond, owner)
        return F.one_hot(self.labels(batch, owner, cond["label"]), self.n_classes).to(self._anchor.dtype)

    def expand(self, n: int, cond: dict[str, Any]) -> dict[str, Any]:
        y = torch.as_tensor(cond["label"])
        return {"label": y.expand(n) if y.dim() == 0 or y.numel() == 1 else y}


class MaskCondition(Condition):
    """``mask`` (bool, ``(D,)`` or ``(B, D)``, True = observed) and ``observed`` (``(B, D)``): a partly seen image.

    Embedded as ``[observed * mask, mask]``. A model conditioned on a mask scores only the pixels the mask hides
    (Sohn et al. 2015's structured output prediction: y = the unobserved pixels, x = the observed ones).
    """

    names = ("mask", "observed")

    def __init__(self, data_dim: int, observe: str | None = None) -> None:
        super().__init__()
        self.data_dim = data_dim
        #: the name of the mask ``vaekit train`` trains and evaluates with (``quadrant1``, ``left``, ...; see
        #: :data:`vaekit.data.MASKS`), or None; a call may still pass any mask
        self.observe = observe
        self.dim = 2 * data_dim
        self.description = f"mask: bool (D,) or (B, D) with D = {data_dim}, True where observed; observed: (B, D) values"
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def mask(self, batch: int | None, owner: str, mask: Any) -> Tensor:
        """The mask as a bool tensor ``(B, D)`` (or ``(1, D)`` when ``batch`` is unknown), shape-checked."""
        m = torch.as_tensor(mask, device=self._anchor.device)
        if m.dtype != torch.bool:
            raise ConditionError(f"{owner}: mask must be a bool tensor (True = observed), got dtype {m.dtype}")
        if m.shape[-1:] != (self.data_dim,) or m.dim() > 2 or (m.dim() == 2 and batch is not None
                                                                and m.shape[0] not in (1, batch)):
            raise ConditionError(f"{owner}: mask must have shape ({self.data_dim},) or "
                                 f"({batch if batch is not None else 'B'}, {self.data_dim}), got {tuple(m.shape)}")
        m = m.view(-1, self.data_dim)
        return m.expand(batch, -1) if batch is not None else m

    def batch_size(self, cond: dict[str, Any]) -> int | None:
        return int(torch.as_tensor(cond["observed"]).shape[0])

    def embed(self, batch: int | None, owner: str = "model", **cond: Any) -> Tensor:
        self.check(cond, owner)
        obs = torch.as_tensor(cond["observed"], device=self._anchor.device)
        if obs.dim() != 2 or obs.shape[1] != self.data_dim or (batch is not None and obs.shape[0] != batch):
            raise ConditionError(f"{owner}: observed must have shape ({batch if batch is not None else 'B'}, "
                                 f"{self.data_dim}), got {tuple(obs.shape)}")
        m = self.mask(obs.shape[0], owner, cond["mask"]).to(obs.dtype)
        return torch.cat([obs * m, m], -1)

    def expand(self, n: int, cond: dict[str, Any]) -> dict[str, Any]:
        obs = torch.as_tensor(cond["observed"])
        m = torch.as_tensor(cond["mask"])
        if obs.dim() == 2 and obs.shape[0] == 1:
            obs = obs.expand(n, -1)
        if m.dim() == 2 and m.shape[0] == 1:
            m = m.expand(n, -1)
        return {"mask": m, "observed": obs}


class TensorCondition(Condition):
    """``c``: any float tensor ``(B, dim)`` given with the data (a one-row ``(1, dim)`` or ``(dim,)`` broadcasts)."""

    names = ("c",)

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"condition dim must be >= 1, got {dim}")
        self.dim = dim
        self.description = f"a float tensor (B, {dim})"
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def batch_size(self, cond: dict[str, Any]) -> int | None:
        c = torch.as_tensor(cond["c"])
        return None if c.dim() < 2 else int(c.shape[0])

    def embed(self, batch: int | None, owner: str = "model", **cond: Any) -> Tensor:
        self.check(cond, owner)
        c = torch.as_tensor(cond["c"], device=self._anchor.device)
        if not c.is_floating_point():
            raise ConditionError(f"{owner}: c must be a floating-point tensor, got dtype {c.dtype}")
        if c.dim() == 1:
            c = c.unsqueeze(0)
        if c.dim() != 2 or c.shape[1] != self.dim or (batch is not None and c.shape[0] not in (1, batch)):
            raise ConditionError(f"{owner}: c must have shape ({batch if batch is not None else 'B'}, {self.dim}), "
                                 f"got {tuple(c.shape)}")
        if batch is not None and c.shape[0] == 1:
            c = c.expand(batch, -1)
        return c.to(self._anchor.dtype)

    def expand(self, n: int, cond: dict[str, Any]) -> dict[str, Any]:
        c = torch.as_tensor(cond["c"])
        return {"c": c.reshape(1, -1).expand(n, -1) if c.dim() == 1 or c.shape[0] == 1 else c}


def build_condition(spec: dict[str, Any], data_dim: int) -> Condition:
    """``{type: label, n_classes: 10}``, ``{type: mask[, observe: quadrant1]}`` or ``{type: tensor, dim: 4}``.

    ``observe`` names the region a mask-conditioned model is trained to complete from when ``vaekit train``
    forms its conditions from the data (:func:`vaekit.train.conditions.data_conditions`).

    Raises:
        ConditionError: an unknown type or a bad key, naming it.
    """
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConditionError(f"model.condition: expected a mapping with a 'type' key (label, mask, tensor), got {spec!r}")
    kind, rest = spec["type"], {k: v for k, v in spec.items() if k != "type"}
    try:
        if kind == "label":
            return LabelCondition(**rest)
        if kind == "mask":
            return MaskCondition(data_dim, **rest)
        if kind == "tensor":
            return TensorCondition(**rest)
    except TypeError as e:
        raise ConditionError(f"model.condition: {e}") from None
    raise ConditionError(f"model.condition.type: unknown condition {kind!r}; choose label, mask or tensor")
