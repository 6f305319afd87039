"""Learning-rate schedules: stateless maps from the epoch to a multiplier of the base learning rate.

A schedule is a pure function of the epoch, so resuming needs only the epoch
counter (nothing to serialise, nothing to drift). Register new ones with
``@SCHEDULES.register("name")``; ``train.lr_schedule: {type: name, ...}`` picks one,
with its keys checked strictly by :func:`vaekit.registry.build`.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

import annotated_types as at

from ..registry import ConfigError, NonNegativeInt, Registry, build

__all__ = ["Schedule", "SCHEDULES", "build_schedule", "Constant", "Exponential", "MultiStep", "IWAESchedule"]


class Schedule(Protocol):
    def __call__(self, epoch: int) -> float:
        """Multiplier of the base learning rate during (0-based) ``epoch``."""
        ...


SCHEDULES: Registry[Schedule] = Registry("learning-rate schedule")


@SCHEDULES.register("constant")
class Constant:
    r"""``lr_e = lr`` for every epoch."""

    def __call__(self, epoch: int) -> float:
        return 1.0


@SCHEDULES.register("exponential")
class Exponential:
    r"""``lr_e = lr * gamma^e`` (decay once per epoch)."""

    def __init__(self, gamma: Annotated[float, at.Interval(gt=0, le=1)]) -> None:
        if not 0.0 < gamma <= 1.0:
            raise ConfigError(f"train.lr_schedule.gamma: must be in (0, 1], got {gamma}")
        self.gamma = gamma

    def __call__(self, epoch: int) -> float:
        return self.gamma ** epoch


@SCHEDULES.register("multistep")
class MultiStep:
    r"""``lr_e = lr * gamma^{#{m in milestones : m <= e}}``: the rate falls by ``gamma`` at each milestone epoch
    (0-based), the rule of ``torch.optim.lr_scheduler.MultiStepLR``, here as a pure function of the epoch so that
    a resumed run needs no scheduler state. E.g. ``{type: multistep, milestones: [40, 50], gamma: 0.3}`` trains at
    the full rate for 40 epochs and anneals over the last ones, which keeps the progress of a constant rate and
    lowers the noise of where the last iterate stops.

    Raises:
        ConfigError: ``gamma`` outside (0, 1], a negative milestone, or milestones not strictly increasing.
    """

    def __init__(self, milestones: list[NonNegativeInt], gamma: Annotated[float, at.Interval(gt=0, le=1)] = 0.1) -> None:
        if not 0.0 < gamma <= 1.0:
            raise ConfigError(f"train.lr_schedule.gamma: must be in (0, 1], got {gamma}")
        if any(m < 0 for m in milestones) or any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ConfigError(f"train.lr_schedule.milestones: must be increasing epochs >= 0, got {milestones}")
        self.milestones, self.gamma = list(milestones), gamma

    def __call__(self, epoch: int) -> float:
        return self.gamma ** sum(m <= epoch for m in self.milestones)


@SCHEDULES.register("iwae")
class IWAESchedule:
    r"""The schedule of Burda et al. (2015, arXiv:1509.00519, Sec. 5):

    .. math:: \text{stage } i = 0,\dots,S \text{ lasts } 3^i \text{ passes at } \mathrm{lr}\cdot 10^{-i/7}

    With ``max_stage = 7`` that is :math:`\sum_{i=0}^{7} 3^i = 3280` passes. Epochs past the
    last stage keep its rate. :meth:`total_epochs` gives the schedule's length.
    """

    def __init__(self, max_stage: NonNegativeInt = 7) -> None:
        if max_stage < 0:
            raise ConfigError(f"train.lr_schedule.max_stage: must be >= 0, got {max_stage}")
        self.max_stage = max_stage

    def stage(self, epoch: int) -> int:
        """The stage ``i`` with ``sum_{j<i} 3^j <= epoch < sum_{j<=i} 3^j`` (capped at ``max_stage``)."""
        i, end = 0, 1
        while epoch >= end and i < self.max_stage:
            i += 1
            end += 3 ** i
        return i

    def total_epochs(self) -> int:
        return sum(3 ** i for i in range(self.max_stage + 1))

    def __call__(self, epoch: int) -> float:
        return 10.0 ** (-self.stage(epoch) / 7.0)


def build_schedule(spec: dict[str, Any]) -> Schedule:
    """Build ``SCHEDULES[spec['type']]`` with the remaining keys checked against its signature."""
    return build(SCHEDULES, spec, "train.lr_schedule")
