"""Run a list of log-likelihood estimators from a spec string such as ``"elbo,iwae:5000,ais:10000"``.

The entry point of ``vaekit eval``. Every estimate comes with its standard error, sample counts, seeds and
wall time, so a result file says exactly what was computed.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..progress import Progress
from .ais import ais
from .bounds import elbo_estimate, iwae_estimate

#: estimator name -> (meaning of the ``:N`` argument, default N)
ESTIMATORS: dict[str, tuple[str, int]] = {
    "elbo": ("posterior samples k for the expected log-likelihood (the KL is analytic where registered)", 1),
    "iwae": ("importance samples k", 5000),
    "ais": ("intermediate distributions T", 1000),
}

_AIS_OPTS = {"ais_chains": 16, "ais_leapfrog": 10, "ais_schedule": "sigmoid", "ais_obs_scale": None}


def parse_spec(spec: str) -> list[tuple[str, int]]:
    """``"elbo,iwae:5000,ais:10000"`` -> ``[("elbo", 1), ("iwae", 5000), ("ais", 10000)]``.

    Raises ``ValueError`` naming the bad token for an unknown estimator or a non-positive/non-integer count.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"estimator spec must be a non-empty string like 'elbo,iwae:5000,ais:1000', got {spec!r}")
    out = []
    for token in spec.split(","):
        token = token.strip()
        name, _, arg = token.partition(":")
        if name not in ESTIMATORS:
            raise ValueError(f"unknown estimator {name!r} in {spec!r}; known: {sorted(ESTIMATORS)}")
        if arg:
            try:
                n = int(arg)
            except ValueError:
                raise ValueError(f"estimator {token!r}: {arg!r} is not an integer ({ESTIMATORS[name][0]})") from None
            if n < 1:
                raise ValueError(f"estimator {token!r}: {ESTIMATORS[name][0]} must be >= 1")
        else:
            n = ESTIMATORS[name][1]
        out.append((name, n))
    return out


def _summary(vals: Tensor, mc_se: Tensor | None) -> dict[str, Any]:
    n = vals.numel()
    d: dict[str, Any] = {"mean": float(vals.mean()),
                         "stderr": float(vals.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan"),
                         "n": n}
    if mc_se is not None:
        # Monte Carlo error of the mean alone (over chains), the relevant one when comparing estimators
        # on the same images; "stderr" above also includes the spread between images.
        d["mc_stderr"] = float(mc_se.pow(2).sum().sqrt() / n)
    return d


def run_estimators(model: nn.Module, x: Tensor, spec: str, seed: int = 0, batch_size: int = 100,
                   progress: bool = False, desc: str = "eval", y: Tensor | None = None,
                   conditions: Callable[[Tensor, Tensor | None], dict[str, Any]] | None = None,
                   done: dict[str, dict[str, Any]] | None = None,
                   on_result: Callable[[str, dict[str, Any]], None] | None = None,
                   **opts: Any) -> dict[str, dict[str, Any]]:
    r"""Evaluate every estimator in ``spec`` on the rows of ``x``; per-estimator mean over rows and its s.e.

    Estimators (all estimate or bound the per-example :math:`\log p(x)` in nats):

    * ``elbo[:k]``: :math:`\mathbb E_q[\log p(x|z)] - \mathrm{KL}(q\|p)` (Kingma & Welling 2013,
      arXiv:1312.6114), a lower bound.
    * ``iwae:k``: :math:`\mathbb E\log\frac1k\sum_i p(x,z_i)/q(z_i|x)` (Burda et al. 2015, arXiv:1509.00519),
      a lower bound rising to :math:`\log p(x)` with ``k``.
    * ``ais:T``: forward AIS with ``T`` intermediate distributions (Wu et al. 2017, arXiv:1611.04273), a
      stochastic lower bound; :func:`vaekit.evaluation.ais.ais`.

    Args:
        model: speaks the model protocol.
        x: ``(N, data_dim)`` data (already binarised/preprocessed as the model expects).
        spec: comma-separated ``name[:N]`` (see :func:`parse_spec`).
        seed: every estimator is seeded from it (per batch: ``seed + batch index``); the global RNG is restored.
        batch_size: rows per batch (AIS runs ``ais_chains * batch_size`` chains at once).
        progress: report progress on standard error (:class:`vaekit.progress.Progress`: a bar on a terminal,
            a plain line every ``VAEKIT_PROGRESS_EVERY`` seconds otherwise), each estimator's cost before it
            starts (images, samples; for AIS images x chains x transitions x leapfrog steps) and, after a
            pilot of a few seconds of the real work, the time it will take.
        desc: the label of those lines (``"eval"`` gives ``eval iwae:5000``).
        y: ``(N,)`` labels of the rows, for ``conditions``.
        conditions: a conditional model's keyword arguments for a batch, ``conditions(x_b, y_b)``
            (:func:`vaekit.train.conditions.data_conditions`); the bounds are then of ``log p(x | c)``, and of the
            hidden pixels only for a mask condition (a conditional log-likelihood). None: an unconditional model.
        done: results of spec tokens already computed with these data, seed and options (an interrupted
            evaluation's, :func:`vaekit.pipeline.evaluate_run`): returned as they are, not run again. Every
            estimator seeds itself (``seed + batch index``), so a reused result equals the one it replaces.
        on_result: called as ``on_result(token, result)`` as soon as each estimator finishes (to save it).
        **opts: ``ais_chains`` (16), ``ais_leapfrog`` (10), ``ais_schedule`` ("sigmoid"), ``ais_obs_scale``
            (None), ``ais_batch_size`` (defaults to ``batch_size``).

    A model with an ``evaluation_order(x)`` method (the text models: rows by length) has its rows batched in
    that order: a batch of sentences runs its LSTM to the batch's longest one, so batching by length saves
    the padded steps. Means and standard errors do not depend on the order; the per-batch seeds then fall on
    other rows, so the figures move within their Monte Carlo error against a row-order evaluation.

    Returns:
        ``{name: {"mean", "stderr", "n", "settings", "seconds"[, "mc_stderr", "acceptance"]}}`` keyed by the
        spec token (``"iwae:5000"``); ``stderr`` is over examples.

    Raises:
        NotImplementedError: ``elbo`` or ``iwae`` asked of a model whose posterior has no density
            (``model.posterior_density`` False, e.g. the Stein VAE), before anything runs; the message names AIS.
    """
    unknown = set(opts) - set(_AIS_OPTS) - {"ais_batch_size"}
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}; known: {sorted(_AIS_OPTS) + ['ais_batch_size']}")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, data_dim), got {tuple(x.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if hasattr(model, "validate_input"):
        model.validate_input(x)
    needs_q = [name for name, _ in parse_spec(spec) if name != "ais"]
    if needs_q and not getattr(model, "posterior_density", True):  # refused before any estimator runs
        raise NotImplementedError(f"{', '.join(needs_q)} need log q(z|x): {type(model).__name__}'s posterior is "
                                  "implicit and has no density; estimate log p(x) with AIS (e.g. --estimators ais:1000)")
    a = {**_AIS_OPTS, **{k: v for k, v in opts.items() if k in _AIS_OPTS}}
    ais_bs = int(opts.get("ais_batch_size", batch_size))
    x, y = _in_evaluation_order(model, x, y)
    results: dict[str, dict[str, Any]] = {}
    was_training = model.training
    model.eval()
    try:
        for name, n in parse_spec(spec):
            key = name if name == "elbo" and n == 1 else f"{name}:{n}"
            if done and key in done:
                results[key] = dict(done[key])
                if progress:
                    print(f"{desc} {key}: reusing the result an interrupted evaluation saved", file=sys.stderr)
                continue
            t0 = time.perf_counter()
            vals, ses, accs = [], [], []
            bs = ais_bs if name == "ais" else batch_size
            bar = _progress(name, key, n, x.shape[0], bs, a, progress, desc)
            with bar:
                for j, i in enumerate(range(0, x.shape[0], bs)):
                    xb = x[i:i + bs]
                    cond = {} if conditions is None else conditions(xb, None if y is None else y[i:i + bs])
                    if name == "ais":
                        r = ais(model, xb, n_chains=a["ais_chains"], T=n, schedule=a["ais_schedule"],
                                leapfrog_steps=a["ais_leapfrog"], seed=seed + j, obs_scale=a["ais_obs_scale"],
                                progress=lambda t, T: bar.update(1), cond=cond)
                        vals.append(r.log_px.cpu())
                        ses.append(r.stderr.cpu())
                        accs.append(r.acceptance)
                    else:
                        with torch.random.fork_rng(devices=[]):
                            torch.manual_seed(seed + j)
                            v = (elbo_estimate(model, xb, k=n, **cond) if name == "elbo"
                                 else iwae_estimate(model, xb, n, **cond))
                        vals.append(v.double().cpu())
                        bar.update(xb.shape[0])
            res = _summary(torch.cat(vals), torch.cat(ses) if ses else None)  # order-free: means, s.e.
            if name == "ais":
                res["acceptance"] = sum(accs) / len(accs)
                res["settings"] = {"T": n, "n_chains": a["ais_chains"], "leapfrog_steps": a["ais_leapfrog"],
                                   "schedule": a["ais_schedule"], "obs_scale": a["ais_obs_scale"],
                                   "step_size": "adapted per chain to 0.65 acceptance (x1.02/x0.98, [1e-4, 0.5], "
                                                "init 0.01)", "seed": seed, "batch_size": ais_bs}
            else:
                res["settings"] = {"k": n, "seed": seed, "batch_size": batch_size}
            res["seconds"] = time.perf_counter() - t0
            results[key] = res
            if on_result is not None:
                on_result(key, res)
    finally:
        model.train(was_training)
    return results


def _in_evaluation_order(model: nn.Module, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """``x`` and ``y`` permuted by ``model.evaluation_order(x)`` where the model has one (else as given).

    Raises:
        ValueError: the method returned something other than a permutation of the rows.
    """
    fn = getattr(model, "evaluation_order", None)
    if not callable(fn):
        return x, y
    perm = fn(x)
    n = x.shape[0]
    if (not isinstance(perm, Tensor) or perm.shape != (n,) or perm.dtype != torch.int64
            or not torch.equal(perm.sort().values.cpu(), torch.arange(n))):
        raise ValueError(f"{type(model).__name__}.evaluation_order must return a permutation of the {n} rows "
                         "as an int64 tensor of shape (N,)")
    return x[perm], None if y is None else y[perm.to(y.device)]


def _progress(name: str, key: str, n: int, rows: int, bs: int, a: dict[str, Any], enabled: bool,
              desc: str) -> Progress:
    """The progress of one estimator over ``rows`` examples, with its cost for the estimate.

    AIS counts transitions (one per batch and temperature: the pilot estimate then comes within seconds,
    not after a whole batch); the bounds count examples.
    """
    batches = math.ceil(rows / bs)
    if name == "ais":
        c, lf = a["ais_chains"], a["ais_leapfrog"]
        # T transitions of L leapfrog steps each, plus the first point: T*L + 1 gradients per chain (ais's Notes)
        return Progress(batches * n, f"{desc} {key}", "transitions", enabled=enabled,
                        cost=f"{rows} examples x {c} chains x {n} transitions x {lf} leapfrog steps = "
                             f"{rows * c * (n * lf + 1):,} decoder forward+backward passes, in {batches} batch(es) "
                             f"of {bs}")
    return Progress(rows, f"{desc} {key}", "examples", enabled=enabled,
                    cost=f"{rows} examples x {n} posterior sample(s) = {rows * n:,} decoder passes, in {batches} "
                         f"batch(es) of {bs}")


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A fixed-width text table of :func:`run_estimators` output: estimator, mean ± s.e., n, seconds."""
    lines = [f"{'estimator':<14}{'mean (nats)':>14}{'stderr':>10}{'mc s.e.':>10}{'n':>7}{'seconds':>10}"]
    for name, r in results.items():
        mc = r.get("mc_stderr")
        mc_s = f"{mc:>10.3f}" if mc is not None else f"{'-':>10}"
        lines.append(f"{name:<14}{r['mean']:>14.3f}{r['stderr']:>10.3f}{mc_s}{r['n']:>7d}{r['seconds']:>10.1f}")
    return "\n".join(lines)
