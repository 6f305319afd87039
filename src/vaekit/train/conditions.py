"""The conditions a conditional model is trained and evaluated with, formed from the data's rows.

A :class:`~vaekit.models.ConditionalVAE` takes its condition as keyword arguments (``label=y``, or
``mask=m, observed=x``). ``vaekit train`` forms them for every batch from what the data set holds:

* ``model.condition: {type: label, n_classes: K}`` — the batch's class labels (the data set's ``y``);
* ``model.condition: {type: mask, observe: quadrant1}`` — the named region of every image observed
  (:func:`vaekit.data.make_mask`) and the image itself as ``observed``: the model learns to complete the
  rest (Sohn et al. 2015's structured output prediction), and its bounds are conditional log-likelihoods of
  the hidden pixels;
* ``{type: tensor}`` conditions are not formed from the data set: a user's own loop passes ``c``.

Models without a ``condition`` (every unconditional model, and M2, whose label is a latent) get no keyword
arguments, so the loop's hot path is unchanged for them.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from torch import Tensor, nn

__all__ = ["Conditions", "data_conditions", "condition_kwargs"]

#: ``(x, y) -> keyword arguments`` for a batch: ``x`` the batch's rows (as trained on), ``y`` their labels or None
Conditions = Callable[[Tensor, "Tensor | None"], dict[str, Any]]


def condition_kwargs(conditions: Conditions | None, x: Tensor, y: Tensor | None = None,
                     rows: slice = slice(None)) -> dict[str, Any]:
    """The keyword arguments of ``x[rows]`` (labels ``y[rows]``) for a conditional model; ``{}`` when
    ``conditions`` is None (a model without a condition), so callers pass ``**condition_kwargs(...)`` always."""
    if conditions is None:
        return {}
    return conditions(x[rows], None if y is None else y[rows])


def data_conditions(model: nn.Module, image_shape: Sequence[int] | None = None, *,
                    has_labels: bool = True, data_name: str = "the data set") -> Conditions | None:
    """How ``model``'s condition is formed from a batch, or None for a model that takes none.

    Called before training, so a condition the data cannot supply fails before the first step.

    Args:
        model: any model; only one with a ``condition`` (a :class:`vaekit.models.conditions.Condition`) gets a
            function.
        image_shape: ``(C, H, W)`` of one row, for a mask condition (None: not image data).
        has_labels: whether every split of the data set has labels.
        data_name: the data set's name, for messages.

    Raises:
        ConditionError: a label condition on a data set without labels; a mask condition without
            ``observe``, with an unknown mask name, or on data that are not images of the model's width;
            a tensor condition (named, with what to do instead).
    """
    from ..models.conditions import Condition, ConditionError, LabelCondition, MaskCondition

    from ..models.m2 import M2

    cond = getattr(model, "condition", None)
    if not isinstance(cond, Condition) or isinstance(model, M2):
        # M2's label is a latent: its bounds are of log p(x), y summed out; a semi-supervised run passes the
        # kept labels to its objective itself (vaekit.train.data.SemiSupervised)
        return None
    if isinstance(cond, LabelCondition):
        if not has_labels:
            raise ConditionError(f"model.condition: {{type: label}} needs class labels, but {data_name} has none; "
                                 "use a labelled data set (digits, mnist, fashion_mnist, ...) or an unconditional model")

        def labels(x: Tensor, y: Tensor | None) -> dict[str, Any]:
            if y is None:
                raise ConditionError(f"{type(model).__name__} is conditioned on the label, and these rows have none")
            return {"label": y}
        return labels
    if isinstance(cond, MaskCondition):
        from ..data import MASKS, make_mask

        if cond.observe is None:
            raise ConditionError("model.condition.observe: a mask-conditioned model trained by vaekit train needs the "
                                 f"region it sees, one of {', '.join(MASKS)} (e.g. {{type: mask, observe: quadrant1}})")
        if image_shape is None or len(image_shape) != 3:
            raise ConditionError(f"model.condition: {{type: mask}} completes images, but {data_name} is not image "
                                 "data")
        try:
            mask = make_mask(cond.observe, image_shape)
        except ValueError as e:
            raise ConditionError(f"model.condition.observe: {e}") from None
        if mask.numel() != cond.data_dim:
            raise ConditionError(f"model.condition.observe: a mask of {mask.numel()} pixels for a model of "
                                 f"{cond.data_dim}")

        def masked(x: Tensor, y: Tensor | None) -> dict[str, Any]:
            return {"mask": mask.to(x.device), "observed": x}
        return masked
    kind = {"TensorCondition": "tensor"}.get(type(cond).__name__, type(cond).__name__)
    raise ConditionError(f"model.condition: {{type: {kind}}} is not formed from the data by vaekit train (label and "
                         "mask conditions are); pass c=... from your own training loop")
