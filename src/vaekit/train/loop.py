r"""The training loop: single process, or DDP under ``torchrun``, with exact resume.

:func:`fit` trains a :class:`~vaekit.config.RunConfig`, or a model built by hand with its data, into a
run directory::

    RUN_DIR/config.json         the resolved config (``model: null`` for a model built by hand)
    RUN_DIR/metrics.jsonl       one record per log event (train every log_every steps and at epoch ends, val)
    RUN_DIR/tb/                 TensorBoard events
    RUN_DIR/checkpoints/        last.json + last-e*.safetensors, best.json + best-e*.safetensors
    RUN_DIR/plots/              written after training by :func:`vaekit.pipeline.finish_run`

Optimiser: Adam (Kingma & Ba 2014, arXiv:1412.6980) on the objective's loss,
learning rate ``lr * schedule(epoch)``, optional global-norm gradient clipping.

Random streams, all derived from ``cfg.seed`` (see :func:`~vaekit.train.seeding.derive_seed`):

* data order and dynamic binarisation of epoch ``e``: generators seeded from
  ``(seed, e)``, identical on every rank. Each rank binarises the whole *global*
  batch and keeps its shard, so the data stream does not depend on the number of
  processes: ``W`` ranks see exactly the batches one process sees, every one of them,
  and take as many steps. Shards of a batch ``W`` does not divide differ by one row
  and each rank's loss is weighted by its shard's size, so the averaged gradient is
  the global batch's (a rank left without rows joins the all-reduce with weight 0);
* latent noise of epoch ``e`` on rank ``r``: torch's global RNG reseeded from
  ``(seed, e, r)`` at the start of the epoch (rank offset as in nanoGPT).

Because every stream is a function of (seed, epoch, rank), resuming from the
end of epoch ``k`` reproduces the uninterrupted run bit for bit on CPU: the
checkpoint needs only parameters, Adam moments and counters (it also stores the
global RNG states, restored on resume, for user code that draws from them).

SIGINT (Ctrl-C) or SIGTERM stops training at the next batch boundary (all ranks at the
same one): ``last`` is written there with the batch reached and the binarisation and
noise streams' states, and :class:`TrainingInterrupted` names the resume command. A
single process resumes from it bit for bit too. A signal that lands after an epoch's last
batch waits for that epoch's validation (minutes on a large validation split), so that
``best`` is chosen as in an uninterrupted run. A second signal interrupts at once,
leaving the previous checkpoint. A non-finite loss or gradient is never stepped into
Adam (``train.nonfinite``), and a run that took no step is an error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from ..config import ConfigError, DataConfig, RunConfig, TrainConfig, to_dict
from .check import build_training, check_config
from .checkpoint import atomic_write_bytes, load_checkpoint, remove_stale_tmp, save_checkpoint
from .conditions import Conditions, condition_kwargs
from .data import (PreparedData, absolute_data_paths, check_data, load_data, prepare_data, prepare_given,
                   with_conditions, with_labels_kept)
from .ddp import DistInfo, collective_failure, init_distributed, shard
from .init import init_output_bias, init_weights
from ..progress import Progress
from .logging import RunLogger
from .outputs import OutputError, check_folder
from .seeding import derive_seed, seed_everything

__all__ = ["train_step", "fit", "FitResult", "TrainState", "ObjectiveModule", "resolve_device", "build_optimizer",
           "validate", "validate_objective", "selection_metric", "make_run_dir", "TrainingError", "TrainingInterrupted", "LostPeerError", "compiled_objective"]


class TrainingError(RuntimeError):
    """Training ran but did not do its job: the loss became non-finite (``train.nonfinite: stop``), or the
    run took no optimiser step at all. The run directory keeps its last good checkpoint."""


class LostPeerError(TrainingError):
    """Under DDP, a collective failed because another rank was lost: killed (its connection closed), or frozen
    or cut off for longer than ``train.ddp_timeout``. Every surviving rank raises it instead of waiting."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by SIGINT (Ctrl-C) or SIGTERM, after the checkpoint that resumes it was written.

    The message says where training stopped and how to resume; ``run_dir`` is the run directory.
    """

    def __init__(self, message: str, run_dir: Path) -> None:
        super().__init__(message)
        self.run_dir = run_dir

    def __str__(self) -> str:
        return str(self.args[0])


class _StopRequest:
    """SIGINT and SIGTERM during training, remembered and acted on at the next batch boundary.

    Acting at a boundary (not where the signal lands) keeps the parameters, the optimiser and the
    counters consistent for the checkpoint written then. The first signal puts the previous handlers
    back, so a second Ctrl-C interrupts at once (Python's KeyboardInterrupt). Handlers can only be set
    from the main thread; elsewhere signals keep their usual effect. A signal the process inherited as
    ignored (a job a shell started in the background, ``nohup``) stays ignored, the Unix convention that
    Python's own SIGINT handling follows too.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.agreed = False  #: every rank has seen a stop request (set by the step's all-reduce under DDP)
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def __exit__(self, *exc: object) -> None:
        self._restore()


# --------------------------------------------------------------------------------------------------
# the hot path
# --------------------------------------------------------------------------------------------------


def train_step(compute: Callable[[Tensor, int], tuple[Tensor, dict[str, Any]]], optimizer: torch.optim.Optimizer,
               x: Tensor, step: int, grad_clip: float | None = None, params: Iterable[Tensor] | None = None,
               loss_scale: float = 1.0, agree: Callable[[Tensor], Tensor] | None = None,
               cond: dict[str, Any] | None = None) -> dict[str, Any] | None:
    r"""One optimiser step on batch ``x``: ``loss, metrics = compute(x, step, **cond)``; backprop; clip; Adam.

    The step is taken only when the loss and the global gradient norm are finite: a NaN or infinite
    gradient would enter Adam's moment estimates and stay there, so the optimiser is then left
    untouched (its state, its step count and the parameters) and the gradients are dropped.

    Args:
        compute: ``(x, step) -> (scalar loss, metrics)``, usually an :class:`ObjectiveModule`
            (DDP-wrapped under torchrun, so its call also prepares the gradient all-reduce).
        optimizer: the optimiser over ``params``.
        x: ``(B, D)`` batch (this rank's shard).
        step: global step count before this step (objectives use it for warm-up).
        grad_clip: max global L2 norm of the gradient, or None.
        params: the parameters whose gradient is checked (and clipped); default: the optimiser's.
        loss_scale: multiplies the loss before backprop; DDP sets it to ``b_r W / B`` so that the
            average of the ranks' gradients equals the gradient of the global-batch mean when
            shards are unequal (0 for a rank whose shard is empty).
        agree: maps this process's verdict (a bool tensor, True = not finite) to the one every
            process acts on; under DDP the loop passes an all-reduce, so that all ranks skip alike
            (the gradients are already all-reduced, the losses are not).
        cond: a conditional model's keyword arguments for this batch (``label=...``; see
            :mod:`vaekit.train.conditions`), or None.

    Returns:
        the objective's metrics, still detached tensors, or None when the step was skipped as not
        finite. Checking finiteness costs one device sync per step.
    """
    loss, metrics = compute(x, step, **cond) if cond else compute(x, step)
    optimizer.zero_grad(set_to_none=True)
    (loss if loss_scale == 1.0 else loss * loss_scale).backward()
    params = list(params) if params is not None else [p for g in optimizer.param_groups for p in g["params"]]
    if grad_clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    bad = ~(torch.isfinite(loss.detach()) & torch.isfinite(norm))
    if agree is not None:
        bad = agree(bad)
    if bool(bad):
        optimizer.zero_grad(set_to_none=True)
        return None
    optimizer.step()
    return metrics


class ObjectiveModule(nn.Module):
    """``forward(x, step, **cond) = objective(model, x, step, **cond)`` (``cond``: a conditional model's keyword
    arguments; none for the others).

    Wrapping the objective (not the model) in DDP lets an objective call any
    protocol method (``forward``, ``log_weights``, ...) while DDP still sees one
    forward per step and all-reduces every parameter's gradient.
    """

    def __init__(self, model: nn.Module, objective: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x: Tensor, step: int, **cond: Any) -> tuple[Tensor, dict[str, Any]]:
        return self.objective(self.model, x, step, **cond)


def compiled_objective(compute: Callable[[Tensor, int], tuple[Tensor, dict[str, Any]]], mode: str = "reduce-overhead"
                       ) -> Callable[[Tensor, int], tuple[Tensor, dict[str, Any]]]:
    """``compute`` (an :class:`ObjectiveModule`, DDP-wrapped or not) through ``torch.compile(mode=mode)``, for
    :func:`train_step` (``train.compile``).

    The forward and its backward are compiled (the optimiser step stays eager: fused Adam is one kernel per
    parameter group already). With ``reduce-overhead`` they are replayed as CUDA graphs, which removes the
    per-kernel launch cost that bounds a small model's step on a GPU. A graph's outputs live in memory the
    next replay reuses, so each call first marks a new step (``torch.compiler.cudagraph_mark_step_begin``)
    and the metrics are copied out (the loop keeps them for a logging window). ``step`` is passed on as a
    Python int: an objective that ignores it adds no guard, one that uses it (warm-up) is recompiled once and
    then traced with a symbolic step.

    Args:
        compute: ``(x, step) -> (loss, metrics)``.
        mode: ``torch.compile``'s mode: ``default``, ``reduce-overhead`` or ``max-autotune``.

    Returns:
        a callable with ``compute``'s signature.

    Raises:
        ValueError: an unknown ``mode``.
    """
    if mode not in ("default", "reduce-overhead", "max-autotune"):
        raise ValueError(f"train.compile: expected 'off', 'default', 'reduce-overhead' or 'max-autotune', got {mode!r}")
    compiled = torch.compile(compute, mode=mode)
    graphs = mode != "default"

    def run(x: Tensor, step: int, **cond: Any) -> tuple[Tensor, dict[str, Any]]:
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        loss, metrics = compiled(x, step, **cond)
        if graphs:
            metrics = {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in metrics.items()}
        return loss, metrics

    return run


# --------------------------------------------------------------------------------------------------
# set-up
# --------------------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> cuda if available else cpu; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was requested but no CUDA device is available; use device=cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device: expected one of 'cpu', 'cuda', 'auto', got {name!r}")
    return torch.device(name)


def build_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Adam:
    """Adam with ``train.lr``, ``betas``, ``eps``, ``weight_decay`` (L2, as torch's ``Adam``).

    Uses torch's fused kernel where this torch build has it for the parameters' device (CPU since
    torch 2.4): the default for-each Adam loops over tensors and cost 4.4 ms of a 15 ms FM-MLP step,
    fused 1.2 ms. Falls back to the default implementation otherwise.
    """
    t = cfg.train
    kw = dict(lr=t.lr, betas=tuple(t.betas), eps=t.eps, weight_decay=t.weight_decay)
    params = list(model.parameters())
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype/torch version
        return torch.optim.Adam(params, **kw)


@torch.no_grad()
def validate(model: nn.Module, x: Tensor, batch_size: int, seed: int, y: Tensor | None = None,
             conditions: Conditions | None = None) -> dict[str, float]:
    r"""Mean ELBO, E_q[log p(x|z)] and KL over ``x`` with one posterior sample per example.

    .. math:: \mathcal L(x) = \mathbb E_{q(z|x)}[\log p(x|z)] - \mathrm{KL}(q(z|x)\|p(z))

    (analytic KL where registered). ``model(x, k=1)`` must return the protocol's output:
    ``log_likelihood`` ``(1, B)`` and ``kl`` ``(B,)``. Runs in eval mode under a forked RNG seeded
    with ``seed``: the same noise every epoch (a fair comparison for the best
    checkpoint), and training noise is untouched. A conditional model is scored given its condition,
    ``conditions(x_b, y_b)`` (:mod:`vaekit.train.conditions`; ``y`` the rows' labels).

    Returns:
        ``{"elbo", "log_likelihood", "kl"}``, means over the rows of ``x`` in nats.
    """
    was = model.training
    model.eval()
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    tot = {"elbo": 0.0, "log_likelihood": 0.0, "kl": 0.0}
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            sums = torch.zeros(3, dtype=torch.float64, device=x.device)
            for i in range(0, x.shape[0], batch_size):
                xb = x[i:i + batch_size]
                out = model(xb, k=1, **condition_kwargs(conditions, x, y, slice(i, i + batch_size)))
                ll, kl = out.log_likelihood.mean(0), out.kl  # (k, B) -> (B,); the protocol's KL is (B,)
                sums += torch.stack([(ll - kl).sum(), ll.sum(), kl.sum()]).double()
            vals = (sums / x.shape[0]).tolist()
    finally:
        model.train(was)
    tot.update(zip(tot, vals))
    return tot


def _row_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of the validation batches: slices of ``batch_size``, a last slice of one row merged into
    the one before (a batch statistic such as InfoVAE's MMD needs two rows)."""
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


@torch.no_grad()
def validate_objective(model: nn.Module, objective: Callable[..., Any], x: Tensor, batch_size: int, seed: int,
                       step: int, y: Tensor | None = None, conditions: Conditions | None = None) -> float:
    r"""The training objective's own value on ``x``, higher is better: what ``train.select_by: objective`` maximises.

    For each batch the objective is called as in training, ``loss, metrics = objective(model, x_b, step)``; the
    value is ``metrics[objective.value_metric]`` where the objective names one (an objective whose loss is a
    gradient surrogate, DReG, names its bound ``iwae_bound``), else ``-loss``: the ELBO for ``elbo`` (beta 1, no
    free bits), the beta-weighted ELBO, the IWAE bound :math:`\mathcal L_k`, or InfoVAE's
    :math:`\mathbb E_q\log p(x|z) - (1-lpha)\mathrm{KL} - (lpha+\lambda-1)\widehat{\mathrm{MMD}}^2`. Batches
    are weighted by their rows. ``step`` fixes a warm-up's weight (the loop passes the run's last step, so every
    epoch is scored by the objective training ends with). Runs in eval mode under a forked RNG seeded with
    ``seed``, as :func:`validate`. The objective is called outside training, so it must keep no state between
    calls (no registered objective does; a running baseline would be moved by the validation rows).

    Returns:
        the row-weighted mean, in the objective's units (nats for the bounds; an InfoVAE value mixes nats with
        a weighted MMD²).
    """
    key = getattr(objective, "value_metric", None)
    was = model.training
    model.eval()
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            total = torch.zeros((), dtype=torch.float64, device=x.device)
            for a, b in _row_bounds(x.shape[0], batch_size):
                cond = condition_kwargs(conditions, x, y, slice(a, b))
                loss, metrics = objective(model, x[a:b], step, **cond) if cond else objective(model, x[a:b], step)
                value = metrics[key] if key is not None else -loss
                total += value.double() * (b - a)
            return float(total / x.shape[0])
    finally:
        model.train(was)


def selection_metric(train: TrainConfig) -> str:
    """The name a run records for the metric that picks its ``best`` checkpoint: ``elbo``, or
    ``objective:<type>`` (``objective:infovae``) for ``train.select_by: objective``."""
    if train.select_by == "elbo":
        return "elbo"
    return f"objective:{train.objective.get('type', 'elbo')}"


def make_run_dir(cfg: RunConfig, info: DistInfo = DistInfo()) -> Path:
    """The run directory ``out_dir/run_name``, settled on rank 0 and shared with every rank.

    Without a ``run_name`` the name is ``<data>-<UTC time>-<4 hex digits>`` and rank 0 claims it by
    creating the folder (``mkdir`` fails if another run took the name first, and a new suffix is drawn),
    so runs started in the same second all get folders of their own. A ``run_name`` that already holds a
    run (its ``config.json``) is refused. ``out_dir`` is created and probed (:func:`check_folder`).

    Raises:
        ConfigError: ``run_name`` holds a run. OutputError: ``out_dir`` cannot take files. Under DDP every
            rank raises (the verdict is shared, so none is left waiting).
    """
    name, error = cfg.run_name, None
    if info.is_main:
        try:
            out = check_folder(Path(cfg.out_dir), "output")
            if name is None:
                stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
                while True:
                    name = f"{cfg.data.name}-{stamp}-{secrets.token_hex(2)}"
                    try:
                        (out / name).mkdir()
                        break
                    except FileExistsError:
                        continue
            elif (out / name / "config.json").exists():
                error = ConfigError(f"run_name: {out / name} already holds a run; resume it with --resume "
                                    f"{out / name} or choose another run_name")
        except OutputError as e:
            error = e
    if info.enabled:
        # Rank 0's name and verdict: a rank that looked after rank 0 had written config.json would otherwise
        # refuse a run that is its own.
        import torch.distributed as dist

        box = [name, None if error is None else (type(error).__name__, str(error), getattr(error, "path", None))]
        dist.broadcast_object_list(box, src=0)
        name, err = box
        if err is not None and error is None:
            kind, msg, path = err
            error = OutputError(msg, path) if kind == "OutputError" else ConfigError(msg)
    if error is not None:
        raise error
    return Path(cfg.out_dir) / name


# --------------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainState:
    """Counters saved with every checkpoint. ``epoch`` counts *completed* epochs."""

    epoch: int = 0
    step: int = 0  #: optimiser steps taken
    best_val_elbo: float | None = None  #: the validation ELBO of the best epoch (a diagnostic; not what selects it)
    best_epoch: int | None = None
    best_val: float | None = None  #: the selection metric's value at the best epoch
    select_by: str | None = None  #: the selection metric's name (:func:`selection_metric`)
    elapsed: float = 0.0
    skipped: int = 0  #: batches skipped for a non-finite loss or gradient (``train.nonfinite: skip``)
    batch: int = 0  #: batches of epoch ``epoch + 1`` done when a checkpoint was written mid-epoch (an interrupt)


@dataclass
class FitResult:
    """What :func:`fit` hands back (rank 0's view under DDP)."""

    run_dir: Path
    model: nn.Module
    data: PreparedData
    state: TrainState
    history: list[dict[str, Any]] = field(default_factory=list)
    images_per_second: float = float("nan")
    is_main: bool = True  #: False on the ranks other than 0 under DDP


def _state_extra(state: TrainState) -> dict[str, Any]:
    return {"best_val_elbo": state.best_val_elbo, "best_epoch": state.best_epoch, "best_val": state.best_val,
            "select_by": state.select_by, "elapsed": state.elapsed,
            "skipped_batches": state.skipped, "batch_in_epoch": state.batch}


def fit(model: RunConfig | nn.Module, data: Any = None, *, train: TrainConfig | None = None,
        seed: int | None = None, device: str | None = None, binarize: str | None = None,
        run_dir: str | Path | None = None, resume: bool = False, stop_after_epoch: int | None = None,
        tensorboard: bool = True, before_training: Callable[[nn.Module, PreparedData], None] | None = None
        ) -> FitResult:
    """Train a model into a run directory (created under ``out_dir`` unless ``run_dir`` is given).

    Two forms::

        fit(cfg, run_dir=None, resume=False, stop_after_epoch=None, tensorboard=True)
        fit(model, data, train=TrainConfig(...), seed=0, device="auto", binarize="none", run_dir=None, ...)

    The first checks ``cfg`` (:func:`~vaekit.train.check_config`, before any data are loaded), loads
    ``cfg.data``, builds ``cfg.model`` and trains it. The second trains a model you built: any
    ``nn.Module`` that the objective ``train.objective`` can score (the default ELBO calls
    ``model(x, k=...)`` and reads ``log_likelihood`` and ``kl`` of its output); its run directory records
    ``model: null``, so :func:`~vaekit.train.load_run` then needs the model passed in.

    Args:
        model: a :class:`~vaekit.config.RunConfig`, or the ``nn.Module`` to train.
        data: with a module: an ``(N, D)`` floating-point tensor of training rows (no validation, so no
            ``best`` checkpoint), a :class:`vaekit.data.Dataset` (e.g. from :func:`vaekit.data.load_dataset`;
            its validation split picks the ``best`` checkpoint) or a :class:`PreparedData`. None with a config.
        train: with a module: the optimisation settings (default ``TrainConfig()``).
        seed: with a module: seed of the data order, binarisation and latent noise (default 0).
        device: with a module: ``cpu``, ``cuda`` or ``auto`` (default ``auto``); the model is moved there.
        binarize: with a module: ``dynamic``, ``static`` or ``none`` (default ``none``), as ``data.binarize``.
        run_dir: the run directory; required with ``resume``.
        resume: continue from ``run_dir/checkpoints/last`` (model, Adam state, counters, RNG); pass the
            same model, data and settings (or the same config) as the interrupted call.
        stop_after_epoch: return after this many completed epochs (simulates an interrupted run;
            the schedule still refers to ``train.epochs``).
        tensorboard: also write TensorBoard events.
        before_training: called on every rank with the built model (in training mode) and the prepared
            data once everything is set up, before the first step (:func:`vaekit.pipeline.train_run` tries
            the end-of-training report there). It must leave the model, the RNGs and the data as they were;
            what it raises ends ``fit`` before training.

    Returns:
        a :class:`FitResult` (the trained model, the prepared data, counters, the logged history).

    Raises:
        TypeError: a config together with ``data``/``train``/``seed``/``device``/``binarize`` (they come
            from the config), a module without ``data``, or arguments of the wrong type.
        ConfigError: a bad config key, named by its dotted path, before any data are loaded.

    Under ``torchrun`` every rank calls this; rank 0 alone logs and checkpoints.
    """
    if isinstance(model, RunConfig):
        given = [k for k, v in (("data", data), ("train", train), ("seed", seed), ("device", device),
                                ("binarize", binarize)) if v is not None]
        if given:
            raise TypeError(f"fit(cfg, ...) takes the model, data and settings from cfg; do not also pass {given} "
                            "(give run_dir, resume, stop_after_epoch and tensorboard by keyword)")
        check_config(model)
        # a copy: the caller's config keeps its relative paths, the run directory records absolute ones
        cfg = dataclasses.replace(model, data=absolute_data_paths(model.data))
    elif isinstance(model, nn.Module):
        if data is None:
            raise TypeError("fit(model, data): give the training data (an (N, D) tensor, a vaekit.data.Dataset or "
                            "a PreparedData)")
        if train is not None and not isinstance(train, TrainConfig):
            raise TypeError(f"fit(model, data, train=...): expected a vaekit.config.TrainConfig, got "
                            f"{type(train).__name__}")
        cfg = RunConfig(model=None, train=train or TrainConfig(), seed=0 if seed is None else seed,
                        device=device or "auto")
    else:
        raise TypeError(f"fit expects a RunConfig or an nn.Module (a model speaking the protocol), got "
                        f"{type(model).__name__}")
    objective, schedule = build_training(cfg.train)
    dev = resolve_device(cfg.device)
    info = init_distributed(dev, cfg.train.ddp_timeout)
    if info.enabled and dev.type == "cuda":
        dev = torch.device("cuda", info.local_rank)

    # Where the run goes is settled before any data are loaded: a taken run_name or a folder that
    # cannot take files fails before the slow part.
    claimed = False
    if resume:
        if run_dir is None:
            raise ConfigError("resume needs the run directory")
        run_dir = Path(run_dir)
        if info.is_main:
            check_folder(run_dir / "checkpoints", "checkpoint")
            # what a writer killed mid-write left; this process is now the run directory's only writer
            remove_stale_tmp(run_dir)
            remove_stale_tmp(run_dir / "checkpoints")
    elif run_dir is not None:
        run_dir = Path(run_dir)
        if info.is_main:
            check_folder(run_dir.parent, "output")
    else:
        run_dir, claimed = make_run_dir(cfg, info), cfg.run_name is None
    try:
        prepared, net, optimizer, state, record, saved = _set_up(model, data, cfg, binarize, dev, run_dir, resume)
        if prepared.conditions is not None and not _takes_conditions(objective):
            raise ConfigError(f"train.objective.type: {cfg.train.objective.get('type', 'elbo')!r} cannot train a "
                              f"conditional model ({type(net).__name__} with model.condition): it does not pass the "
                              "condition on; use elbo or iwae")
        _check_semi_supervised(prepared, net, objective, cfg, info)
        if before_training is not None:
            before_training(net, prepared)
    except BaseException:
        if claimed and info.is_main:
            _remove_if_empty(run_dir)
        raise
    if info.is_main:
        check_folder(run_dir / "checkpoints", "checkpoint")
        check_folder(run_dir / "plots", "plots")
        # atomically: a run directory whose config.json is torn cannot be resumed or evaluated
        atomic_write_bytes(run_dir / "config.json", (json.dumps(to_dict(cfg), indent=2) + "\n").encode())
        _record_environment(run_dir, dev, info, state.step if resume else None)
        save_with_run = getattr(prepared.dataset, "save_with_run", None)
        if save_with_run is not None:  # what the data need to be read back (a text vocabulary)
            save_with_run(run_dir)
    try:
        return _loop(net, prepared, cfg, objective, schedule, optimizer, state, record, run_dir, dev, info, resume,
                     stop_after_epoch, tensorboard, saved)
    except RuntimeError as e:
        if not (info.enabled and collective_failure(e)) or isinstance(e, TrainingError):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LostPeerError(
            f"DDP: rank {info.rank} of {info.world_size} lost a peer ({first}): a worker was killed, froze or "
            f"its node went away, so every rank stops (a wait is bounded by train.ddp_timeout="
            f"{cfg.train.ddp_timeout:g} s); {run_dir / 'checkpoints'} keeps the last checkpoint; resume with: "
            f"torchrun ... vaekit train --resume {run_dir}") from e


def _check_semi_supervised(data: PreparedData, model: nn.Module, objective: Any, cfg: RunConfig,
                           info: DistInfo) -> None:
    """A semi-supervised run (``data.labels``) has M2's objective and a model with a classifier, and the other way
    round; fixes the objective's α at the paper's value when the config left it out (recorded in the config).

    Raises:
        ConfigError: naming the key at fault.
    """
    from ..objectives.conditional import M2Objective

    m2 = isinstance(objective, M2Objective)
    if data.semi is None:
        if m2:
            raise ConfigError("train.objective: {type: m2} trains on labelled and unlabelled rows: set data.labels "
                              "(how many training labels to keep, e.g. data.labels=100)")
        return
    if not m2:
        raise ConfigError(f"train.objective.type: data.labels={cfg.data.labels} makes a semi-supervised run, "
                          f"trained by {{type: m2}}; got {cfg.train.objective.get('type', 'elbo')!r}")
    if not callable(getattr(model, "classifier_logits", None)):
        raise ConfigError(f"model.type: a semi-supervised run needs a model with a classifier q(y|x) (m2), got "
                          f"{type(model).__name__}")
    if info.enabled:
        raise ConfigError("data.labels: semi-supervised runs are not sharded across DDP ranks (a rank's shard of a "
                          "batch could hold no labelled rows); train on one process")
    alpha = objective.bind(n_train=data.train.shape[0], n_labelled=len(data.semi.labelled))
    cfg.train.objective = {**cfg.train.objective, "alpha": alpha}


def _takes_conditions(objective: Callable[..., Any]) -> bool:
    """Whether ``objective(model, x, step, **cond)`` passes a condition on (its ``__call__`` takes ``**cond``)."""
    import inspect

    try:
        params = inspect.signature(objective).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _set_up(model: RunConfig | nn.Module, data: Any, cfg: RunConfig, binarize: str | None, dev: torch.device,
            run_dir: Path, resume: bool) -> tuple[PreparedData, nn.Module, torch.optim.Optimizer, TrainState,
                                                  dict[str, Any], dict[str, Tensor]]:
    """The data, the model, the optimiser, the counters of :func:`fit` (from the checkpoint when resuming) and
    the loop's saved random states (a checkpoint written mid-epoch)."""
    from ..models import build_model

    if isinstance(model, RunConfig):
        # The data come first: build_model needs their size. Same seed on every rank -> same initial weights.
        seed_everything(cfg.seed, 0)
        ds = load_data(cfg)
        _fill_model_fields(cfg, ds)
        net = build_model(cfg.model, data_dim=ds.dim, image_shape=ds.image_shape).to(dev)
        check_data(net, ds, cfg.data.name)  # before binarisation, so the error names the real problem
        prepared = prepare_data(cfg, dev, ds)
        raw_train = ds.train.x.to(dev)
    else:
        net = model.to(dev)
        prepared, name = prepare_given(data, binarize, cfg.seed, dev, model=net)
        cfg.data = DataConfig(name=name, binarize=binarize or ("dynamic" if prepared.dynamic else "none"))
        raw_train = prepared.train
    prepared = with_conditions(prepared, net, cfg.data.name)
    if cfg.data.labels is not None:
        prepared = with_labels_kept(prepared, cfg.data.labels, cfg.data.labelled_batch, cfg.seed, repr(cfg.data.name))
    if prepared.train.shape[0] == 0:
        raise ConfigError(f"data: the training split of {cfg.data.name!r} is empty (data.val_size="
                          f"{cfg.data.val_size}); nothing to train on")
    if cfg.train.init_weights != "default" and not resume:
        init_weights(net, cfg.train.init_weights)
    if cfg.train.init_output_bias and not resume:
        try:
            init_output_bias(net, raw_train)
        except ValueError as e:  # a conv output layer has one bias per channel, not per pixel
            raise ConfigError(f"train.init_output_bias: {e}; set train.init_output_bias=false for this "
                              "model") from e
    optimizer = build_optimizer(net, cfg)
    record = {"model_spec": cfg.model, "data_dim": prepared.dim, "image_shape": prepared.image_shape}
    state, saved = TrainState(), {}
    if resume:
        meta = load_checkpoint(run_dir / "checkpoints", "last", net, optimizer, restore_rng=True,
                               map_location=dev)
        ex = meta.get("extra", {})
        state = TrainState(epoch=meta["epoch"], step=meta["step"], best_val_elbo=ex.get("best_val_elbo"),
                           best_epoch=ex.get("best_epoch"), elapsed=float(ex.get("elapsed", 0.0)),
                           skipped=int(ex.get("skipped_batches", 0)), batch=int(ex.get("batch_in_epoch", 0)),
                           best_val=ex.get("best_val", ex.get("best_val_elbo")), select_by=ex.get("select_by"))
        if state.best_epoch is not None and (state.select_by or "elbo") != selection_metric(cfg.train):
            # a checkpoint from before issue 17 (selected by the ELBO) or another train.select_by: its best value
            # is not comparable, so the next validation writes a new best checkpoint
            state.best_val = None
        saved = meta["extra_tensors"]
        need = state.epoch + (1 if state.batch else 0)
        if cfg.train.epochs < need:
            # refused before config.json is written, so the run directory still describes the run it holds
            part = f" and {state.batch} batches of epoch {state.epoch + 1}" if state.batch else ""
            raise ConfigError(f"train.epochs: {cfg.train.epochs}, but {run_dir} has trained {state.epoch} epochs"
                              f"{part}; resume with train.epochs >= {need} (the run directory is unchanged)")
    return prepared, net, optimizer, state, record, saved


def _fill_model_fields(cfg: RunConfig, ds: Any) -> None:
    """Set the model keys the data decide (a text data set's ``vocab_size``, ``num_classes``: its
    ``model_fields``) in ``cfg.model`` where the model's builder takes them and the config leaves them out.

    Raises:
        ConfigError: the config gives such a key a different value, naming ``model.<key>``.
    """
    import inspect

    from ..models import MODELS

    fields = getattr(ds, "model_fields", None) or {}
    if not fields or cfg.model is None or cfg.model.get("type") not in MODELS:
        return
    params = inspect.signature(MODELS.get(cfg.model["type"], "model")).parameters
    for key, value in fields.items():
        if key not in params:
            continue
        given = cfg.model.get(key)
        if given is None:
            cfg.model = {**cfg.model, key: value}
        elif given != value:
            raise ConfigError(f"model.{key}: {given!r}, but data set {cfg.data.name!r} gives {value!r} "
                              f"(leave model.{key} out to take it from the data)")


def _record_environment(run_dir: Path, device: torch.device, info: DistInfo, resumed_at: int | None) -> None:
    """Append this ``fit`` call's environment (:func:`vaekit.environment.environment`: versions, device, commit)
    to ``run_dir/environment.json``, a JSON list rewritten atomically; ``vaekit report`` shows it. A file
    that is not such a list (edited, or torn by an older writer) is set aside with a warning, not trusted."""
    import warnings

    from ..environment import environment

    path = run_dir / "environment.json"
    entries: list[Any] = []
    if path.exists():
        try:
            entries = json.loads(path.read_text())
            if not isinstance(entries, list):
                raise ValueError("not a JSON list")
        except (OSError, ValueError) as e:
            warnings.warn(f"{path}: {e}; starting a new record", stacklevel=3)
            entries = []
    rec = environment(device)
    rec.update({"ranks": info.world_size, "resumed_at_step": resumed_at})
    atomic_write_bytes(path, (json.dumps([*entries, rec], indent=1) + "\n").encode())


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` and its sub-folders if no file was written into them (a run that failed in set-up)."""
    for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True) + [folder]:
        try:
            sub.rmdir()
        except OSError:  # not empty (or a file): keep what is there
            return


def _loop(model: nn.Module, data: PreparedData, cfg: RunConfig, objective: Callable[..., Any],
          schedule: Callable[[int], float], optimizer: torch.optim.Optimizer, state: TrainState,
          record: dict[str, Any], run_dir: Path, device: torch.device, info: DistInfo, resume: bool,
          stop_after_epoch: int | None, tensorboard: bool, saved: dict[str, Tensor]) -> FitResult:
    """The epochs of :func:`fit` from ``state`` on: train, log, validate, checkpoint (with ``record``'s fields).

    ``saved`` holds the loop's random states of a checkpoint written mid-epoch (``state.batch > 0``): the
    epoch resumes after its first ``state.batch`` batches with the binarisation stream and (rank 0's)
    latent noise stream where they were, so a single process continues bit for bit. Under DDP the other
    ranks' noise streams were not saved; they restart from a seed of (seed, epoch, rank, batch).
    """
    t = cfg.train
    module = ObjectiveModule(model, objective)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        compute = DDP(module, device_ids=[info.local_rank] if device.type == "cuda" else None)
    else:
        compute = module
    if t.compile != "off":
        compute = compiled_objective(compute, t.compile)
    params = [p for p in model.parameters() if p.requires_grad]
    stop = _StopRequest()
    agree = _agree_across_ranks(stop) if info.enabled else None
    logger = RunLogger(run_dir, purge_step=state.step if resume else None, tensorboard=tensorboard) \
        if info.is_main else None

    from ..data import batch_indices, dynamic_binarize

    n = data.train.shape[0]
    semi = data.semi
    train_y = semi.train_y if semi is not None else data.train_y if data.conditions is not None else None
    steps_per_epoch = semi.steps(t.batch_size) if semi is not None else math.ceil(n / t.batch_size)
    total_epochs = t.epochs if stop_after_epoch is None else min(t.epochs, stop_after_epoch)
    bar = Progress(steps_per_epoch * t.epochs, "training", "steps", initial=state.step + state.skipped,
                   enabled=info.is_main,
                   cost=f"{t.epochs} epochs x {steps_per_epoch} steps of batch {t.batch_size} ({n} training rows"
                        + (f", {info.world_size} ranks" if info.enabled else "") + ")"
                        + (f", resumed after step {state.step + state.skipped}" if resume else ""))
    history: list[dict[str, Any]] = []
    cfg_dict = to_dict(cfg)
    t_start = time.perf_counter() - state.elapsed
    train_time, train_images = 0.0, 0
    seed_everything(cfg.seed, info.rank)
    saved_epoch = state.epoch if resume else None  # of the last "last" checkpoint, for messages

    def save_last(extra_tensors: dict[str, Tensor] | None = None) -> None:
        if info.is_main:
            state.elapsed = time.perf_counter() - t_start
            save_checkpoint(run_dir / "checkpoints", "last", model, optimizer, epoch=state.epoch, step=state.step,
                            config=cfg_dict, extra=_state_extra(state), **record, extra_tensors=extra_tensors)

    def interrupted(where: str) -> TrainingInterrupted:
        name = signal.Signals(stop.signum).name if stop.signum is not None else "a signal on another rank"
        return TrainingInterrupted(f"{name} {where} (step {state.step}); saved {run_dir / 'checkpoints' / 'last.json'}"
                                   f"; resume with: vaekit train --resume {run_dir}", run_dir)

    model.train()
    try:
        with stop:
            for epoch in range(state.epoch, total_epochs):
                lr = t.lr * schedule(epoch)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                perm_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "order", epoch))
                bin_gen = torch.Generator(device=device).manual_seed(derive_seed(cfg.seed, "binarize", epoch))
                done = state.batch  # batches of this epoch a mid-epoch checkpoint had already taken
                if done:
                    bin_gen.set_state(saved["loop.binarize_rng"])
                    if info.is_main:
                        _set_noise_state(saved["loop.noise_rng"], device)
                    else:
                        torch.manual_seed(derive_seed(cfg.seed, "noise", epoch, info.rank, "after", done))
                else:
                    torch.manual_seed(derive_seed(cfg.seed, "noise", epoch, info.rank))
                window: list[dict[str, Any]] = []
                t_epoch = time.perf_counter()
                # a data set may order its own batches (text: length buckets), from the same seeded generator
                order = getattr(data.dataset, "batch_indices", None)
                batches = (semi.batches(t.batch_size, perm_gen) if semi is not None
                           else order(n, t.batch_size, perm_gen) if order is not None
                           else batch_indices(n, t.batch_size, perm_gen, shuffle=True))
                for i, idx in enumerate(batches):
                    if i < done:
                        continue
                    xb = data.train[idx.to(device)]
                    yb = train_y[idx.to(device)] if train_y is not None else None
                    if data.dynamic:
                        xb = dynamic_binarize(xb, bin_gen, check=False)
                    scale = 1.0
                    if info.enabled:
                        xb, scale, yb = _rank_shard(xb, info, yb)
                    cond = ({"label": yb} if semi is not None
                            else data.conditions(xb, yb) if data.conditions is not None else None)
                    metrics = train_step(compute, optimizer, xb, state.step, t.grad_clip, params, scale, agree, cond)
                    if not info.enabled:
                        stop.agreed = stop.signum is not None
                    if metrics is None:
                        state.skipped += 1
                        if t.nonfinite == "stop":
                            kept = (f"{run_dir / 'checkpoints'} keeps the checkpoint of epoch {saved_epoch}"
                                    if saved_epoch is not None else "no checkpoint had been written yet")
                            raise TrainingError(
                                f"train.nonfinite=stop: the loss or its gradient became NaN or infinite in epoch "
                                f"{epoch + 1} after {state.step} optimiser step(s); that step was not taken and "
                                f"{kept}. Lower train.lr, set train.grad_clip, or set train.nonfinite=skip to skip "
                                "such batches (they are counted)")
                    else:
                        window.append(metrics)
                        state.step += 1
                        if state.step % t.log_every == 0:
                            _log_window(logger, window, state, epoch, lr, t_start, history)
                            window = []
                    bar.update(1)
                    if stop.agreed and i + 1 < steps_per_epoch:
                        _log_window(logger, window, state, epoch, lr, t_start, history)
                        state.batch = i + 1
                        save_last({"loop.binarize_rng": bin_gen.get_state(),
                                   "loop.noise_rng": _noise_state(device)})
                        raise interrupted(f"in epoch {epoch + 1} after batch {i + 1} of {steps_per_epoch}")
                train_time += time.perf_counter() - t_epoch
                train_images += n if semi is None else semi.rows_per_epoch(t.batch_size)
                _log_window(logger, window, state, epoch, lr, t_start, history)
                state.epoch, state.batch = epoch + 1, 0
                final = state.epoch == t.epochs
                # validate on the run's own cadence (not at an early stop) so best.* matches an uninterrupted run
                # (a model whose posterior has no density, the Stein VAE, has no ELBO: no validation, best = last)
                if info.is_main and data.val is not None and getattr(model, "posterior_density", True) and \
                        (state.epoch % t.eval_every == 0 or final):
                    val = validate(model, data.val, cfg.eval.batch_size, derive_seed(cfg.seed, "validate"),
                                   data.val_y, data.conditions)
                    # the objective's value at the run's last step: a warm-up scores every epoch by its final weight
                    val["objective"] = validate_objective(model, objective, data.val, cfg.eval.batch_size,
                                                          derive_seed(cfg.seed, "validate"),
                                                          max(state.step, t.epochs * steps_per_epoch),
                                                          data.val_y, data.conditions)
                    from ..evaluation import classification_error

                    val_labels = getattr(getattr(data.dataset, "val", None), "y", None)
                    if callable(getattr(model, "classify", None)) and val_labels is not None:
                        val["error"] = classification_error(model, data.val, val_labels)["error"]
                    state.select_by = selection_metric(t)
                    score = val["elbo"] if t.select_by == "elbo" else val["objective"]
                    rec = {"step": state.step, "epoch": state.epoch, "split": "val", **val,
                           "select_by": state.select_by, "lr": lr, "time": time.perf_counter() - t_start}
                    logger.log(rec)
                    history.append(rec)
                    if state.best_val is None or score > state.best_val:
                        state.best_val, state.best_val_elbo, state.best_epoch = score, val["elbo"], state.epoch
                        state.elapsed = time.perf_counter() - t_start
                        save_checkpoint(run_dir / "checkpoints", "best", model, None, epoch=state.epoch,
                                        step=state.step, config=cfg_dict, extra=_state_extra(state), **record,
                                        rng=False)
                    bar.set_postfix(val_elbo=f"{val['elbo']:.2f}", val_objective=f"{val['objective']:.2f}")
                if state.epoch % t.checkpoint_every == 0 or final or state.epoch == total_epochs or stop.agreed:
                    save_last()
                    saved_epoch = state.epoch
                if stop.agreed and state.epoch < total_epochs:
                    raise interrupted(f"at the end of epoch {state.epoch}")
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    if state.step == 0:
        raise TrainingError(
            f"the run took no optimiser step in {state.epoch} epoch(s)"
            + (f": all {state.skipped} batches had a non-finite loss or gradient (train.nonfinite=skip)"
               if state.skipped else f" ({n} training rows)") + f"; {run_dir} holds the untrained model")
    if info.enabled:
        # Every rank returns only once rank 0 has written the final checkpoint: a caller may read it
        # at once, and a rank that reached shutdown while rank 0 still validated or wrote tore down
        # gloo's connections under a live peer (SIGABRT, "terminate called without an active exception").
        import torch.distributed as dist

        dist.barrier()
    if stop.signum is not None:
        raise TrainingInterrupted(f"{signal.Signals(stop.signum).name} after the last epoch: training is complete "
                                  f"({run_dir}); evaluate it with: vaekit eval {run_dir}", run_dir)
    ips = train_images / train_time if train_time > 0 else float("nan")
    return FitResult(run_dir, model, data, state, history, ips, info.is_main)


def _noise_state(device: torch.device) -> Tensor:
    """The state of the generator the latent noise is drawn from on ``device``."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_noise_state(state: Tensor, device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def _agree_across_ranks(stop: _StopRequest) -> Callable[[Tensor], Tensor]:
    """The DDP ``agree`` of :func:`train_step`: one all-reduce (max) of this rank's non-finite verdict and of
    whether a stop was requested here, so that every rank skips, and stops, at the same batch."""
    import torch.distributed as dist

    def agree(bad: Tensor) -> Tensor:
        t = torch.stack([bad.to(torch.int32).reshape(()),
                         torch.tensor(int(stop.signum is not None), dtype=torch.int32, device=bad.device)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        stop.agreed = bool(t[1])
        return t[0] > 0

    return agree


def _rank_shard(xb: Tensor, info: DistInfo, yb: Tensor | None = None) -> tuple[Tensor, float, Tensor | None]:
    """This rank's rows of global batch ``xb``, its loss scale ``b_r W / B`` (see :func:`train_step`) and the
    same rows of the labels ``yb`` (None stays None).

    Shards are contiguous and differ in size by at most one (``torch.tensor_split``), larger first, so
    rank 0, which logs, always has a row. A rank left without rows (``B < W``) still has to join the
    gradient all-reduce, or the other ranks would wait forever: it scores the batch's first row with
    weight 0.
    """
    part = shard(xb, info)
    ypart = None if yb is None else shard(yb, info)
    if part.shape[0] == 0:
        return xb[:1], 0.0, None if yb is None else yb[:1]
    return part, part.shape[0] * info.world_size / xb.shape[0], ypart


def _log_window(logger: RunLogger | None, window: list[dict[str, Any]], state: TrainState, epoch: int, lr: float,
                t_start: float, history: list[dict[str, Any]]) -> None:
    """Average the window's metrics (one device sync) and log them on rank 0."""
    if logger is None or not window:
        return
    keys = [k for k, v in window[0].items() if torch.is_tensor(v)]
    means = torch.stack([torch.stack([m[k].float() for k in keys]) for m in window]).mean(0).tolist()
    rec: dict[str, Any] = {"step": state.step, "epoch": epoch + 1, "split": "train", **dict(zip(keys, means))}
    for k, v in window[-1].items():
        if not torch.is_tensor(v):
            rec[k] = v
    if state.skipped:
        rec["skipped"] = state.skipped
    rec.update({"lr": lr, "time": time.perf_counter() - t_start})
    logger.log(rec)
    history.append(rec)
