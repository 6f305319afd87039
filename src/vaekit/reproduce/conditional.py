r"""Conditional and semi-supervised VAEs on MNIST (issue 13): the runs, their training and evaluation.

Runs (``python -m vaekit.reproduce.conditional --runs NAME,... --out runs/conditional``), all on MNIST with
dynamic binarisation (``torch.bernoulli`` of the grey levels for every batch; the test images binarised once
with seed 0), Adam 1e-3, ReLU MLPs:

* ``cvae_label`` — CVAE p(x|z, y) with a one-hot label, z = 20 Gaussian, prior N(0, I) (Doersch 2016 §4),
  encoder 794-500-500, decoder 30-500-500-784; for the label-conditioned samples.
* ``cvae_q{i}[_hybrid|_deep|_mix]`` / ``baseline_q{i}`` / ``vae_full`` — quadrant completion, quadrant ``i``
  observed and the other three predicted (Sohn et al. 2015's MNIST setting): a structured-output CVAE with a
  prior network p(z|x_obs) (plain CVAE objective, or the hybrid with α = 0.5; ``_deep``: a 500-500 prior network;
  ``_mix``: a mixture prior, K = 10, under the Gaussian posterior), the deterministic
  :class:`~vaekit.models.MaskedPredictor` with the decoder's widths, and an unconditional VAE (same widths)
  used for imputation.
* ``m2_l{n}_s{seed}`` / ``m2relaxed_l{n}_s{seed}`` / ``sup_l{n}_s{seed}`` / ``m1`` / ``m1m2_l{n}_s{seed}`` —
  M2 with ``n`` balanced labels (enumerated or Gumbel-softmax y), the same classifier network trained on the
  ``n`` labels alone, the M1 VAE (z = 50) and M2 on M1's posterior means (Kingma et al. 2014). M2's networks
  have one hidden layer of 300 units (the paper: 500, softplus; ReLU here), z = 50.

Evaluation (cached in ``RUN/eval.json`` per epoch): conditional NLL of the hidden pixels (IWAE-k for the CVAE,
exact for the baseline, a self-normalised importance estimate for the VAE, see :func:`imputation_log_likelihood`)
and test classification error with its binomial standard error. ``--ais-imputation T`` scores the CVAE and the
VAE's imputation by AIS on both sides (:func:`ais_imputation`); each piece is saved under ``OUT/ais_imputation``
as it finishes, and ``--ais-models vae`` / ``cvae`` runs the two models as separate processes.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import labelled_subset, load_dataset, make_mask, paired_batches
from ..evaluation import iwae_estimate
from ..models import build_from_spec
from ..models.m2 import M1M2, standardised_active_features
from ..pipeline.conditional import evaluate_steps_run
from ..objectives.conditional import cvae_objective, m2_objective, paper_alpha
from ..train.outputs import (OutputError, files_sha256, read_keyed, refuse_other_settings, refuse_to_drop,
                             write_keyed, write_output)
from ..train.steps import RunFolderError, fit_steps, load_steps_run, read_state

D = 784
BATCH = 100
#: M2's hidden width: the paper's 500 took 157 s per epoch on one thread (10 classes enumerated on batches of
#: 100 unlabelled + 100 labelled images); 300 fits three seeds into the issue's CPU budget
M2_HIDDEN = 300


#: variants of the quadrant CVAE ``cvae_q<i>[_variant]``: Sohn et al.'s hybrid objective, a 500-500 prior network,
#: a mixture prior network (K = 10)
CVAE_VARIANTS = ("hybrid", "deep", "mix")
_CVAE_NAMES = f"cvae_q<i>[_{'|_'.join(CVAE_VARIANTS)}]"


def _mlp(hidden: list[int]) -> dict:
    return {"type": "mlp", "hidden": hidden, "activation": "relu"}


def _bern() -> dict:
    return {"type": "bernoulli"}


def spec_of(name: str) -> dict[str, Any]:
    """The run's spec: ``{"kind", "model" (a build_model spec) ..., "epochs"}``; ``ValueError`` for a bad name."""
    m = re.fullmatch(rf"cvae_q(\d)(_{'|_'.join(CVAE_VARIANTS)})?", name)
    if name == "cvae_label":
        return {"kind": "cvae_label", "epochs": 10, "model": {
            "type": "cvae", "condition": {"type": "label", "n_classes": 10}, "encoder": _mlp([500, 500]),
            "latent": {"type": "gaussian", "dim": 20}, "decoder": _mlp([500, 500]), "likelihood": _bern()}}
    if m:
        variant = m.group(2)
        model = {"type": "cvae", "condition": {"type": "mask"}, "encoder": _mlp([500, 500]),
                 "latent": {"type": "gaussian", "dim": 20}, "decoder": _mlp([500, 500]),
                 "prior_net": _mlp([500, 500] if variant == "_deep" else [500]), "likelihood": _bern()}
        if variant == "_mix":
            # a multimodal p(z|x_obs): what the VAE used for imputation gets for free from Bayes' rule
            model["prior_latent"] = {"type": "mixture", "dim": 20, "components": 10}
        return {"kind": "cvae_mask", "epochs": 10, "mask": f"quadrant{m.group(1)}",
                "hybrid_alpha": 0.5 if variant == "_hybrid" else None, "model": model}
    m = re.fullmatch(r"baseline_q(\d)", name)
    if m:
        return {"kind": "baseline", "epochs": 10, "mask": f"quadrant{m.group(1)}",
                "model": {"net": _mlp([500, 500]), "likelihood": _bern()}}
    if name == "vae_full":
        return {"kind": "vae", "epochs": 10, "model": {
            "type": "vae", "encoder": _mlp([500, 500]), "latent": {"type": "gaussian", "dim": 20},
            "decoder": _mlp([500, 500]), "likelihood": _bern()}}
    if name == "m1":
        return {"kind": "vae", "epochs": 10, "model": {
            "type": "vae", "encoder": _mlp([500, 500]), "latent": {"type": "gaussian", "dim": 50},
            "decoder": _mlp([500, 500]), "likelihood": _bern()}}
    m = re.fullmatch(r"(m2|m2relaxed|sup|m1m2|m1m2s)_l(\d+)_s(\d+)", name)
    if m:
        kind, n, seed = m.group(1), int(m.group(2)), int(m.group(3))
        common = {"n_labels": n, "seed": seed}
        if kind == "sup":
            return {"kind": "sup", "epochs": 1, "steps": 2000, **common, "model": {"net": _mlp([M2_HIDDEN])}}
        model = {"type": "m2", "classifier": _mlp([M2_HIDDEN]), "encoder": _mlp([M2_HIDDEN]),
                 "latent": {"type": "gaussian", "dim": 50}, "decoder": _mlp([M2_HIDDEN]), "likelihood": _bern(),
                 "y_treatment": "relaxed" if kind == "m2relaxed" else "enumerate"}
        extra = {}
        if kind in ("m1m2", "m1m2s"):
            model["likelihood"] = {"type": "gaussian"}
            extra["data_dim"] = 50  # M1's code (m1m2s: its active dimensions, counted at training)
        extra["alpha"] = paper_alpha(60_000, n)  # recorded: an earlier m2_l100_s0 used 10 (a wrong conversion)
        return {"kind": kind, "epochs": 5 if kind == "m2" else 10, **common, **extra, "model": model}
    raise ValueError(f"unknown run {name!r}: cvae_label, {_CVAE_NAMES}, baseline_q<i>, vae_full, m1, "
                     "m2_l<n>_s<seed>, m2relaxed_l<n>_s<seed>, sup_l<n>_s<seed>, m1m2_l<n>_s<seed>, "
                     "m1m2s_l<n>_s<seed>")


def build(spec: dict[str, Any], data_dim: int = D) -> nn.Module:
    """The untrained model of a spec."""
    return build_from_spec(spec, data_dim)


def load(run_dir: str | Path) -> nn.Module:
    """The trained model of a run directory of this module (eval mode)."""
    return load_steps_run(run_dir)


def _data(data_dir: str | None):
    ds = load_dataset("mnist", data_dir=data_dir)
    g = torch.Generator().manual_seed(0)
    return ds, torch.bernoulli(ds.test.x, generator=g)


def _bin(x: Tensor) -> Tensor:
    return torch.bernoulli(x)


def train_run(name: str, out: Path, data_dir: str | None, epochs: int | None = None,
              max_seconds: float | None = None) -> dict[str, Any]:
    """Train run ``name`` into ``out/name`` (resuming); returns the trainer's state."""
    spec = spec_of(name)
    epochs = epochs or spec["epochs"]
    ds, _ = _data(data_dir)
    x, y = ds.train.x, ds.train.y
    run_dir = out / name
    kind = spec["kind"]
    seed = spec.get("seed", 0)
    torch.manual_seed(seed)
    if kind in ("m1m2", "m1m2s"):
        m1 = load(out / "m1")
        with torch.no_grad():  # M1's posterior means of the grey-level images, as the paper's features
            x = torch.cat([m1.encode(x[i:i + 1000]) for i in range(0, len(x), 1000)])
        if kind == "m1m2s":  # active dimensions only, standardised (M1M2's docstring says why)
            spec["features"] = standardised_active_features(x)
            f = spec["features"]
            spec["data_dim"] = len(f["active"])  # what load_steps_run rebuilds M2 with
            x = (x[:, f["active"]] - torch.tensor(f["shift"])) / torch.tensor(f["scale"])
    model = build(spec, x.shape[1])

    def rows(e: int, g: torch.Generator):
        for idx in torch.randperm(len(x), generator=g).split(BATCH):
            yield idx

    if kind in ("cvae_label", "vae"):
        lab = kind == "cvae_label"
        loss = lambda m, idx: cvae_objective(m, _bin(x[idx]), **({"label": y[idx]} if lab else {}))  # noqa: E731
        steps: Callable = rows
    elif kind == "cvae_mask":
        mask = make_mask(spec["mask"])

        def loss(m, idx):
            xb = _bin(x[idx])
            return cvae_objective(m, xb, hybrid_alpha=spec["hybrid_alpha"], mask=mask, observed=xb)
        steps = rows
    elif kind == "baseline":
        mask = make_mask(spec["mask"])

        def loss(m, idx):
            ll = m.conditional_log_likelihood(_bin(x[idx]), mask)
            return -ll.mean(), {"log_likelihood": ll.mean().detach()}
        steps = rows
    else:
        lab_idx, unl_idx = labelled_subset(y, spec["n_labels"], seed=seed)
        xl, yl, xu = x[lab_idx], y[lab_idx], x[unl_idx]
        binar = _bin if kind not in ("m1m2", "m1m2s") else (lambda t: t)
        if kind == "sup":
            def steps(e, g):
                for _ in range(spec["steps"]):
                    yield torch.randint(len(xl), (BATCH,), generator=g)

            def loss(m, idx):
                logits = m.classifier_logits(binar(xl[idx]))
                return F.cross_entropy(logits, yl[idx]), {"nll": F.cross_entropy(logits, yl[idx]).detach()}
        else:
            alpha = spec["alpha"]

            def steps(e, g):
                yield from paired_batches(len(xu), len(xl), BATCH, g)

            def loss(m, pair):
                u, l_ = pair
                return m2_objective(m, binar(xu[u]), binar(xl[l_]), yl[l_], alpha)
    monitor = None
    if kind in ("m2", "m2relaxed", "m1m2", "m1m2s"):
        # the test error after every epoch, a curve for the report (nothing is selected by it)
        stacked = kind in ("m1m2", "m1m2s")
        x_test = ds.test.x if stacked else torch.bernoulli(ds.test.x, generator=torch.Generator().manual_seed(0))
        if stacked:
            f = spec.get("features") or {}
            clf = M1M2(m1, model, f.get("active"), f.get("shift"), f.get("scale"))
            with torch.no_grad():
                x_test = torch.cat([clf.features(x_test[i:i + 1000]) for i in range(0, len(x_test), 1000)])
        monitor = lambda m: {"test_error": round(float((m.classify(x_test) != ds.test.y).double().mean()), 4)}  # noqa: E731
    return fit_steps(model, steps, loss, epochs=epochs, run_dir=run_dir, spec=spec, seed=seed,
                     max_seconds=max_seconds, log=lambda s: print(s, file=sys.stderr, flush=True), after_epoch=monitor)


def check_same_ais_settings(path: Path, out: Path, n: int, Ts: Sequence[int], k: int, force: bool = False,
                            cvae_run: str = "cvae_q0") -> None:
    """Refuse to let ``--ais-imputation`` replace ``path`` when it holds the comparison at other settings (images,
    AIS lengths, k, run folders or their epochs): each such file is its own result (conditional_ais.json,
    conditional_ais_T2000.json and conditional_ais_T2000_e40.json differ only there), and the default ``--json``
    once pointed every new setting at the first. ``force`` skips the check.

    Raises:
        OutputError: naming the file, the settings that differ (old → new) and the ways out.
    """
    new = {"n_images": n, "T": list(Ts), "k": k,
           "runs": {"vae": str(out / "vae_full"), "cvae": str(out / cvae_run)},
           "epochs": {r: (read_state(out / d) or {}).get("epoch") for r, d in (("vae", "vae_full"), ("cvae", cvae_run))}}
    refuse_other_settings(path, new, lambda d: d["settings"], force, "name another file with --json, or pass --force")


def check_cvae_run(name: str) -> None:
    """Refuse a ``--cvae-run`` that is not a quadrant CVAE of :func:`spec_of` (``ValueError`` naming the option)."""
    try:
        kind = spec_of(name)["kind"]
    except ValueError:
        kind = None
    if kind != "cvae_mask":
        raise ValueError(f"--cvae-run: {name!r} is not a quadrant CVAE run ({_CVAE_NAMES})")


def _piece_key(run: Path, **settings: Any) -> dict[str, Any]:
    """What a cached AIS-imputation piece was computed from: its settings, the run's epoch and its weights' hash."""
    return {**settings, "run": str(run), "epoch": (read_state(run) or {}).get("epoch"),
            "weights_sha256": files_sha256([run / "model.safetensors"])}


def _cached_piece(cache: Path, name: str, key: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()``, or its earlier result saved under ``cache/name.json`` when that was computed from the same ``key``.

    Each piece (one model, one estimator, one T) takes minutes to tens of minutes; saving it as soon as it is done
    means a crash or a stop in a later piece loses nothing computed before, and lets the two models' pieces run as
    separate processes (``--ais-models``). A file of another key is recomputed and replaced, never reused.
    """
    f = cache / f"{name}.json"
    held = read_keyed(f, key)
    if held is not None:
        print(f"[ais-imputation] {name}: reusing {f}", file=sys.stderr)
        return held
    t0 = time.perf_counter()
    result = fn()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write_keyed(f, key, result)
    print(f"[ais-imputation] {name}: {result['seconds']} s, saved to {f}", file=sys.stderr)
    return result


AIS_MODELS = ("vae", "cvae")


def _join_blocks(blocks: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One piece per estimator from its pieces over consecutive image blocks: per-image lists concatenated in
    block order, seconds summed, and the Monte Carlo standard error of the mean over all images recombined from
    the blocks' (each block's ``mc_se`` is ``sqrt(mean s_i^2 / n_b)``, so ``sum_b n_b^2 mc_b^2`` is ``sum_i s_i^2``)."""
    out: dict[str, dict[str, Any]] = {}
    for name in blocks[0]:
        parts = [b[name] for b in blocks]
        joined: dict[str, Any] = {"seconds": round(sum(p["seconds"] for p in parts), 1)}
        for field in ("nll", "log_px", "log_pobs"):
            if field in parts[0]:
                joined[field] = [v for p in parts for v in p[field]]
        if "mc_se" in parts[0]:
            total = len(joined["nll"])
            joined["mc_se"] = math.sqrt(sum((len(p["nll"]) * p["mc_se"]) ** 2 for p in parts)) / total
        out[name] = joined
    return out


def ais_imputation(out: Path, n: int = 100, Ts: tuple[int, ...] = (100, 500), k: int = 100, chains: int = 8,
                   leapfrog: int = 5, mask_name: str = "quadrant0", data_dir: str | None = None,
                   models: Sequence[str] = AIS_MODELS, cvae_run: str = "cvae_q0",
                   block: int | None = None) -> dict[str, Any] | None:
    r"""The quadrant-completion comparison with AIS instead of importance sampling (``--ais-imputation``).

    On the first ``n`` test images (binarised with seed 0, as :func:`evaluate_steps_run`): the unconditional VAE's
    :math:`-\log p(y|x_{obs})` by :func:`vaekit.pipeline.conditional.ais_imputation_log_likelihood` at each ``T``
    and by the importance-sampling estimate of the main table (k = ``k``); the structured-output CVAE's IWAE-k
    bound and its AIS estimate (the path from p(z|x_obs) to p(z|x_obs, y)) at each ``T``. Reads the runs
    ``out/vae_full`` and ``out/<cvae_run>`` (default ``cvae_q0``; any ``cvae_q<i>[_variant]`` of :func:`spec_of`).

    Every piece (model × estimator × T) is saved under ``out/ais_imputation/`` as soon as it is computed and reused
    by a later call with the same settings and the same weights (:func:`_cached_piece`); each piece seeds its own
    generator, so the numbers do not depend on which pieces were cached. ``models`` restricts the computation to
    ``"vae"`` or ``"cvae"`` (two processes, one per model, then a call with both that reads the saved pieces).
    ``block``: split the ``n`` images into consecutive blocks of this many, one piece per block (so a larger ``n``
    reuses the pieces of a smaller one and a stop loses at most one block); the first block's piece is named and
    seeded as an unblocked piece of ``block`` images, a later block starting at image ``s`` carries ``_from{s}`` in
    its name and ``s`` in its key and seed.

    Returns:
        the JSON of ``docs/results/conditional_ais*.json`` (nats per image) when ``models`` holds both models,
        else None (the pieces are saved).

    Raises:
        ValueError: an unknown name in ``models``; a ``cvae_run`` that is not a quadrant CVAE of :func:`spec_of`;
            ``block < 1``; no test image (``n < 1``).
    """
    from ..evaluation import ais
    from ..pipeline.conditional import ais_imputation_log_likelihood, imputation_log_likelihood, test_images

    check_cvae_run(cvae_run)
    unknown = sorted(set(models) - set(AIS_MODELS))
    if unknown or not models:
        raise ValueError(f"--ais-models: {unknown or 'none given'}; choose from {', '.join(AIS_MODELS)}")
    if block is not None and block < 1:
        raise ValueError(f"--ais-block must be >= 1, got {block}")
    x_all = test_images(data_dir)[0][:n]
    n = int(x_all.shape[0])
    if n < 1:
        raise ValueError(f"--eval-n must be >= 1, got {n}")
    mask = make_mask(mask_name)
    runs = {"vae": out / "vae_full", "cvae": out / cvae_run}
    cache = out / "ais_imputation"
    # cvae_q0's pieces keep their original names; another CVAE's carry its run name
    cv = "cvae" if cvae_run == "cvae_q0" else cvae_run
    loaded: dict[str, nn.Module] = {}

    def model(name: str) -> nn.Module:
        if name not in loaded:
            loaded[name] = load(runs[name])
        return loaded[name]

    def vae_is(x: Tensor) -> dict[str, Any]:
        torch.manual_seed(0)
        with torch.no_grad():
            return {"nll": [float(v) for v in -imputation_log_likelihood(model("vae"), x, mask, k)]}

    def cvae_iwae(x: Tensor) -> dict[str, Any]:
        torch.manual_seed(0)
        with torch.no_grad():
            return {"nll": [float(v) for v in -iwae_estimate(model("cvae"), x, k, mask=mask, observed=x)]}

    def vae_ais(x: Tensor, T: int, seed: int) -> dict[str, Any]:
        r = ais_imputation_log_likelihood(model("vae"), x, mask, T, n_chains=chains, leapfrog_steps=leapfrog, seed=seed)
        return {"nll": [-float(v) for v in r["log_cond"]], "log_px": [float(v) for v in r["log_px"]],
                "log_pobs": [float(v) for v in r["log_pobs"]],
                "mc_se": float((r["log_px_se"].double() ** 2 + r["log_pobs_se"].double() ** 2).mean().sqrt()
                               / math.sqrt(x.shape[0]))}

    def cvae_ais(x: Tensor, T: int, seed: int) -> dict[str, Any]:
        c = ais(model("cvae"), x, n_chains=chains, T=T, leapfrog_steps=leapfrog, seed=seed,
                cond={"mask": mask, "observed": x})
        return {"nll": [-float(v) for v in c.log_px],
                "mc_se": float((c.stderr.double() ** 2).mean().sqrt() / math.sqrt(x.shape[0]))}

    size = n if block is None else block
    blocks: list[dict[str, dict[str, Any]]] = []
    for s in range(0, n, size):
        x = x_all[s:s + size]
        m = int(x.shape[0])
        # the first block is named, keyed and seeded as an unblocked piece, so the earlier files stay valid
        tag, where = (f"_n{m}", {}) if s == 0 else (f"_n{m}_from{s}", {"first_image": s})
        common = {"n_images": m, "mask": mask_name, **where}
        got: dict[str, dict[str, Any]] = {}
        if "vae" in models:
            got[f"vae_is_k{k}"] = _cached_piece(cache, f"vae_is_k{k}{tag}", _piece_key(runs["vae"], **common, k=k),
                                                lambda x=x: vae_is(x))
        if "cvae" in models:
            got[f"cvae_iwae_k{k}"] = _cached_piece(cache, f"{cv}_iwae_k{k}{tag}",
                                                   _piece_key(runs["cvae"], **common, k=k), lambda x=x: cvae_iwae(x))
        for T in Ts:
            ais_set = {**common, "T": T, "chains": chains, "leapfrog_steps": leapfrog}
            if "vae" in models:
                got[f"vae_ais_T{T}"] = _cached_piece(cache, f"vae_ais_T{T}{tag}", _piece_key(runs["vae"], **ais_set),
                                                     lambda x=x, T=T, s=s: vae_ais(x, T, T + s))
            if "cvae" in models:
                got[f"cvae_ais_T{T}"] = _cached_piece(cache, f"{cv}_ais_T{T}{tag}",
                                                      _piece_key(runs["cvae"], **ais_set),
                                                      lambda x=x, T=T, s=s: cvae_ais(x, T, T + 7 + s))
        blocks.append(got)
    pieces = _join_blocks(blocks)
    if set(models) != set(AIS_MODELS):
        return None
    per: dict[str, list[float]] = {}
    for name, p in pieces.items():
        per[name] = p["nll"]
        for extra in ("log_px", "log_pobs"):
            if extra in p:
                per[f"{name}_{extra}"] = p[extra]
    mc = {name: p["mc_se"] for name, p in pieces.items() if "mc_se" in p}
    seconds = {name: p["seconds"] for name, p in pieces.items()}
    summary = {name: _paired(v, [0.0] * len(v)) for name, v in per.items()}
    top = max(Ts)
    diffs = {"cvae_iwae_minus_vae_ais": _paired(per[f"cvae_iwae_k{k}"], per[f"vae_ais_T{top}"]),
             "cvae_ais_minus_vae_ais": _paired(per[f"cvae_ais_T{top}"], per[f"vae_ais_T{top}"]),
             "vae_ais_minus_vae_is": _paired(per[f"vae_ais_T{top}"], per[f"vae_is_k{k}"]),
             "cvae_iwae_minus_vae_is": _paired(per[f"cvae_iwae_k{k}"], per[f"vae_is_k{k}"])}
    return {"settings": {"n_images": n, "ais_block": block, "mask": mask_name, "T": list(Ts), "k": k, "ais_chains": chains,
                         "leapfrog_steps": leapfrog, "runs": {m: str(r) for m, r in runs.items()},
                         "epochs": {m: read_state(r)["epoch"] for m, r in runs.items()}},
            "nll": summary, "ais_mc_se": mc, "paired_differences": diffs, "seconds": seconds, "per_image": per,
            "note": "nats per image, -log p(x_hidden | x_obs); paired differences over the same images "
                    "(positive: the first is worse)"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vaekit.reproduce.conditional",
                                 description="Train and evaluate issue 13's conditional runs (see the module doc).")
    ap.add_argument("--runs", default="", help=f"comma-separated runs: cvae_label, {_CVAE_NAMES}, baseline_q<i>, "
                    "vae_full, m1, ... (an unknown name lists them all)")
    ap.add_argument("--report", action="store_true", help="write docs/results/conditional.json, the tables "
                    "(OUT/table.md) and the figures from the evaluated runs under --out")
    ap.add_argument("--out", default="runs/conditional", help="folder of the run folders (default: runs/conditional)")
    ap.add_argument("--data-dir", default=None, help="data root (default: the loaders' search path)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: each run's own)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    ap.add_argument("--eval-n", type=int, default=1000, help="test images evaluated (default: 1000)")
    ap.add_argument("--eval-k", type=int, default=100, help="importance samples of the IWAE bounds (default: 100)")
    ap.add_argument("--no-eval", action="store_true", help="train only")
    ap.add_argument("--ais-imputation", default=None, metavar="T1,T2",
                    help="compare the CVAE with the VAE's imputation using AIS (the trained --cvae-run and vae_full "
                         "under --out) at these AIS lengths on the first --eval-n test images; writes --json")
    ap.add_argument("--cvae-run", default="cvae_q0", metavar="NAME",
                    help="--ais-imputation: the CVAE run compared with vae_full (default: cvae_q0; also "
                         "cvae_q0_hybrid, cvae_q0_deep, cvae_q0_mix)")
    ap.add_argument("--ais-models", default=",".join(AIS_MODELS), metavar="vae,cvae",
                    help="--ais-imputation: the models to compute (default both; one of them saves its pieces under "
                         "OUT/ais_imputation for a later call with both, so the two can run as separate processes)")
    ap.add_argument("--ais-block", type=int, default=None, metavar="B",
                    help="--ais-imputation: compute and save the pieces in blocks of B consecutive test images, so a "
                         "larger --eval-n reuses a smaller one's pieces (default: one block of --eval-n)")
    ap.add_argument("--json", default="docs/results/conditional_ais.json",
                    help="--ais-imputation's output (default: docs/results/conditional_ais.json)")
    ap.add_argument("--docs", type=Path, default=Path(__file__).resolve().parents[3] / "docs" / "results",
                    help="the folder --report writes conditional.json and the figures into (default: the repository's "
                         "docs/results)")
    ap.add_argument("--force", action="store_true",
                    help="--report: write conditional.json even if it drops runs the existing one holds; "
                         "--ais-imputation: replace a --json file of other settings")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.ais_imputation:
        try:
            Ts = tuple(int(t) for t in args.ais_imputation.split(","))
        except ValueError:
            ap.error(f"--ais-imputation: {args.ais_imputation!r} is not a comma-separated list of AIS lengths (integers)")
        if any(T < 1 for T in Ts):
            ap.error(f"--ais-imputation: AIS lengths must be ≥ 1, got {list(Ts)}")
        if args.eval_n < 1:
            ap.error(f"--eval-n: must be >= 1, got {args.eval_n}")
        if args.ais_block is not None and args.ais_block < 1:
            ap.error(f"--ais-block: must be >= 1, got {args.ais_block}")
        models = [m.strip() for m in args.ais_models.split(",") if m.strip()]
        if not models or set(models) - set(AIS_MODELS):
            ap.error(f"--ais-models: {args.ais_models!r}; choose one or both of {', '.join(AIS_MODELS)}")
        try:
            check_cvae_run(args.cvae_run)
        except ValueError as e:
            ap.error(str(e))
        if set(models) == set(AIS_MODELS):
            try:  # before the AIS (minutes to hours): a file of other settings is another result, not an old copy
                check_same_ais_settings(Path(args.json), out, args.eval_n, Ts, args.eval_k, args.force, args.cvae_run)
            except OutputError as e:
                ap.error(str(e))
        res = ais_imputation(out, args.eval_n, Ts, args.eval_k, data_dir=args.data_dir, models=models,
                             cvae_run=args.cvae_run, block=args.ais_block)
        if res is None:
            print(json.dumps({"saved": str(out / "ais_imputation"), "models": models}))
            return
        print(json.dumps({k: v for k, v in res.items() if k != "per_image"}))  # first: survives a failed write
        write_output(args.json, json.dumps(res) + "\n", payload=res)
        return
    if args.report:
        docs = args.docs
        # the report is rebuilt from the run folders under --out alone: refuse to drop the results of runs that
        # the existing file holds and this machine does not have (run folders are not committed)
        try:
            refuse_to_drop(docs / "conditional.json", {p.parent.name for p in out.glob("*/eval.json")}, field="runs",
                           force=args.force)
        except OutputError as e:
            ap.error(f"--report: {e} (--docs writes elsewhere)")
        rep = report(out)
        classifier = _read(Path("runs/classifier/train.json"))
        scores = {p.stem: json.loads(p.read_text()) for p in sorted((out / "cvae_label").glob("classifier_score*.json"))}
        rep["data"].update({"classifier": classifier, "label_sample_scores": scores,
                            "figures": figures(out, docs, args.data_dir)})
        print(rep["markdown"])
        write_output(out / "table.md", rep["markdown"] + "\n", payload=rep["markdown"])
        write_output(docs / "conditional.json", json.dumps(rep["data"], indent=1) + "\n", payload=rep["data"])
        return
    names = [r.strip() for r in args.runs.split(",") if r.strip()]
    for name in names:  # every name before any training
        try:
            spec_of(name)
        except ValueError as e:
            ap.error(f"--runs: {e}")
    for name in names:
        try:
            train_run(name, out, args.data_dir, args.epochs)
        except RunFolderError as e:
            ap.error(str(e))
        if not args.no_eval:
            r = evaluate_steps_run(out / name, args.data_dir, args.eval_n, args.eval_k)
            print(json.dumps({k: v for k, v in r.items() if k not in ("per_image", "imputation_per_image", "history", "spec")}),
                  flush=True)


# --------------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------------

#: Kingma et al. (2014), Table 1, test error % on MNIST. The 100-label cells are the issue's; the rest are
#: FROM MEMORY (medium confidence: read the paper before using them as thresholds).
PAPER_ERROR = {100: {"M2": "11.97 ± 1.71", "M1+M2": "3.33 ± 0.14", "NN": "25.80"},
               600: {"M2": "4.94 ± 0.13*", "M1+M2": "2.59 ± 0.05*", "NN": "11.44*"},
               1000: {"M2": "3.60 ± 0.56*", "M1+M2": "2.40 ± 0.02*", "NN": "10.7*"},
               3000: {"M2": "3.92 ± 0.63*", "M1+M2": "2.18 ± 0.04*", "NN": "6.04*"}}


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _paired(a: list[float], b: list[float]) -> dict[str, float]:
    d = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    return {"mean": float(d.mean()), "se": float(d.std() / math.sqrt(d.numel()))}


def _spread(values: list[float]) -> str:
    t = torch.tensor(values, dtype=torch.float64) * 100
    if len(values) == 1:
        return f"{float(t[0]):.2f} (1 seed)"
    return f"{float(t.mean()):.2f} ± {float(t.std()):.2f} ({len(values)} seeds)"


def report(out: Path) -> dict[str, Any]:
    """Collect every evaluated run under ``out`` (``RUN/eval.json``, the classifier scores) into tables; returns
    ``{"markdown", "data"}``."""
    evals = {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/eval.json"))}
    data: dict[str, Any] = {"runs": {n: {k: v for k, v in r.items() if "per_image" not in k} for n, r in evals.items()}}
    md: list[str] = []
    # M2
    rows = []
    for n in (100, 600, 1000, 3000):
        cells = {}
        for kind in ("m2", "m2relaxed", "m1m2", "m1m2s", "sup"):
            runs = [r for name, r in evals.items() if re.fullmatch(rf"{kind}_l{n}_s\d+", name) and "test_error" in r]
            if runs:
                length = "2,000 steps" if kind == "sup" else \
                    "/".join(str(e) for e in sorted({r["epochs"] for r in runs})) + " epochs"
                cells[kind] = _spread([r["test_error"]["error"] for r in runs]) + f", {length}"
        if cells:
            p = PAPER_ERROR[n]
            rows.append([n, cells.get("m2", "—"), cells.get("m2relaxed", "—"), cells.get("m1m2", "—"),
                         cells.get("m1m2s", "—"), cells.get("sup", "—"), p["M2"], p["M1+M2"], p["NN"]])
            data.setdefault("m2_table", {})[str(n)] = cells
    if rows:
        md += ["| labels | M2 (ours) | M2, Gumbel-softmax y (ours) | M1+M2 (ours) | M1+M2, active M1 dims standardised "
               "(ours) | classifier on the labels alone (ours) | M2 (paper) | M1+M2 (paper) | NN baseline (paper) |",
               "|---|---|---|---|---|---|---|---|---|"]
        md += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    # quadrant completion
    q = {k: evals.get(k) for k in ("cvae_q0", "cvae_q0_hybrid", "baseline_q0", "vae_full")}
    if q["cvae_q0"] and q["baseline_q0"]:
        qrows = [["CVAE, prior network p(z\\|x_obs), IWAE-100 bound", q["cvae_q0"]],
                 ["CVAE, hybrid objective α = 0.5, IWAE-100 bound", q["cvae_q0_hybrid"]],
                 ["deterministic baseline (exact)", q["baseline_q0"]]]
        md += ["", "| model (quadrant 0 observed) | −log p(x_hidden \\| x_obs), nats | epochs | train s |", "|---|---|---|---|"]
        for label, r in qrows:
            if r:
                md.append(f"| {label} | {r['cond_nll']['mean']:.2f} ± {r['cond_nll']['se']:.2f} | {r['epochs']} | "
                          f"{r['train_seconds']:.0f} |")
        k1000 = _read(out / "cvae_q0" / "eval_k1000.json")
        if k1000:
            r = q["cvae_q0"]
            md.append(f"| CVAE, IWAE-1000 bound | {k1000['cond_nll']['mean']:.2f} ± {k1000['cond_nll']['se']:.2f} | "
                      f"{r['epochs']} | {r['train_seconds']:.0f} |")
        if q["vae_full"]:
            v = q["vae_full"]
            for key, k in (("quadrant0", 100), ("quadrant0_k1000", 1000)):
                if key in v["imputation"]:
                    md.append(f"| unconditional VAE, imputation: IWAE-{k}(x) − IWAE-{k}(x_obs), an estimate | "
                              f"{v['imputation'][key]['mean']:.2f} ± {v['imputation'][key]['se']:.2f} | "
                              f"{v['epochs']} | {v['train_seconds']:.0f} |")
        diffs = {"cvae_minus_baseline": _paired(q["cvae_q0"]["per_image"], q["baseline_q0"]["per_image"])}
        if q["vae_full"]:
            diffs["cvae_minus_vae"] = _paired(q["cvae_q0"]["per_image"], q["vae_full"]["imputation_per_image"]["quadrant0"])
        if q["cvae_q0_hybrid"]:
            diffs["hybrid_minus_cvae"] = _paired(q["cvae_q0_hybrid"]["per_image"], q["cvae_q0"]["per_image"])
        k1000 = _read(out / "cvae_q0" / "eval_k1000.json")
        if k1000 and q["vae_full"] and "quadrant0_k1000" in q["vae_full"]["imputation_per_image"]:
            data["cvae_q0_k1000"] = k1000["cond_nll"]
            diffs["cvae_minus_vae_k1000"] = _paired(k1000["per_image"],
                                                    q["vae_full"]["imputation_per_image"]["quadrant0_k1000"])
        data["quadrant_differences"] = diffs
    return {"markdown": "\n".join(md), "data": data}


def figures(out: Path, docs: Path, data_dir: str | None = None) -> list[str]:
    """The PNGs of the results page: label-conditioned samples (one row per digit) and quadrant completions."""
    from .. import viz
    from ..pipeline.conditional import complete_images

    made = []
    if read_state(out / "cvae_label") is not None:
        model = load(out / "cvae_label")
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            x = model.sample(100, label=torch.arange(10).repeat_interleave(10))
        made.append(str(viz.sample_grid(x, (1, 28, 28), docs / "conditional_label_samples.png", nrow=10,
                                        title="CVAE samples, one row per requested digit 0-9")))
    for name in ("cvae_q0", "baseline_q0"):
        if read_state(out / name) is not None:
            made.append(str(complete_images(out / name, "quadrant0", 6, 6, data_dir=data_dir,
                                            out=docs / f"conditional_complete_{name}.png", overwrite=True)))
    return made


if __name__ == "__main__":
    main()
