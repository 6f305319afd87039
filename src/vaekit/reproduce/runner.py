"""The one runner behind ``vaekit reproduce NAME``: training, evaluation, caching and the result files.

A reproduction module (``vaekit.reproduce.iwae``, ``.latents``, ``.evaluation``) declares only what is
particular to its paper, as one :class:`Reproduction`: how a run name maps to a config file plus dotted
overrides (:class:`RunSpec`), its budgets (:class:`Budget`: epochs, evaluation settings, default runs),
an optional extra per-run measurement, and how the rows become its tables and claims (:class:`Report`).
Everything else lives here, once:

* **training** (:func:`train_or_resume`): :func:`vaekit.train.fit` in-process into ``OUT/<run>/``; a run
  directory with a ``last`` checkpoint is resumed (the trainer's resume is exact), a finished one is not
  touched; with a time budget training goes one epoch per ``fit`` call and stops once the budget is spent;
* **evaluation** (:func:`evaluate_checkpoint`): per-image ELBO, reconstruction term, KL and IWAE-k bound (nats) of
  the ``last`` checkpoint on the run's evaluation split as the trainer binarised it
  (:func:`vaekit.pipeline.eval_data`), batch ``j`` seeded with ``seed + j``, so two models evaluated with
  the same settings see the same images and seeds and their per-image differences have paired standard
  errors (:func:`paired`);
* **caching**: the evaluation (with the reproduction's extra measurement) is saved in
  ``OUT/<run>/eval/<settings>.json``, written atomically and keyed by the checkpoint's epoch and step
  and by every evaluation setting; re-running a finished set neither trains nor evaluates, it only
  re-assembles the tables;
* **writing** (:func:`write_results`): ``OUT/results.json`` and ``OUT/table.md``, and with ``write_doc``
  the reproduction's ``docs/results/<name>.md`` and ``.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..config import RunConfig, load_config, shipped_config
from ..evaluation import elbo_estimate, iwae_estimate
from ..pipeline import eval_data
from ..progress import Progress, progress_mode
from ..train import CheckpointError, LoadedRun, fit, load_run, read_checkpoint, resolve_device
from ..train.checkpoint import checkpoint_path
from ..train.outputs import OutputError, check_folder, refuse_to_drop, write_output

__all__ = ["REPRODUCTIONS", "get_reproduction", "RunSpec", "EvalSettings", "Budget", "Report", "Reproduction",
           "run_config", "train_or_resume", "evaluate_checkpoint", "per_image", "mean_se", "paired", "md_table",
           "write_results", "reproduce", "REPO_ROOT", "DOC_MARKER", "check_doc_replaceable"]

#: The repository root (configs and docs paths in the reproductions are relative to it).
REPO_ROOT = Path(__file__).resolve().parents[3]

#: Reproduction name -> module defining ``REPRODUCTION`` (what ``vaekit reproduce --help`` lists).
REPRODUCTIONS: dict[str, str] = {
    "iwae": "vaekit.reproduce.iwae",
    "latents": "vaekit.reproduce.latents",
    "evaluation": "vaekit.reproduce.evaluation",
}


def get_reproduction(name: str) -> "Reproduction":
    """The :class:`Reproduction` registered as ``name``; ``ValueError`` naming the available ones."""
    if name not in REPRODUCTIONS:
        raise ValueError(f"unknown reproduction {name!r}; available: {', '.join(REPRODUCTIONS)}")
    return importlib.import_module(REPRODUCTIONS[name]).REPRODUCTION


@dataclass(frozen=True)
class RunSpec:
    """One training run: a config file (``configs/...``, shipped inside the package, or absolute) and dotted
    overrides."""

    config: str
    overrides: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        """The config file: ``configs/NAME`` is the copy shipped in the package (an installed vaekit has no
        repository around it, and the current folder's ``configs/`` is not the reproduction's)."""
        p = Path(self.config)
        if p.is_absolute():
            return p
        return shipped_config(p) if p.parts[:1] == ("configs",) else REPO_ROOT / p


@dataclass(frozen=True)
class EvalSettings:
    """How every run of a budget is evaluated (all of it is part of the cache key).

    ``n``: the first ``n`` images of ``split`` (``None``: all); ``iwae_k``: importance samples of the
    IWAE bound; ``elbo_k``: posterior samples of the ELBO; batch ``j`` of ``batch_size`` images is
    seeded with ``seed + j``.
    """

    iwae_k: int
    elbo_k: int = 1
    n: int | None = None
    seed: int = 0
    batch_size: int = 100
    split: str = "test"

    def __post_init__(self) -> None:
        for name in ("iwae_k", "elbo_k", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be >= 1 or None (all images), got {self.n}")

    def describe(self) -> str:
        images = f"all {self.split} images" if self.n is None else f"the first {self.n:,} {self.split} images"
        return f"ELBO ({self.elbo_k} sample{'s' if self.elbo_k != 1 else ''}) and IWAE-{self.iwae_k} on {images}"


@dataclass(frozen=True)
class Budget:
    """Epochs per run, evaluation settings and the runs trained when ``--runs`` is not given.

    ``extra`` holds a reproduction's own settings (for its ``measure``); they are part of the cache key.
    """

    epochs: int
    eval: EvalSettings
    runs: tuple[str, ...]
    note: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")

    def describe(self) -> str:
        runs = f"{len(self.runs)} run{'s' if len(self.runs) != 1 else ''}"
        text = f"{self.epochs} epochs per run; {self.eval.describe()}; {runs}"
        return f"{text}; {self.note}" if self.note else text

    def as_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "eval": dataclasses.asdict(self.eval), "runs": list(self.runs),
                "extra": dict(self.extra), "description": self.describe()}


@dataclass(frozen=True)
class Report:
    """What a reproduction makes of its rows: the markdown (``table.md``/the doc) and JSON-ready extras."""

    markdown: str
    data: dict[str, Any] = field(default_factory=dict)


#: ``measure(run, x, values, budget) -> dict``: extra numbers for one run, cached with its evaluation.
#: ``x`` is the evaluated images, ``values`` the per-image tensors of :func:`evaluate_checkpoint` (``elbo``,
#: ``re``, ``kl``, ``iwae``).
Measure = Callable[[LoadedRun, Tensor, Mapping[str, Tensor], Budget], dict]


@dataclass(frozen=True)
class Reproduction:
    """A paper's reproduction, as declared by its module.

    ``run_spec(name)`` maps a run name to its :class:`RunSpec` (``ValueError``/``FileNotFoundError`` naming a
    bad one); ``report(rows, meta)`` turns the rows (one dict per run, per-image values included) into a
    :class:`Report`; ``doc`` is the results page ``--write-doc`` writes (``None``: written by hand).
    """

    name: str
    title: str
    budgets: Mapping[str, Budget]
    run_spec: Callable[[str], RunSpec]
    report: Callable[[list[dict], dict], Report]
    measure: Measure | None = None
    doc: str | None = None

    def budget(self, name: str) -> Budget:
        if name not in self.budgets:
            raise ValueError(f"reproduction {self.name!r} has no budget {name!r}; choose from {list(self.budgets)}")
        return self.budgets[name]


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def run_config(rep: Reproduction, name: str, epochs: int, out: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """The config of run ``name``: its file, then ``train.epochs``, ``out_dir`` and ``run_name``, then the run's
    own overrides, then ``overrides`` (so a run such as latents' ``vmf_d5_e30`` may fix its own epochs)."""
    spec = rep.run_spec(name)
    base = [f"train.epochs={epochs}", f"out_dir={out}", f"run_name={name}"]
    return load_config(spec.path, [*base, *spec.overrides, *overrides])


def _last_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The ``last`` checkpoint's metadata (``epoch``, ``step``, ``extra``), or ``None`` before the first epoch."""
    ckpt_dir = run_dir / "checkpoints"
    if not checkpoint_path(ckpt_dir, "last").is_file():
        return None
    return read_checkpoint(ckpt_dir, "last")[0]


def train_or_resume(cfg: RunConfig, run_dir: str | Path, max_seconds: float | None = None, tensorboard: bool = True,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``cfg`` to ``cfg.train.epochs`` into ``run_dir`` with :func:`vaekit.train.fit`, in-process.

    A run directory with a ``last`` checkpoint is resumed; a finished one is not trained again. With
    ``max_seconds``, training goes one epoch per ``fit`` call and stops before an epoch once that many
    seconds of this call have passed (it may overrun by one epoch; resume is exact, so the result equals an
    uninterrupted run of the same length).

    Returns ``{"epochs_done", "trained" (epochs trained by this call), "train_seconds" (cumulative)}``.

    Raises:
        ValueError: the run directory holds more epochs than ``cfg.train.epochs`` (use another output folder).
    """
    run_dir = Path(run_dir)
    meta = _last_checkpoint(run_dir)
    start = done = 0 if meta is None else int(meta["epoch"])
    if done > cfg.train.epochs:
        raise ValueError(f"{run_dir} holds {done} epochs, more than the {cfg.train.epochs} asked; "
                         "use another output folder or more epochs")
    if 0 < done < cfg.train.epochs:
        log(f"[{cfg.run_name}] resuming at epoch {done}")
    t0 = time.perf_counter()
    while done < cfg.train.epochs:
        if max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
            log(f"[{cfg.run_name}] time budget of {max_seconds:.0f} s spent after {done} epochs")
            break
        res = fit(cfg, run_dir=run_dir, resume=meta is not None or done > start, tensorboard=tensorboard,
                  stop_after_epoch=None if max_seconds is None else done + 1)
        done = res.state.epoch
        log(f"[{cfg.run_name}] {done}/{cfg.train.epochs} epochs, {time.perf_counter() - t0:.0f} s")
    if done > start:
        meta = _last_checkpoint(run_dir)
    seconds = 0.0 if meta is None else float(meta.get("extra", {}).get("elapsed", 0.0))
    return {"epochs_done": done, "trained": done - start, "train_seconds": seconds}


# --------------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def per_image(fn: Callable[[nn.Module, Tensor], Tensor], model: nn.Module, x: Tensor, seed: int,
              batch_size: int = 100, progress: str | None = None) -> Tensor:
    """``fn(model, batch)`` over ``x`` in batches, batch ``j`` under ``torch.manual_seed(seed + j)`` (the global
    RNG is restored), model in eval mode; the per-row values ``(N,)`` as float64 on the CPU.

    ``progress``: a label, to report progress in images on standard error (:class:`vaekit.progress.Progress`);
    None: silent."""
    was_training = model.training
    model.eval()
    vals = []
    try:
        with Progress(x.shape[0], progress or "", "images", enabled=progress is not None) as bar:
            for j, i in enumerate(range(0, x.shape[0], batch_size)):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed + j)
                    vals.append(fn(model, x[i:i + batch_size]).double().cpu())
                bar.update(min(batch_size, x.shape[0] - i))
    finally:
        model.train(was_training)
    return torch.cat(vals)


def mean_se(v: Tensor) -> dict[str, float]:
    """``{"mean", "se"}`` of per-image values ``(N,)``: the mean and its standard error over images (nan if N = 1)."""
    v = v.double()
    se = float(v.std(unbiased=True) / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")
    return {"mean": float(v.mean()), "se": se}


def paired(a: Mapping[str, Any], b: Mapping[str, Any], key: str) -> dict[str, float]:
    """Mean of ``a - b`` per image for the per-image values ``key`` of two evaluated rows, with its paired
    standard error over images (valid when both were evaluated with the same settings: same images, seeds)."""
    va = torch.as_tensor(a["per_image"][key], dtype=torch.float64)
    vb = torch.as_tensor(b["per_image"][key], dtype=torch.float64)
    if va.shape != vb.shape:
        raise ValueError(f"{key}: per-image values of different lengths ({va.numel()} and {vb.numel()}): "
                         "the rows were evaluated on different images")
    return mean_se(va - vb)


def _reconstruction(model: nn.Module, x: Tensor, k: int) -> Tensor:
    """``E_q log p(x|z)`` with ``k`` samples, ``(B,)``: the model output's log-likelihood, averaged over samples."""
    return model(x, k=k).log_likelihood.mean(0)


def _cache_file(run_dir: Path, settings: Mapping[str, Any]) -> Path:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    ev = settings["eval"]
    return run_dir / "eval" / f"{ev['split']}_n{ev['n'] or 'all'}_k{ev['iwae_k']}_{digest}.json"


def evaluate_checkpoint(run_dir: str | Path, budget: Budget, measure: Measure | None = None,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    r"""Evaluate the ``last`` checkpoint of ``run_dir`` with ``budget.eval``; cached per checkpoint and settings.

    Per image of the first ``n`` images of the split, as the trainer binarised them, all in nats:

    * ``elbo``: :math:`\mathbb E_q[\log p(x|z)] - \mathrm{KL}(q\|p)` with ``elbo_k`` samples (analytic KL where
      the family registers one; Kingma & Welling 2013, arXiv:1312.6114), :func:`vaekit.evaluation.elbo_estimate`;
    * ``re``: the reconstruction term :math:`\mathbb E_q[\log p(x|z)]` on the same samples, and ``kl = re - elbo``;
    * ``iwae``: :math:`\mathcal L_k = \mathbb E\log\frac1k\sum_i p(x,z_i)/q(z_i|x)` with ``k = iwae_k``
      (Burda et al. 2015, arXiv:1509.00519), a lower bound on :math:`\log p(x)`.

    Returns ``{"checkpoint": {"epoch", "step"}, "settings", "n", "elbo"/"re"/"kl"/"iwae"/"gap": {"mean", "se"},
    "seconds": {"elbo", "iwae"}, "per_image": {"elbo", "re", "kl", "iwae": lists of N floats}, **measure(...)}``
    (``gap`` = IWAE − ELBO). A saved result for the same checkpoint and settings (``run_dir/eval/*.json``) is
    returned without loading the model; a new result is saved there atomically.

    Raises:
        vaekit.train.CheckpointError: the run directory has no (valid) ``last`` checkpoint.
    """
    run_dir = Path(run_dir)
    meta = _last_checkpoint(run_dir)
    if meta is None:
        raise CheckpointError(f"{run_dir} has no 'last' checkpoint to evaluate")
    ckpt = {"epoch": int(meta["epoch"]), "step": int(meta["step"])}
    # through JSON, so that it compares equal to the saved copy (tuples become lists)
    settings = json.loads(json.dumps({"eval": dataclasses.asdict(budget.eval),
                                      "extra": dict(budget.extra) if measure else {}}))
    cache = _cache_file(run_dir, settings)
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("checkpoint") == ckpt and saved.get("settings") == settings:
            return saved
    s = budget.eval
    run = load_run(run_dir, "last")
    device = resolve_device(run.config.device)
    run.model.to(device)
    x = eval_data(run.config, s.split, device)[0]
    x = x if s.n is None else x[:s.n]
    log(f"[{run_dir.name}] evaluating epoch {ckpt['epoch']}: {s.describe()} ({x.shape[0]} images x "
        f"{2 * s.elbo_k + s.iwae_k} posterior samples = {x.shape[0] * (2 * s.elbo_k + s.iwae_k):,} decoder passes)")
    t0 = time.perf_counter()
    tag = f"[{run_dir.name}] eval"
    elbo = per_image(lambda m, xb: elbo_estimate(m, xb, s.elbo_k), run.model, x, s.seed, s.batch_size, f"{tag} elbo")
    re = per_image(lambda m, xb: _reconstruction(m, xb, s.elbo_k), run.model, x, s.seed, s.batch_size,
                   f"{tag} reconstruction")
    t1 = time.perf_counter()
    iw = per_image(lambda m, xb: iwae_estimate(m, xb, s.iwae_k), run.model, x, s.seed, s.batch_size,
                   f"{tag} iwae:{s.iwae_k}")
    t2 = time.perf_counter()
    values = {"elbo": elbo, "re": re, "kl": re - elbo, "iwae": iw}
    result: dict[str, Any] = {"checkpoint": ckpt, "settings": settings, "n": int(x.shape[0]),
                              **{k: mean_se(v) for k, v in values.items()}, "gap": mean_se(iw - elbo),
                              "seconds": {"elbo": round(t1 - t0, 2), "iwae": round(t2 - t1, 2)}}
    if measure is not None:
        result.update(measure(run, x, values, budget))
    result["per_image"] = {k: v.tolist() for k, v in values.items()}
    write_output(cache, json.dumps(result), {k: v for k, v in result.items() if k != "per_image"})
    return result


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table as lines: the header, the ``|---|`` rule, one line per row (cells as ``str``)."""
    line = lambda cells: "| " + " | ".join(str(c) for c in cells) + " |"  # noqa: E731
    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


#: The first line of every docs page ``--write-doc`` writes: a page without it was written (or edited) by hand
#: and is never replaced by a generated one (:func:`check_doc_replaceable`).
DOC_MARKER = "<!-- written by `vaekit reproduce {name} --write-doc`; the next such run rewrites this page -->"


def _doc_runs(data: Any) -> set[str]:
    """The run names a results JSON holds: ``rows`` (this runner's format) or the keys of ``runs`` (older pages)."""
    if not isinstance(data, dict):
        return set()
    if isinstance(data.get("rows"), list):
        return {str(r["run"]) for r in data["rows"] if isinstance(r, dict) and "run" in r}
    return set(data["runs"]) if isinstance(data.get("runs"), dict) else set()


def check_doc_replaceable(name: str, doc: str | Path, runs: Sequence[str], force: bool = False) -> None:
    """Refuse ``--write-doc`` where it would lose results, before any training: when the page ``doc`` exists and
    does not start with :data:`DOC_MARKER` (a page kept by hand holds text and numbers no run here can
    regenerate), or when the JSON beside it holds runs outside ``runs`` (a rebuild from this selection would
    drop them). ``force`` skips both checks.

    Raises:
        OutputError: naming the file, what would be lost and the ways out.
    """
    if force:
        return
    page, data_file = Path(doc), Path(doc).with_suffix(".json")
    if page.exists():
        first = page.read_text(errors="replace").split("\n", 1)[0]
        if first != DOC_MARKER.format(name=name):
            raise OutputError(f"{page} was not written by `vaekit reproduce {name} --write-doc` (its first line is "
                              "not the marker such pages carry), so rewriting it would lose what was written there "
                              "by hand; drop --write-doc (the tables go to the --out folder), or pass --force", page)
    refuse_to_drop(data_file, runs, names=_doc_runs, how="select them too (--runs), drop --write-doc, or pass --force")


def write_results(out: str | Path, rows: Sequence[dict], report: Report, meta: dict[str, Any],
                  doc: str | None = None) -> dict[str, Any]:
    """Write ``out/table.md`` (the report's markdown) and ``out/results.json`` (meta, rows without their
    per-image values, the report's data), atomically; with ``doc`` (a path relative to the repository root)
    also the docs page and the JSON next to it. Returns a JSON-ready summary naming the files."""
    out = Path(out)
    results = {"meta": meta, "rows": [{k: v for k, v in r.items() if k != "per_image"} for r in rows],
               **report.data}
    pages = {"table": (out / "table.md", report.markdown),
             "results": (out / "results.json", json.dumps(results, indent=1) + "\n")}
    if doc is not None:
        pages["doc"] = (REPO_ROOT / doc, DOC_MARKER.format(name=meta["reproduction"]) + "\n\n" + report.markdown)
        pages["doc_json"] = ((REPO_ROOT / doc).with_suffix(".json"), pages["results"][1])
    for path, text in pages.values():
        write_output(path, text, {"results": results, "table": report.markdown})
    brief = ("run", "epochs_done", "n", "elbo", "iwae", "train_seconds")
    return {"reproduction": meta["reproduction"], "budget": meta["budget"],
            **{key: str(path) for key, (path, _) in pages.items()},
            "rows": [{k: r[k] for k in brief if k in r} for r in rows], "wall_seconds": meta["wall_seconds"]}


# --------------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------------


def _names(runs: str | Sequence[str] | None, default: Sequence[str]) -> list[str]:
    if runs is None:
        return list(default)
    items = runs.split(",") if isinstance(runs, str) else runs
    names = list(dict.fromkeys(n.strip() for n in items if n.strip()))
    if not names:
        raise ValueError("no run selected (empty --runs)")
    return names


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), cpu)
    return f"{cpu}, {os.cpu_count()} cores"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def reproduce(name: str | Reproduction, budget: str = "small", runs: str | Sequence[str] | None = None, *,
              epochs: int | None = None, eval_k: int | None = None, eval_n: int | None = None,
              max_seconds: float | None = None, out: str | Path | None = None, overrides: Sequence[str] = (),
              threads: int | None = None, write_doc: bool = False, force: bool = False, tensorboard: bool = True,
              log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Run reproduction ``name``: train every selected run, evaluate it, write the tables.

    Args:
        name: a registered name (:data:`REPRODUCTIONS`) or a :class:`Reproduction`.
        budget: ``"small"`` (fits a 2-core CPU) or ``"paper"`` (the paper's settings); see each budget's
            ``describe()``.
        runs: run names (a comma list or a sequence) instead of the budget's.
        epochs, eval_k, eval_n: replace the budget's epochs, IWAE samples, number of evaluated images.
        max_seconds: total training time budget, split evenly over the runs (``None``: train to ``epochs``).
        out: output folder (default ``runs/reproduce/<name>-<budget>``): one run directory per run,
            ``table.md``, ``results.json``.
        overrides: dotted config overrides applied to every run last (e.g. ``data.name=digits``).
        threads: ``torch.set_num_threads``.
        write_doc: also write the reproduction's docs page (``Reproduction.doc``) and the JSON beside it;
            refused before training where that would lose results (:func:`check_doc_replaceable`).
        force: with ``write_doc``, replace the page and JSON even so.

    Returns:
        :func:`write_results`'s summary (the files written, each run's epochs, ELBO and IWAE in brief).

    Raises:
        ValueError: unknown reproduction, budget or run name, ``epochs``, ``eval_k`` or ``eval_n`` below 1 (0 is not
            "the budget's"), a run directory with more epochs than asked,
            ``write_doc`` for a reproduction without a generated page.
        FileNotFoundError: a run's config file is missing.
        OutputError: ``out`` (or the docs folder) cannot take files, or ``write_doc`` would replace a page kept by
            hand or drop runs its JSON holds, before any training; or a result could not be written, naming the
            file, with the results in its ``payload``.
    """
    rep = get_reproduction(name) if isinstance(name, str) else name
    b = rep.budget(budget)
    # an explicit 0 is a bad value, not "use the budget's" (it used to train the budget's epochs); checked here, not
    # left to EvalSettings/Budget, so the message names what the caller passed (they say iwae_k and n)
    for flag, v in (("epochs", epochs), ("eval_k", eval_k), ("eval_n", eval_n)):
        if v is not None and v < 1:
            raise ValueError(f"{flag} must be >= 1, got {v}")
    if epochs is not None or eval_k is not None or eval_n is not None:
        ev = dataclasses.replace(b.eval, iwae_k=eval_k if eval_k is not None else b.eval.iwae_k,
                                 n=eval_n if eval_n is not None else b.eval.n)
        b = dataclasses.replace(b, epochs=epochs if epochs is not None else b.epochs, eval=ev)
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds}")
    if write_doc and rep.doc is None:
        raise ValueError(f"reproduction {rep.name!r} has no generated docs page")
    if threads is not None:
        torch.set_num_threads(threads)
    names = _names(runs, b.runs)
    if tuple(names) != tuple(b.runs) or epochs is not None:
        # the budget's note (its time estimate) describes its own run set and epochs, not this selection
        b = dataclasses.replace(b, runs=tuple(names), note="")
    out_given = out
    out = Path(out) if out is not None else Path("runs") / "reproduce" / f"{rep.name}-{budget}"
    cfgs = {n: run_config(rep, n, b.epochs, out, overrides) for n in names}  # a bad run or key fails before training
    if write_doc:  # first, so that a refusal leaves no output folder behind
        check_doc_replaceable(rep.name, REPO_ROOT / rep.doc, list(cfgs), force)
    check_folder(out, "reproduction")  # and a folder that cannot take the results
    if write_doc:
        check_folder((REPO_ROOT / rep.doc).parent, "docs")
    share = None if max_seconds is None else max_seconds / len(names)
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows: list[dict[str, Any]] = []
    # whole lines, one per finished run, also on a terminal: the runs' own training bars draw there
    bar = Progress(len(cfgs), f"reproduce {rep.name}", "runs", every=0,
                   mode="off" if progress_mode() == "off" else "lines")
    # the plan, before any work: per run, training to the budget's epochs and the evaluation (finished runs
    # and saved evaluations are skipped); after the first run, an estimate of the rest from its time
    bar.note(f"{len(cfgs)} run(s) ({', '.join(cfgs)}), budget {budget}: {b.describe()}"
             + (f"; at most {max_seconds:.0f} s of training in all" if max_seconds is not None else ""))
    for n, cfg in cfgs.items():
        spec = rep.run_spec(n)
        row: dict[str, Any] = {"run": n, "config": spec.config, "overrides": [*spec.overrides, *overrides],
                               "seed": cfg.seed, "epochs": cfg.train.epochs, "run_dir": str(out / n),
                               "command": shlex.join(["vaekit", "train", "--config", spec.config, *spec.overrides,
                                                      *overrides, f"train.epochs={cfg.train.epochs}"])}
        row.update(train_or_resume(cfg, out / n, share, tensorboard, log))
        if row["epochs_done"] > 0:
            row.update(evaluate_checkpoint(out / n, b, rep.measure, log=log))
        rows.append(row)
        bar.update(1)
    bar.close()
    cmd = ["vaekit", "reproduce", rep.name, "--budget", budget]
    for flag, value in (("--runs", ",".join(names) if runs is not None else None), ("--epochs", epochs),
                        ("--eval-k", eval_k), ("--eval-n", eval_n), ("--max-seconds", max_seconds),
                        ("--out", out_given), ("--threads", threads)):
        if value is not None:
            cmd += [flag, str(value)]
    meta = {"reproduction": rep.name, "title": rep.title, "budget": budget, "settings": b.as_dict(),
            "command": shlex.join([*cmd, *overrides]), "threads": torch.get_num_threads(), "machine": _machine(),
            "torch": torch.__version__, "started": started,
            "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_seconds": round(time.perf_counter() - t0, 1), "doc": rep.doc}
    return write_results(out, rows, rep.report(rows, meta), meta, rep.doc if write_doc else None)
