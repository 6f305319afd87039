r"""The training loop: single process, or DDP under ``torchrun``, with exact resume.

:func:`fit` trains a :class:`~vaekit.config.RunConfig` into a run directory::

    RUN_DIR/config.json         the resolved config
    RUN_DIR/metrics.jsonl       one record per log event (train every log_every steps and at epoch ends, val)
    RUN_DIR/tb/                 TensorBoard events
    RUN_DIR/checkpoints/        last.json + last-e*.safetensors, best.json + best-e*.safetensors
    RUN_DIR/plots/              written by the CLI after training

Optimiser: Adam (Kingma & Ba 2014, arXiv:1412.6980) on the objective's loss,
learning rate ``lr * schedule(epoch)``, optional global-norm gradient clipping.

Random streams, all derived from ``cfg.seed`` (see :func:`~vaekit.train.seeding.derive_seed`):

* data order and dynamic binarisation of epoch ``e``: generators seeded from
  ``(seed, e)``, identical on every rank. Each rank binarises the whole *global*
  batch and keeps its shard, so the data stream does not depend on the number of
  processes (``W`` ranks see exactly the batches one process sees);
* latent noise of epoch ``e`` on rank ``r``: torch's global RNG reseeded from
  ``(seed, e, r)`` at the start of the epoch (rank offset as in nanoGPT).

Because every stream is a function of (seed, epoch, rank), resuming from the
end of epoch ``k`` reproduces the uninterrupted run bit for bit on CPU: the
checkpoint needs only parameters, Adam moments and counters (it also stores the
global RNG states, restored on resume, for user code that draws from them).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from ..config import ConfigError, RunConfig, save_config_json, to_dict
from .checkpoint import load_checkpoint, save_checkpoint
from .ddp import DistInfo, init_distributed, shard
from .init import init_output_bias
from .logging import RunLogger, progress_enabled
from .schedules import build_schedule
from .seeding import derive_seed, seed_everything

__all__ = ["train_step", "fit", "FitResult", "TrainState", "ObjectiveModule", "resolve_device", "prepare_data",
           "load_data", "check_data", "PreparedData", "build_optimizer", "validate", "make_run_dir"]


# --------------------------------------------------------------------------------------------------
# the hot path
# --------------------------------------------------------------------------------------------------


def train_step(compute: Callable[[Tensor, int], tuple[Tensor, dict[str, Any]]], optimizer: torch.optim.Optimizer,
               x: Tensor, step: int, grad_clip: float | None = None, params: Iterable[Tensor] | None = None,
               loss_scale: float = 1.0) -> dict[str, Any]:
    r"""One optimiser step on batch ``x``: ``loss, metrics = compute(x, step)``; backprop; clip; Adam.

    Args:
        compute: ``(x, step) -> (scalar loss, metrics)``, usually an :class:`ObjectiveModule`
            (DDP-wrapped under torchrun, so its call also prepares the gradient all-reduce).
        optimizer: the optimiser over ``params``.
        x: ``(B, D)`` batch (this rank's shard).
        step: global step count before this step (objectives use it for warm-up).
        grad_clip: max global L2 norm of the gradient, or None.
        params: the parameters to clip (needed when ``grad_clip`` is set).
        loss_scale: multiplies the loss before backprop; DDP sets it to ``b_r W / B`` so that the
            average of the ranks' gradients equals the gradient of the global-batch mean when
            shards are unequal.

    Returns:
        the objective's metrics, still detached tensors (no device sync here).
    """
    loss, metrics = compute(x, step)
    optimizer.zero_grad(set_to_none=True)
    (loss if loss_scale == 1.0 else loss * loss_scale).backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return metrics


class ObjectiveModule(nn.Module):
    """``forward(x, step) = objective(model, x, step)``.

    Wrapping the objective (not the model) in DDP lets an objective call any
    protocol method (``forward``, ``log_weights``, ...) while DDP still sees one
    forward per step and all-reduces every parameter's gradient.
    """

    def __init__(self, model: nn.Module, objective: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x: Tensor, step: int) -> tuple[Tensor, dict[str, Any]]:
        return self.objective(self.model, x, step)


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


@dataclass
class PreparedData:
    """The data as the loop uses it: raw training intensities plus fixed evaluation tensors.

    ``val``/``test`` are binarised once (seeded) when ``data.binarize`` is not ``none``
    and the data set is not already binary, so validation numbers are comparable across epochs.
    """

    dataset: Any
    train: Tensor
    val: Tensor | None
    test: Tensor
    dynamic: bool


def _fixed(x: Tensor, binarize: str, already_binary: bool, seed: int) -> Tensor:
    from ..data import static_binarize

    if binarize == "none" or already_binary:
        return x
    return static_binarize(x, seed)


def load_data(cfg: RunConfig) -> Any:
    """Load ``cfg.data`` through :func:`vaekit.data.load_dataset` (the split is seeded with ``cfg.seed``)."""
    from ..data import load_dataset

    d = cfg.data
    return load_dataset(d.name, data_dir=d.data_dir, val_size=d.val_size, seed=cfg.seed, **d.options)


def check_data(model: nn.Module, dataset: Any, name: str) -> None:
    """``model.validate_input`` on every split (NaN, wrong width, values a likelihood cannot score)."""
    if not hasattr(model, "validate_input"):
        return
    for split in ("train", "val", "test"):
        s = getattr(dataset, split)
        if s is not None:
            model.validate_input(s.x, name=f"{name}.{split}")


def prepare_data(cfg: RunConfig, device: torch.device, dataset: Any = None) -> PreparedData:
    """Binarise (``data.binarize``) and move ``dataset`` (loaded from ``cfg.data`` if None) to ``device``."""
    d = cfg.data
    ds = load_data(cfg) if dataset is None else dataset
    seed = derive_seed(cfg.seed, "binarize-fixed")
    dynamic = d.binarize == "dynamic" and not ds.binary
    train = ds.train.x
    if dynamic:  # checked once here, so the per-batch draw skips it
        from ..data.base import check_unit_interval

        check_unit_interval(train, f"data set {d.name!r} (train split, data.binarize=dynamic)")
    if d.binarize == "static" and not ds.binary:
        train = _fixed(train, "static", False, derive_seed(seed, "train"))
    val = None if ds.val is None else _fixed(ds.val.x, d.binarize, ds.binary, derive_seed(seed, "val"))
    test = _fixed(ds.test.x, d.binarize, ds.binary, derive_seed(seed, "test"))
    return PreparedData(ds, train.to(device), None if val is None else val.to(device), test.to(device), dynamic)


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
def validate(model: nn.Module, x: Tensor, batch_size: int, seed: int) -> dict[str, float]:
    r"""Mean ELBO, E_q[log p(x|z)] and KL over ``x`` with one posterior sample per example.

    .. math:: \mathcal L(x) = \mathbb E_{q(z|x)}[\log p(x|z)] - \mathrm{KL}(q(z|x)\|p(z))

    (analytic KL where registered). Runs in eval mode under a forked RNG seeded
    with ``seed``: the same noise every epoch (a fair comparison for the best
    checkpoint), and training noise is untouched.
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
                out = model(x[i:i + batch_size], k=1)
                ll = out.log_likelihood.mean(0)
                kl = out.kl.mean(0) if out.kl.dim() == out.log_likelihood.dim() else out.kl
                sums += torch.stack([(ll - kl).sum(), ll.sum(), kl.sum()]).double()
            vals = (sums / x.shape[0]).tolist()
    finally:
        model.train(was)
    tot.update(zip(tot, vals))
    return tot


def make_run_dir(cfg: RunConfig, info: DistInfo = DistInfo()) -> Path:
    """``out_dir/run_name`` (default name ``<data>-<UTC time>``); refuses to reuse a directory that holds a run.

    Only names the directory: :func:`fit` creates it (rank 0), whether it was named here or passed in.
    """
    name = cfg.run_name or f"{cfg.data.name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    taken = (Path(cfg.out_dir) / name / "config.json").exists()
    if info.enabled:
        # Rank 0's name (ranks may disagree on the clock) and rank 0's verdict: a rank that looked
        # after rank 0 had written config.json would otherwise refuse a run that is its own.
        import torch.distributed as dist

        box = [name, taken]
        dist.broadcast_object_list(box, src=0)
        name, taken = box
    run_dir = Path(cfg.out_dir) / name
    if taken:  # the verdict is shared, so every rank stops and none hangs
        raise ConfigError(f"run_name: {run_dir} already holds a run; resume it with --resume {run_dir} "
                          "or choose another run_name")
    return run_dir


# --------------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainState:
    """Counters saved with every checkpoint. ``epoch`` counts *completed* epochs."""

    epoch: int = 0
    step: int = 0
    best_val_elbo: float | None = None
    best_epoch: int | None = None
    elapsed: float = 0.0


@dataclass
class FitResult:
    """What :func:`fit` hands back (rank 0's view under DDP)."""

    run_dir: Path
    model: nn.Module
    data: PreparedData
    state: TrainState
    history: list[dict[str, Any]] = field(default_factory=list)
    images_per_second: float = float("nan")


def _state_extra(state: TrainState, model: nn.Module, data: PreparedData) -> dict[str, Any]:
    return {"best_val_elbo": state.best_val_elbo, "best_epoch": state.best_epoch, "elapsed": state.elapsed,
            "data_dim": int(data.train.shape[1]),
            "image_shape": list(data.dataset.image_shape) if data.dataset.image_shape is not None else None}


def fit(cfg: RunConfig, run_dir: str | Path | None = None, resume: bool = False,
        stop_after_epoch: int | None = None, tensorboard: bool = True) -> FitResult:
    """Train ``cfg`` into a run directory (created under ``cfg.out_dir`` unless ``run_dir`` is given).

    Args:
        cfg: the run configuration.
        run_dir: the run directory; required with ``resume``.
        resume: continue from ``run_dir/checkpoints/last`` (model, Adam state, counters, RNG).
        stop_after_epoch: return after this many completed epochs (simulates an interrupted run;
            the schedule still refers to ``cfg.train.epochs``).
        tensorboard: also write TensorBoard events.

    Under ``torchrun`` every rank calls this; rank 0 alone logs and checkpoints.
    """
    from ..models import build_model
    from ..objectives import build_objective

    device = resolve_device(cfg.device)
    info = init_distributed(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    t = cfg.train

    # The data come first: build_model needs their size. Same seed on every rank -> same initial weights.
    seed_everything(cfg.seed, 0)
    ds = load_data(cfg)
    model = build_model(cfg.model, data_dim=ds.dim, image_shape=ds.image_shape).to(device)
    check_data(model, ds, cfg.data.name)  # before binarisation, so the error names the real problem
    data = prepare_data(cfg, device, ds)
    if t.init_output_bias and not resume:
        init_output_bias(model, ds.train.x.to(device))
    objective = build_objective(t.objective)
    schedule = build_schedule(t.lr_schedule)
    optimizer = build_optimizer(model, cfg)

    state = TrainState()
    if resume:
        if run_dir is None:
            raise ConfigError("resume needs the run directory")
        run_dir = Path(run_dir)
        meta = load_checkpoint(run_dir / "checkpoints", "last", model, optimizer, restore_rng=True,
                               map_location=device)
        ex = meta.get("extra", {})
        state = TrainState(epoch=meta["epoch"], step=meta["step"], best_val_elbo=ex.get("best_val_elbo"),
                           best_epoch=ex.get("best_epoch"), elapsed=float(ex.get("elapsed", 0.0)))
    else:
        run_dir = Path(run_dir) if run_dir is not None else make_run_dir(cfg, info)
        if info.is_main:
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            (run_dir / "plots").mkdir(exist_ok=True)
    if info.is_main:
        save_config_json(cfg, run_dir / "config.json")

    module = ObjectiveModule(model, objective)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        compute = DDP(module, device_ids=[info.local_rank] if device.type == "cuda" else None)
    else:
        compute = module
    params = [p for p in model.parameters() if p.requires_grad]
    logger = RunLogger(run_dir, purge_step=state.step if resume else None, tensorboard=tensorboard) \
        if info.is_main else None

    from ..data import batch_indices, dynamic_binarize

    n = data.train.shape[0]
    steps_per_epoch = math.ceil(n / t.batch_size)
    total_epochs = t.epochs if stop_after_epoch is None else min(t.epochs, stop_after_epoch)
    bar = None
    if progress_enabled(info.rank):
        from tqdm.auto import tqdm

        bar = tqdm(total=steps_per_epoch * t.epochs, initial=state.step, unit="step", dynamic_ncols=True)
    history: list[dict[str, Any]] = []
    cfg_dict = to_dict(cfg)
    t_start = time.perf_counter() - state.elapsed
    train_time, train_images = 0.0, 0
    seed_everything(cfg.seed, info.rank)
    model.train()
    try:
        for epoch in range(state.epoch, total_epochs):
            lr = t.lr * schedule(epoch)
            for g in optimizer.param_groups:
                g["lr"] = lr
            perm_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "order", epoch))
            bin_gen = torch.Generator(device=device).manual_seed(derive_seed(cfg.seed, "binarize", epoch))
            torch.manual_seed(derive_seed(cfg.seed, "noise", epoch, info.rank))
            window: list[dict[str, Any]] = []
            t_epoch = time.perf_counter()
            for idx in batch_indices(n, t.batch_size, perm_gen, shuffle=True):
                if info.enabled and idx.numel() < info.world_size:
                    continue  # a rank would get an empty shard; every rank skips it alike
                xb = data.train[idx.to(device)]
                if data.dynamic:
                    xb = dynamic_binarize(xb, bin_gen, check=False)
                scale = 1.0
                if info.enabled:
                    full = xb.shape[0]
                    xb = shard(xb, info)
                    scale = xb.shape[0] * info.world_size / full
                window.append(train_step(compute, optimizer, xb, state.step, t.grad_clip, params, scale))
                state.step += 1
                if state.step % t.log_every == 0:
                    _log_window(logger, window, state, epoch, lr, t_start, history)
                    window = []
                if bar is not None:
                    bar.update(1)
            train_time += time.perf_counter() - t_epoch
            train_images += n
            _log_window(logger, window, state, epoch, lr, t_start, history)
            state.epoch = epoch + 1
            final = state.epoch == t.epochs
            # validate on the run's own cadence (not at an early stop) so best.* matches an uninterrupted run
            if info.is_main and data.val is not None and (state.epoch % t.eval_every == 0 or final):
                val = validate(model, data.val, cfg.eval.batch_size, derive_seed(cfg.seed, "validate"))
                rec = {"step": state.step, "epoch": state.epoch, "split": "val", **val, "lr": lr,
                       "time": time.perf_counter() - t_start}
                logger.log(rec)
                history.append(rec)
                if state.best_val_elbo is None or val["elbo"] > state.best_val_elbo:
                    state.best_val_elbo, state.best_epoch = val["elbo"], state.epoch
                    state.elapsed = time.perf_counter() - t_start
                    save_checkpoint(run_dir / "checkpoints", "best", model, None, epoch=state.epoch,
                                    step=state.step, config=cfg_dict, extra=_state_extra(state, model, data),
                                    rng=False)
                if bar is not None:
                    bar.set_postfix(val_elbo=f"{val['elbo']:.2f}")
            if info.is_main and (state.epoch % t.checkpoint_every == 0 or final or state.epoch == total_epochs):
                state.elapsed = time.perf_counter() - t_start
                save_checkpoint(run_dir / "checkpoints", "last", model, optimizer, epoch=state.epoch,
                                step=state.step, config=cfg_dict, extra=_state_extra(state, model, data))
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()
    ips = train_images / train_time if train_time > 0 else float("nan")
    return FitResult(run_dir, model, data, state, history, ips)


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
    rec.update({"lr": lr, "time": time.perf_counter() - t_start})
    logger.log(rec)
    history.append(rec)
