"""Evaluating a trained run: estimators on an evaluation split, ``eval.json``, the post-training report."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..train.outputs import OutputError, files_sha256, read_keyed, write_keyed
from .data import eval_data
from .plots import write_plots

__all__ = ["evaluate_model", "evaluate_run", "finish_run", "RunEvaluation"]


def evaluate_model(model: nn.Module, x: Tensor, spec: str, seed: int = 0, batch_size: int = 100,
                   progress: bool = False, y: Tensor | None = None, image_shape: Sequence[int] | None = None,
                   **opts: Any) -> dict[str, Any]:
    """Run the estimators of ``spec`` (e.g. ``"elbo,iwae:1000,ais:500"``) on the rows of ``x``, timed.

    Args:
        model: speaks the model protocol.
        x: ``(N, data_dim)`` rows, prepared as the model was trained on them.
        spec, seed, batch_size, progress, opts: as :func:`vaekit.evaluation.run_estimators` (``ais_chains``,
            ...); ``progress`` reports each estimator's cost, a time estimate and its progress on standard error.
        y, image_shape: the rows' labels and one row's ``(C, H, W)``: a conditional model is scored given the
            condition :func:`vaekit.train.conditions.data_conditions` forms from them (``log p(x | c)``, or the
            hidden pixels' conditional log-likelihood for a mask condition).

    Returns:
        ``{"estimates": {token: {"mean", "stderr", "n", "settings", "seconds", ...}}, "n": N, "seed",
        "spec", "seconds"}``; the means are per-example bounds/estimates of log p(x) in nats.

    Raises:
        what :func:`vaekit.evaluation.run_estimators` raises (a bad spec, data the model cannot score).
    """
    from ..evaluation import run_estimators
    from ..train.conditions import data_conditions

    conditions = data_conditions(model, image_shape, has_labels=y is not None, data_name="the evaluation rows")
    t0 = time.perf_counter()
    est = run_estimators(model, x, spec, seed=seed, batch_size=batch_size, progress=progress, y=y,
                         conditions=conditions, **opts)
    return {"estimates": est, "n": int(x.shape[0]), "seed": seed, "spec": spec, "seconds": time.perf_counter() - t0}


@dataclass
class RunEvaluation:
    """What :func:`evaluate_run` and :func:`finish_run` produced.

    Attributes:
        payload: the JSON for ``path``: ``run_dir``, ``checkpoint``, ``epoch``, ``step``, ``split``,
            ``binarize`` and :func:`evaluate_model`'s fields (plus ``bdmc`` when asked for).
        path: where the JSON goes (checked before the evaluation ran: see :func:`vaekit.train.plan_output`).
        plots: the PNGs written (:func:`finish_run` only).
        written: whether :meth:`write` has written it.
    """

    payload: dict[str, Any]
    path: Path
    plots: list[Path] = field(default_factory=list)
    written: bool = False
    #: the rest of the report, written after the JSON (finish_run: the metrics record and the plots)
    after: Callable[[], list[Path]] | None = field(default=None, repr=False, compare=False)
    #: the finished estimators saved during the evaluation (:func:`partial_path`), removed once the JSON is written
    partial: Path | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> str:
        """The payload as the indented JSON that :meth:`write` writes."""
        return json.dumps(self.payload, indent=2, default=float) + "\n"

    def write(self) -> "RunEvaluation":
        """Write the JSON to :attr:`path` atomically, then the rest of the report; returns ``self``.

        Raises:
            OutputError: naming the file that could not be written; its ``payload`` holds the results.
        """
        from ..train import write_output

        write_output(self.path, self.to_json(), self.payload)
        self.written = True
        if self.partial is not None:
            self.partial.unlink(missing_ok=True)
        if self.after is not None:
            self.plots = self.after()
        return self

    def summary(self) -> str:
        """A text report: the split and checkpoint, the estimates' table, the NLL read off the tightest
        lower bound, and the BDMC rows if any."""
        from ..evaluation import format_table

        p = self.payload
        est = p["estimates"]
        lines = [f"{p['split']} set ({p['n']} examples), {p['checkpoint']} checkpoint (epoch {p['epoch']}):",
                 format_table(est)]
        if est:
            tok = max(est, key=lambda k: est[k]["mean"])
            what = {None: "NLL", "label": "conditional NLL -log p(x|y)",
                    "mask": "conditional NLL of the hidden pixels, -log p(x_hidden|x_observed)"}
            of = {None: "log p(x)", "label": "log p(x|y)", "mask": "log p(x_hidden|x_observed)"}
            kind = (p.get("condition") or {}).get("type")
            lines.append(f"{what[kind]} {-est[tok]['mean']:.3f} nats (from {tok}, the largest estimate of {of[kind]}; "
                         "each is a lower bound in expectation)")
        if "classification_error" in p:
            c = p["classification_error"]
            lines.append(f"classification error {100 * c['error']:.2f} % ± {100 * c['se']:.2f} (binomial s.e., "
                         f"{c['n']} rows; the classifier q(y|x))")
        if "bdmc" in p:
            lines.append(f"BDMC on {p['bdmc']['settings']['n_simulated']} simulated examples (lower = forward AIS, upper = reverse AIS):")
            lines += [f"  T={r['T']:>6}  lower {r['lower']:.3f}  upper {r['upper']:.3f}  gap {r['gap']:.3f}"
                      for r in p["bdmc"]["rows"]]
        return "\n".join(lines)


def _open(run_dir: str | Path, checkpoint: str, device: str | None, data_dir: str | None,
          split: str | None) -> tuple[Any, str, Tensor, Tensor | None]:
    """Load the run's model and its evaluation split as training saw it: ``(run, split, x, y)``."""
    from ..train import load_run, resolve_device

    if device is None:
        from ..config import load_config_json

        device = load_config_json(Path(run_dir) / "config.json").device
    dev = resolve_device(device)
    run = load_run(run_dir, checkpoint, device=dev)
    if data_dir is not None:
        run.config.data.data_dir = data_dir
    split = split or run.config.eval.split
    x, y, _ = eval_data(run.config, split, dev)
    return run, split, x, y


def partial_path(path: Path) -> Path:
    """Where an evaluation that will write ``path`` keeps the estimators it has finished (``eval.partial.json``)."""
    return path.with_name(f"{path.stem}.partial{path.suffix or '.json'}")


def _partial_store(path: Path, key: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], Callable]:
    """The results an interrupted evaluation of the same ``key`` saved in ``path``, and the saver of new ones.

    A file of another key (another checkpoint, split, rows, seed or options) is ignored and replaced. A failed
    save is reported once and the evaluation goes on: the file only spares a rerun work, and the final JSON
    is what the evaluation is for.
    """
    held = read_keyed(path, key)
    done: dict[str, dict[str, Any]] = held if isinstance(held, dict) else {}
    saved = dict(done)
    warned = []

    def save(token: str, result: dict[str, Any]) -> None:
        saved[token] = result
        try:
            write_keyed(path, key, saved)
        except OutputError as e:
            if not warned:
                warned.append(True)
                print(f"warning: {e}; finished estimators will not survive an interruption", file=sys.stderr)

    return done, save


def _estimate(run: Any, split: str, x: Tensor, y: Tensor | None, spec: str | None, seed: int | None,
              batch_size: int | None, n: int | None, *, partial: Path, **opts: Any) -> dict[str, Any]:
    """The payload of ``eval.json`` for the first ``n`` rows of ``x`` (defaults from the run's ``eval`` config).

    Each estimator's result is saved to ``partial`` as it finishes and reused by a later call with the same
    checkpoint (by content), rows, seed and options, so an interrupted evaluation loses at most the estimator
    it was running.
    """
    ev = run.config.eval
    n = ev.n if n is None else n
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n is not None and n > x.shape[0]:
        raise ValueError(f"n is {n}, but the {split} split has {x.shape[0]} rows; use at most {x.shape[0]}")
    seed = ev.seed if seed is None else seed
    if y is not None:
        y = (y if n is None else y[:n]).to(x.device)
    key = {"run_dir": str(run.run_dir), "checkpoint": run.which,
           "checkpoint_sha256": files_sha256((Path(run.run_dir) / "checkpoints").glob(f"{run.which}.*")),
           "split": split, "n": int(x.shape[0] if n is None else n), "seed": seed,
           "batch_size": batch_size or ev.batch_size,
           "options": {k: v for k, v in sorted(opts.items()) if k.startswith("ais_")}}
    if callable(getattr(run.model, "evaluation_order", None)):
        key["row_order"] = "evaluation_order"  # batches by length: not the results of a row-order evaluation
    done, save = _partial_store(partial, key)
    res = evaluate_model(run.model, x if n is None else x[:n], spec or ev.estimators, seed,
                         batch_size or ev.batch_size, y=y, image_shape=run.image_shape, done=done, on_result=save,
                         **opts)  # opts: progress
    cond = (run.config.model or {}).get("condition")
    if isinstance(cond, dict) and cond.get("type") in ("label", "mask"):
        res["condition"] = dict(cond)  # the bounds are of log p(x | c): what the summary calls them
    if callable(getattr(run.model, "classify", None)) and y is not None:
        from ..evaluation import classification_error

        # M2 (Kingma et al. 2014): its bounds are of log p(x), y summed out; its classifier q(y|x) is scored here
        res["classification_error"] = classification_error(run.model, x if n is None else x[:n], y)
    return {"run_dir": str(run.run_dir), "checkpoint": run.which, "epoch": run.meta["epoch"],
            "step": run.meta["step"], "split": split, "binarize": run.config.data.binarize, **res}


def _run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path, refused unless it is a folder (before anything is planned inside it)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    return run_dir


def evaluate_run(run_dir: str | Path, *, checkpoint: str = "best", estimators: str | None = None,
                 split: str | None = None, n: int | None = None, seed: int | None = None,
                 batch_size: int | None = None, device: str = "cpu", data_dir: str | None = None,
                 ais_chains: int = 16, ais_leapfrog: int = 10, bdmc_T: Sequence[int] = (), bdmc_n: int = 16,
                 out: str | Path | None = None, overwrite: bool = False, write: bool = True,
                 progress: bool = True) -> RunEvaluation:
    """Evaluate a run directory's checkpoint with the estimators of ``estimators`` and write the JSON.

    The evaluation rows are ``split`` of the run's data exactly as training saw them
    (:func:`vaekit.pipeline.eval_data`). ``None`` takes the run's ``eval`` config (``estimators``,
    ``split``, ``n``, ``seed``, ``batch_size``). Where the JSON goes is settled and checked before any
    work (:func:`vaekit.train.plan_output`). Each estimator's result is saved beside it as it finishes
    (``eval.partial.json``, :func:`partial_path`): the same evaluation run again after an interruption
    reuses those results (the same numbers: each estimator seeds itself) and runs only the rest; the file is
    removed once the JSON is written. BDMC is not saved piecewise.

    Args:
        run_dir: a run directory written by :func:`vaekit.train.fit` from a config.
        checkpoint: ``best`` (falls back to ``last`` without a validation split) or ``last``.
        n: evaluate the first ``n`` rows.
        device: ``cpu``, ``cuda`` or ``auto``.
        data_dir: where the data set's files are, if not where training found them.
        ais_chains, ais_leapfrog: AIS chains per example and HMC leapfrog steps per transition.
        bdmc_T: AIS lengths for bidirectional Monte Carlo on ``bdmc_n`` examples simulated from the model (a
            conditional model: from p(x|c), with the conditions of the split's first ``bdmc_n`` rows)
            (Grosse et al. 2015; Wu et al. 2017); empty: no BDMC.
        out: the JSON path, or a folder for ``eval.json`` in it (default ``run_dir/eval.json``, or
            ``eval-2.json``, ... when that exists: an earlier evaluation is never replaced unasked).
        overwrite: replace the file ``out`` names if it exists (otherwise that is an error, raised first).
        write: write the JSON before returning; False leaves it to :meth:`RunEvaluation.write` (the command
            line prints the results first).
        progress: report every estimator's (and BDMC's) cost before it starts, a time estimate after a short
            pilot, and progress, on standard error (:mod:`vaekit.progress`).

    Raises:
        ValueError: ``n``, ``ais_chains``, ``ais_leapfrog``, ``bdmc_n`` or an entry of ``bdmc_T`` below 1, or
            a run of a model built by hand (its data are not in the run directory; evaluate it with
            :func:`evaluate_model`); and what :func:`vaekit.train.load_run` and :func:`evaluate_model` raise.
        OutputError: ``out`` exists or cannot be written (before the work), or the write failed (after it;
            the exception's ``payload`` holds the results).
    """
    from ..evaluation import parse_spec
    from ..train import plan_output

    if ais_chains < 1 or ais_leapfrog < 1:
        raise ValueError(f"ais_chains and ais_leapfrog must be >= 1, got {ais_chains}, {ais_leapfrog}")
    if bdmc_T and (min(bdmc_T) < 1 or bdmc_n < 1):
        raise ValueError(f"bdmc_T needs positive integers and bdmc_n >= 1, got {list(bdmc_T)}, {bdmc_n}")
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if estimators is not None:
        parse_spec(estimators)
    path = plan_output(out, _run_dir(run_dir) / "eval.json", overwrite=overwrite)
    run, split, x, y = _open(run_dir, checkpoint, device, data_dir, split)
    bdmc_cond: dict[str, Any] = {}
    if bdmc_T:
        from ..train.conditions import condition_kwargs, data_conditions

        conditions = data_conditions(run.model, run.image_shape, has_labels=y is not None, data_name=f"the {split} split")
        if conditions is not None and bdmc_n > x.shape[0]:
            raise ValueError(f"bdmc_n is {bdmc_n}, but the {split} split has {x.shape[0]} rows to take conditions from")
        # a conditional model: simulate from p(x|c) for the conditions of the split's first bdmc_n rows
        bdmc_cond = condition_kwargs(conditions, x, None if y is None else y.to(x.device), slice(0, bdmc_n))
    partial = partial_path(path)
    payload = _estimate(run, split, x, y, estimators, seed, batch_size, n, partial=partial, ais_chains=ais_chains,
                        ais_leapfrog=ais_leapfrog, progress=progress)
    if bdmc_T:
        from ..evaluation import run_bdmc

        payload["bdmc"] = run_bdmc(run.model, bdmc_n, list(bdmc_T), seed=payload["seed"], n_chains=ais_chains,
                                   leapfrog_steps=ais_leapfrog, progress=progress, cond=bdmc_cond)
        if bdmc_cond:
            payload["bdmc"]["settings"]["conditions"] = f"those of the first {bdmc_n} rows of the {split} split"
    ev = RunEvaluation(payload, path, partial=partial)
    return ev.write() if write else ev


def finish_run(run_dir: str | Path, device: str | None = None, plots: bool = True,
               write: bool = True, progress: bool = True) -> RunEvaluation:
    """The post-training report of a run: evaluate the ``best`` checkpoint on ``eval.split`` with the run's
    ``eval`` config, write ``eval.json``, append a metrics record (``split: <eval.split>``, one field per
    estimator) to ``metrics.jsonl``, and write the plots (:func:`vaekit.pipeline.write_plots`).

    ``eval.json`` never replaces an earlier one (a resumed run's report goes to ``eval-2.json``, ...);
    the plots are redrawn in place, since they show the run as it now is. The folders are checked
    before the evaluation runs.

    Args:
        run_dir: a run directory written by :func:`vaekit.train.fit` from a config.
        device: where to evaluate (None: the run's ``device``).
        plots: also write the plots.
        write: write the report before returning; False leaves it to :meth:`RunEvaluation.write`.
        progress: report the evaluation's cost, a time estimate and its progress on standard error.

    Raises:
        what :func:`evaluate_run` raises.
    """
    from ..train import RunLogger, check_folder, plan_output

    run_dir = _run_dir(run_dir)
    path = plan_output(None, run_dir / "eval.json")
    if plots:
        check_folder(run_dir / "plots", "plots")
    run, split, x, y = _open(run_dir, "best", device, None, None)
    partial = partial_path(path)
    payload = _estimate(run, split, x, y, None, None, None, None, partial=partial, progress=progress,
                        desc="final eval")
    rec: dict[str, Any] = {"step": run.meta["step"], "epoch": run.meta["epoch"], "split": split,
                           "checkpoint": run.which, "time": run.meta.get("extra", {}).get("elapsed")}
    rec.update({tok.replace(":", "_"): r["mean"] for tok, r in payload["estimates"].items()})

    def rest() -> list[Path]:
        try:
            with RunLogger(run.run_dir, tensorboard=False) as log:
                log.log(rec)
        except OSError as e:
            raise OutputError(f"could not append the evaluation to {run.run_dir / 'metrics.jsonl'}: "
                              f"{e.strerror or e} ({path} holds it)", run.run_dir / "metrics.jsonl", payload) from None
        if not plots:
            return []
        try:
            return write_plots(run.run_dir, run.model, x, y, run.image_shape, seed=run.config.eval.seed)
        except OSError as e:
            where = e.filename or run.run_dir / "plots"
            raise OutputError(f"could not write the plots ({where}): {e.strerror or e}; the evaluation is in {path}",
                              Path(where), payload) from None

    ev = RunEvaluation(payload, path, after=rest, partial=partial)
    return ev.write() if write else ev
