"""Text VAE reproductions (issue 14): the PTB table (Bowman et al. 2016; Xu & Durrett 2018) and semi-supervised
classification (Xu et al. 2017).

``python -m vaekit.reproduce.text ptb --runs-dir runs/text`` evaluates every PTB run directory in ``runs-dir`` that
has no ``eval.json`` (ELBO on the whole test set), summarises each (:func:`vaekit.pipeline.text.text_summary`:
per-sentence NLL, perplexity with ``<eos>``, KL, I(x;z), active units, training wall time), draws 5 homotopy pairs
by a fixed seed and 5 greedy prior samples for the VAEs, and writes one JSON.

``python -m vaekit.reproduce.text ssl --data sst2 --methods sup,enum,sample --seeds 0 --epochs 5`` trains the
supervised LSTM classifier on 10 % of the labels, and the semi-supervised sentence VAE with y enumerated or sampled
(score function, running-mean baseline), in resumable run directories (:func:`vaekit.train.steps.fit_steps`),
and writes each run's test accuracy at its best validation epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from ..config import int_list
from ..train.outputs import OutputError, refuse_other_settings, refuse_to_drop, write_output

__all__ = ["ptb_table", "ssl_run", "ssl_table", "main"]


def _train_seconds(records: list[dict[str, Any]]) -> float | None:
    """Training wall time of a run from its metrics records: the ``time`` of its last training record."""
    t = None
    for r in records:
        if r.get("split") == "train" and "time" in r:
            t = r["time"]
    return t


def _best_val_elbo(records: list[dict[str, Any]]) -> float | None:
    """The best per-epoch validation ELBO in a run's metrics records (nats per sentence), what a setting is chosen
    by (κ, say) without looking at the test set; None without validation records."""
    vals = [r["elbo"] for r in records if r.get("split") == "val" and "elbo" in r]
    return max(vals) if vals else None


def paired_nll(run_a: str | Path, run_b: str | Path, seed: int = 1234, batch: int = 100) -> dict[str, Any]:
    r"""Per-sentence test NLL of run A minus run B on the same sentences, nats: mean, paired s.e., sentences.

    Each run's NLL is :math:`-\mathrm{ELBO}` with one posterior sample per sentence (batch ``j`` seeded with
    ``seed + j``), the exact NLL for a language model (no latent); positive: A is worse. The paired s.e. removes
    the spread between sentences, which dominates the s.e. of either mean (about 1 nat on PTB's test set).

    Raises:
        ValueError: the runs evaluate different test sets (another vocabulary or data options).
    """
    from ..evaluation import elbo_estimate
    from ..pipeline import eval_data
    from ..pipeline.text import open_text_run

    vals = []
    xs = []
    for run_dir in (run_a, run_b):
        run, _ = open_text_run(run_dir)
        x, _, _ = eval_data(run.config, "test", torch.device("cpu"))
        xs.append(x)
        m = run.model.eval()
        out = []
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            for j, i in enumerate(range(0, x.shape[0], batch)):
                torch.manual_seed(seed + j)
                out.append(-elbo_estimate(m, x[i:i + batch]).double())
        vals.append(torch.cat(out))
    if xs[0].shape != xs[1].shape or not torch.equal(xs[0], xs[1]):
        raise ValueError(f"{run_a} and {run_b} evaluate different test sets; pair runs of one vocabulary and data")
    d = vals[0] - vals[1]
    return {"a": Path(run_a).name, "b": Path(run_b).name, "mean": float(d.mean()),
            "se": float(d.std() / math.sqrt(d.numel())), "sentences": int(d.numel()),
            "nll_a": float(vals[0].mean()), "nll_b": float(vals[1].mean())}


def ptb_table(runs_dir: str | Path, out: str | Path, pairs: int = 5, seed: int = 0,
              compare: list[tuple[str, str]] | None = None, force: bool = False) -> dict[str, Any]:
    """Evaluate (ELBO, test) the runs lacking an ``eval.json``, summarise every run and write ``out`` (JSON).

    ``compare``: pairs of run names whose per-sentence NLLs are compared (:func:`paired_nll`), written under
    ``"paired"`` as ``"A-B"``."""
    from ..models.text import TextVAE
    from ..pipeline import evaluate_run
    from ..pipeline.text import generate_text, homotopy_pairs, open_text_run, text_summary
    from ..train import read_metrics

    res: dict[str, Any] = {}
    finished = []
    for run in sorted(p for p in Path(runs_dir).iterdir() if (p / "config.json").is_file() and (p / "vocab.json").is_file()):
        last = json.loads((run / "checkpoints" / "last.json").read_text()) if (run / "checkpoints" / "last.json").is_file() else None
        cfg = json.loads((run / "config.json").read_text())
        if last is None or last["epoch"] < cfg["train"]["epochs"]:
            print(f"[text] {run.name}: not finished, skipped", flush=True)
        else:
            finished.append((run, last, cfg))
    # before the work: the table is rebuilt from these runs alone
    refuse_to_drop(out, [r.name for r, _, _ in finished], ignore=("paired",), force=force)
    for run, last, cfg in finished:
        if not (run / "eval.json").is_file():
            t0 = time.perf_counter()
            evaluate_run(run, estimators="elbo", progress=False)
            print(f"[text] {run.name}: evaluated in {time.perf_counter() - t0:.0f} s", flush=True)
        t0 = time.perf_counter()
        s = text_summary(run)
        s["summary_seconds"] = round(time.perf_counter() - t0, 1)
        records = read_metrics(run) if (run / "metrics.jsonl").is_file() else []
        s["train_seconds"] = _train_seconds(records)
        s["best_val_elbo"] = _best_val_elbo(records)
        s["epochs"] = last["epoch"]
        s["steps"] = last["step"]
        s["model"] = cfg["model"]
        s["objective"] = cfg["train"]["objective"]
        s["train_size"] = cfg["data"]["options"].get("train_size")
        model, _ = open_text_run(run)
        if isinstance(model.model, TextVAE):
            s["homotopies"] = homotopy_pairs(run, pairs=pairs, steps=5, seed=seed)
            s["samples"] = generate_text(run, 5, "greedy", seed=seed)
        res[run.name] = s
        print(f"[text] {run.name}: {json.dumps({k: v for k, v in s.items() if k not in ('homotopies', 'samples', 'model')})}",
              flush=True)
    for a, b in compare or []:
        if a not in res or b not in res:
            raise ValueError(f"--compare {a}:{b}: both must be finished runs in {runs_dir}")
        r = paired_nll(Path(runs_dir) / a, Path(runs_dir) / b)
        res.setdefault("paired", {})[f"{a}-{b}"] = r
        print(f"[text] paired {a} - {b}: {r['mean']:+.3f} ± {r['se']:.3f} nats over {r['sentences']} sentences", flush=True)
    write_output(out, json.dumps(res, indent=1) + "\n", payload=res)
    return res


# ------------------------------------------------------------------------------------------------------------
# semi-supervised classification
# ------------------------------------------------------------------------------------------------------------


def _accuracy(model: Any, x: torch.Tensor, y: torch.Tensor, batch: int = 200) -> float:
    with torch.no_grad():
        pred = torch.cat([model.classify(x[i:i + batch]) for i in range(0, x.shape[0], batch)])
    return float((pred == y).double().mean())


def ssl_run(data: str, method: str, seed: int, epochs: int, out_dir: str | Path, label_fraction: float = 0.1,
            batch_size: int = 32, alpha: float = 10.0, hidden: int = 128, embed: int = 128, latent_dim: int = 32,
            word_keep: float = 0.75, max_vocab: int | None = 8000, val_fraction: float = 0.1,
            data_dir: str | Path | None = None, data_options: dict[str, Any] | None = None,
            label_sampling: str = "balanced", log: Any = print) -> dict[str, Any]:
    """Train one method on ``data`` with ``label_fraction`` of the training labels, drawn by ``seed``: the same
    number per class (``label_sampling="balanced"``, :func:`~vaekit.data.labelled_subset`) or in the classes' own
    proportions (``"stratified"``, :func:`~vaekit.data.stratified_subset`; TREC's smallest class is too small for a
    balanced 10 %). Returns the record (per-epoch validation/test accuracy, test accuracy at the best validation
    epoch).

    Model selection needs a validation split: a data set without one (MR, TREC) holds out ``val_fraction`` of its
    training sentences, drawn with seed 0 so that every method and seed sees the same split (as the test split of
    MR is). ``data_dir`` and ``data_options`` (for example MR's ``test_size``) go to :func:`vaekit.data.load_dataset`.
    Raises ``ValueError`` for an unknown method or ``label_sampling``, a ``val_fraction`` outside (0, 1), or too few
    sentences of a class for a balanced labelled subset (naming ``--labels stratified``).

    Methods: ``sup`` (the LSTM classifier on the labelled sentences alone), ``enum`` (the semi-supervised VAE, y summed
    out), ``sample`` (y drawn, score-function gradient with a running-mean baseline), ``sample_tok`` (the same with a
    per-token running-mean baseline, :class:`~vaekit.objectives.text.RunningBaseline`), ``enum_shared`` (``enum`` with
    one word embedding shared by the classifier, the encoder and the decoder, as in Xu et al.'s released code; see
    :func:`vaekit.models.text.build_text_m2`). Every method sees the same
    labelled batches; the semi-supervised ones add one unlabelled batch per step (an epoch = one pass over the
    unlabelled sentences).

    The run folder (``{data}_{method}_s{seed}``) keeps the weights of the *last* epoch, so it resumes exactly; the
    reported ``test_acc`` is the one measured after the best validation epoch, during training. The best epoch's
    weights are not kept, so reloading the folder reproduces ``history[-1]``, not ``test_acc``, unless the best
    epoch was the last.
    """
    from ..data import load_dataset
    from ..data.conditional import labelled_subset, stratified_subset
    from ..data.text import bucket_batches
    from ..models import build_model
    from ..objectives.text import RunningBaseline, ssvae_loss
    from ..train.steps import fit_steps

    if method not in SSL_METHODS:
        raise ValueError(f"method must be one of {', '.join(SSL_METHODS)}, got {method!r}")
    if label_sampling not in ("balanced", "stratified"):
        raise ValueError(f"label_sampling must be balanced or stratified, got {label_sampling!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    opts = {"max_vocab": max_vocab, **(data_options or {})}
    ds = load_dataset(data, data_dir, val_size=None, seed=0, **opts)
    if ds.val is None:
        ds = load_dataset(data, data_dir, val_size=round(val_fraction * len(ds.train)), seed=0, **opts)
    k = ds.num_classes
    n = len(ds.train)
    if label_sampling == "stratified":
        n_lab = int(round(label_fraction * n))
        lab, unl = stratified_subset(ds.train.y, n_lab, seed=seed)
    else:
        n_lab = int(round(label_fraction * n / k)) * k
        try:
            lab, unl = labelled_subset(ds.train.y, n_lab, seed=seed, n_classes=k)
        except ValueError as e:
            raise ValueError(f"{data}: {e}; draw the labels in the classes' proportions instead "
                             "(label_sampling='stratified', --labels stratified)") from e
    xl, yl, xu = ds.train.x[lab], ds.train.y[lab], ds.train.x[unl]
    enc = {"hidden": hidden}
    if method == "sup":
        spec = {"type": "text_classifier", "num_classes": k, "vocab_size": len(ds.vocab), "embed_dim": embed,
                "encoder": {**enc, "dropout": 0.5}}
    else:
        spec = {"type": "text_m2", "num_classes": k, "vocab_size": len(ds.vocab), "embed_dim": embed,
                "latent": {"type": "gaussian", "dim": latent_dim}, "classifier": {**enc, "dropout": 0.5},
                "encoder": enc, "decoder": {"hidden": hidden}, "word_keep": word_keep}
        if method == "enum_shared":
            spec["share_embedding"] = True
    torch.manual_seed(seed)
    model = build_model(spec, data_dim=ds.dim)
    baseline = (RunningBaseline(decay=0.9, normalise=False, per_token=method == "sample_tok")
                if method.startswith("sample") else None)
    lab_lengths, unl_lengths = ds.train.lengths[lab], ds.train.lengths[unl]

    def steps(epoch: int, g: torch.Generator) -> Iterator[Any]:
        lab_batches: list[torch.Tensor] = []
        for ub in bucket_batches(unl_lengths, batch_size, g):
            if not lab_batches:
                lab_batches = list(bucket_batches(lab_lengths, batch_size, g))
            yield ub, lab_batches.pop()

    def step_loss(m: Any, b: Any) -> Any:
        ub, lb = b
        x_l, y_l = xl[lb], yl[lb]
        if method == "sup":
            loss = torch.nn.functional.cross_entropy(m(x_l), y_l)
            return loss, {"classifier_nll": loss.detach()}
        return ssvae_loss(m, xu[ub], x_l, y_l, alpha, "sample" if method.startswith("sample") else "enumerate",
                          baseline)

    def after_epoch(m: Any) -> dict[str, float]:
        return {"val_acc": _accuracy(m, ds.val.x, ds.val.y), "test_acc": _accuracy(m, ds.test.x, ds.test.y)}

    run_dir = Path(out_dir) / f"{data}_{method}_s{seed}"
    rec = {"data": data, "method": method, "seed": seed, "labelled": n_lab, "unlabelled": len(unl), "alpha": alpha,
           "vocab": len(ds.vocab), "validation": len(ds.val), "test": len(ds.test), "label_sampling": label_sampling}
    state = fit_steps(model, steps, step_loss, epochs=epochs, run_dir=run_dir, spec={**rec, "model": spec},
                      lr=1e-3, seed=seed, log=log, after_epoch=after_epoch)
    hist = state["history"]
    best = max(hist, key=lambda r: r["val_acc"])
    out = {**rec, "epochs": state["epoch"], "train_seconds": state["elapsed"], "history": hist,
           "best_epoch": best["epoch"], "val_acc": best["val_acc"], "test_acc": best["test_acc"]}
    write_output(run_dir / "result.json", json.dumps(out, indent=1) + "\n", payload=out)
    return out


def _table_settings(data: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What makes an ``ssl-table`` file one experiment: the data set, the labelled subsets and the epochs."""
    return {"data": data, "labelled": sorted({r.get("labelled") for r in rows}, key=str),
            "label_sampling": sorted({r.get("label_sampling", "balanced") for r in rows}),
            "epochs": sorted({r.get("epochs") for r in rows}, key=str)}


def ssl_table(out_dir: str | Path, out: str | Path, data: str = "sst2", force: bool = False,
              merge: str | Path | None = None) -> dict[str, Any]:
    """Collect the ``result.json`` of every semi-supervised run ``{data}_{method}_s{seed}`` in ``out_dir`` into
    ``out`` (JSON): per-method test accuracy over seeds (mean, sd) and the dashboard's claims for Xu et al. 2017
    (the VAE beats the classifier on the same labels; sampling within 1 point of enumeration), each verdict at
    2 s.e. of the mean difference, paired over the seeds both methods ran (a seed fixes both runs' labelled
    sentences), or of the difference of seed means where fewer than two seeds are shared.

    ``merge``: an earlier table of the same data set whose runs have no folder here; they are kept (a run found in
    ``out_dir`` replaces its earlier record), so seeds trained on other machines add up.

    Raises:
        FileNotFoundError: no run under ``out_dir`` has a result (naming it).
        ValueError: ``merge`` is not such a table or is of another data set; the runs (with ``merge``'s) come
            from different labelled subsets (label counts or sampling) or were trained for different numbers of
            epochs, so seeds cannot be paired.
        OutputError: writing ``out`` would drop runs it holds, or replace a table of another data set, labelled
            subset or epoch count (:func:`refuse_to_drop`, :func:`refuse_other_settings`), unless ``force``.
    """
    import statistics

    found = {f"{r['method']}_s{r['seed']}": r for r in
             (json.loads(f.read_text()) for f in sorted(Path(out_dir).glob(f"{data}_*_s*/result.json")))}
    if not found:
        raise FileNotFoundError(f"no {data}_*_s*/result.json under {out_dir}")
    earlier: dict[str, Any] = {}
    if merge is not None:
        try:
            prior = json.loads(Path(merge).read_text())
            earlier, prior_data = prior["runs"], prior["data"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"--merge {merge}: not a table of this module ({e!r})") from e
        if prior_data != data:
            raise ValueError(f"--merge {merge}: a table of {prior_data!r}, not of {data!r}")
    rows = [earlier[k] for k in sorted(earlier) if k not in found] + [found[k] for k in sorted(found)]
    # one table is one labelled subset per seed and one training length: runs of other label counts, sampling or
    # epochs cannot be paired (a 2-epoch sup against a 10-epoch enum is not the claim)
    kinds: dict[tuple[Any, str, Any], list[str]] = {}
    for r in rows:
        kinds.setdefault((r.get("labelled"), r.get("label_sampling", "balanced"), r.get("epochs")), []).append(
            f"{r['method']}_s{r['seed']}")
    if len(kinds) > 1:
        where = "; ".join(f"{n} labels, {smp}, {ep} epochs: {', '.join(runs)}"
                          for (n, smp, ep), runs in sorted(kinds.items(), key=str))
        raise ValueError(f"{out_dir}{' and --merge ' + str(merge) if merge is not None else ''}: runs of different "
                         f"labelled subsets or training lengths do not make one table ({where})")
    by: dict[str, dict[int, float]] = {}
    for r in rows:
        by.setdefault(r["method"], {})[int(r["seed"])] = 100 * r["test_acc"]
    methods = {m: {"test_acc": list(a.values()), "mean": statistics.fmean(a.values()),
                   "sd": statistics.stdev(a.values()) if len(a) > 1 else None, "seeds": len(a),
                   "by_seed": {str(k): v for k, v in sorted(a.items())}} for m, a in by.items()}

    def diff(a: str, b: str) -> tuple[float, float, str] | None:
        """Mean difference and its s.e.: paired over the seeds both methods ran (a seed fixes the labelled
        sentences and the initialisation of both), else from the two seed means."""
        if a not in by or b not in by:
            return None
        common = sorted(set(by[a]) & set(by[b]))
        if len(common) >= 2:
            d = [by[a][k] - by[b][k] for k in common]
            return statistics.fmean(d), statistics.stdev(d) / math.sqrt(len(d)), f"paired over {len(d)} seeds"
        if len(by[a]) < 2 or len(by[b]) < 2:
            return None
        ma, mb = methods[a], methods[b]
        return (ma["mean"] - mb["mean"], math.hypot(ma["sd"] / math.sqrt(ma["seeds"]), mb["sd"] / math.sqrt(mb["seeds"])),
                f"{ma['seeds']} vs {mb['seeds']} seeds, unpaired")

    def side(d: float, se: float) -> bool | None:
        return True if d > 2 * se else False if d < -2 * se else None

    epochs = sorted({r["epochs"] for r in rows})
    # the same claim measured at several budgets is one line per budget on the dashboard
    ep = f"{'/'.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''}"
    at = f"{data}, {ep}"
    claims = []
    for m in ("enum", "enum_shared", "sample_tok", "sample"):
        d = diff(m, "sup")
        if d:
            what = "enum, one word embedding for classifier, encoder and decoder" if m == "enum_shared" else m
            claims.append({"claim": f"the semi-supervised VAE ({what}) beats the classifier on the same 10 % of labels ({at})",
                           "ours": f"{methods[m]['mean']:.2f} % vs {methods['sup']['mean']:.2f} % "
                                   f"({d[0]:+.2f} ± {d[1]:.2f} points, {d[2]})",
                           "paper": "SSVAE above the supervised LSTM (from memory)", "holds": side(d[0], d[1])})
    d = diff("sample_tok", "enum")
    if d:
        claims.append({"claim": f"sampling y (score function, per-token baseline) within 1 point of enumeration ({at})",
                       "ours": f"{d[0]:+.2f} ± {d[1]:.2f} points ({d[2]})",
                       "paper": "sampling comparable to enumeration (from memory)",
                       "holds": True if abs(d[0]) + 2 * d[1] <= 1 else False if abs(d[0]) - 2 * d[1] > 1 else None})
    refuse_to_drop(out, [f"{r['method']}_s{r['seed']}" for r in rows], field="runs", force=force)
    # the same run names trained at other settings (a 1-epoch smoke test, another data set) are another result
    refuse_other_settings(out, _table_settings(data, rows), lambda d: _table_settings(d["data"], list(d["runs"].values())),
                          force)
    seeds = sorted({m["seeds"] for m in methods.values()})
    sampling = sorted({r.get("label_sampling", "balanced") for r in rows})
    res = {"data": data, "runs": {f"{r['method']}_s{r['seed']}": r for r in rows}, "methods": methods,
           "dashboard": {"budget": f"{data}, 10 % labels ({rows[0]['labelled']} labelled, {'/'.join(sampling)}), "
                                   f"{ep}, {'–'.join(map(str, (seeds[0], seeds[-1]) if len(seeds) > 1 else seeds))} "
                                   "seeds, one thread", "claims": claims}}
    if merge is not None:
        res["merged_from"] = str(merge)
    write_output(out, json.dumps(res, indent=1) + "\n", payload=res)
    return res


#: What ``ssl`` trains: the labelled text data sets and the methods of :func:`ssl_run`.
SSL_DATA = ("sst2", "mr", "trec", "short_yelp")
SSL_METHODS = ("sup", "enum", "sample", "sample_tok", "enum_shared")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaekit.reproduce.text", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("ptb", help="evaluate and summarise the PTB runs of a folder")
    a.add_argument("--runs-dir", default="runs/text", help="folder of PTB run directories (default: runs/text)")
    a.add_argument("--out", default="docs/results/text_ptb.json", help="JSON to write (default: docs/results/text_ptb.json)")
    a.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    a.add_argument("--force", action="store_true", help="rewrite --out even if it drops runs it holds")
    a.add_argument("--compare", default="", metavar="A:B,...",
                   help="pairs of run names to compare per sentence (paired s.e.), e.g. C_inputless:D_lm_inputless")
    b = sub.add_parser("ssl", help="semi-supervised classification runs")
    b.add_argument("--data", default="sst2", help="mr, trec, sst2 or short_yelp (default: sst2)")
    b.add_argument("--methods", default="sup,enum,sample",
                   help="comma-separated: sup, enum, sample, sample_tok, enum_shared (enum with one word embedding "
                        "for the classifier, encoder and decoder) (default: sup,enum,sample)")
    b.add_argument("--seeds", type=int_list, default="0", help="comma-separated seeds (default: 0)")
    b.add_argument("--epochs", type=int, default=5,
                   help="passes over the unlabelled sentences (default: 5; docs/results/text.md used 2 and 10)")
    b.add_argument("--alpha", type=float, default=10.0, help="classifier weight per labelled sentence (default: 10)")
    b.add_argument("--labels", choices=("balanced", "stratified"), default="balanced",
                   help="labelled sentences: the same number per class (default), or in the classes' proportions "
                        "(TREC)")
    b.add_argument("--val-fraction", type=float, default=0.1,
                   help="training sentences held out for model selection where the data has no validation split "
                        "(MR, TREC; default: 0.1)")
    b.add_argument("--out-dir", default="runs/text_ssl", help="folder of the run directories (default: runs/text_ssl)")
    b.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    t = sub.add_parser("ssl-table", help="collect the semi-supervised runs' results into one JSON")
    t.add_argument("--data", default="sst2", help="data set of the runs (default: sst2)")
    t.add_argument("--out-dir", default="runs/text_ssl", help="folder of the run directories (default: runs/text_ssl)")
    t.add_argument("--out", default=None, help="JSON to write (default: docs/results/text_ssl.json for sst2, "
                                               "docs/results/text_ssl_DATA.json otherwise)")
    t.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    t.add_argument("--force", action="store_true", help="rewrite --out even if it drops runs it holds")
    t.add_argument("--merge", type=Path, help="an earlier table of the same data set: its runs without a folder "
                                             "here are kept")
    c = sub.add_parser("impute", help="Bowman et al.'s imputation test (last 20 %% of words) on PTB runs")
    c.add_argument("runs", help="comma-separated run directories sharing one vocabulary")
    c.add_argument("--n", type=int, default=2000, help="test sentences of >= 5 words (default: 2000)")
    c.add_argument("--beam", type=int, default=5, help="beam width (default: 5)")
    c.add_argument("--out", default="docs/results/text_impute.json", help="JSON to write (default: docs/results/text_impute.json)")
    c.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    c.add_argument("--force", action="store_true", help="rewrite --out even if it drops runs it holds")
    args = p.parse_args(argv)
    # errors found after parsing show the subcommand's usage line, as argparse's own do
    p = {"ptb": a, "ssl": b, "ssl-table": t, "impute": c}[args.what]
    if args.threads < 1:
        p.error(f"--threads: must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    if args.what == "ptb":
        pairs = [tuple(x.split(":", 1)) for x in args.compare.split(",") if x]
        if any(len(q) != 2 or not all(q) for q in pairs):
            p.error(f"--compare: expected A:B pairs separated by commas, got {args.compare!r}")
        try:
            ptb_table(args.runs_dir, args.out, compare=pairs, force=args.force)
        except OutputError as e:
            if e.payload is None:  # refused before writing: nothing computed is lost
                p.error(str(e))
            raise
        return 0
    if args.what == "ssl-table":
        out = args.out or f"docs/results/text_ssl{'' if args.data == 'sst2' else '_' + args.data}.json"
        try:
            r = ssl_table(args.out_dir, out, args.data, force=args.force, merge=args.merge)
        except (FileNotFoundError, ValueError) as e:
            p.error(str(e))
        except OutputError as e:
            if e.payload is None:  # refused before writing: nothing computed is lost
                p.error(str(e))
            raise
        print(json.dumps(r["dashboard"]))
        return 0
    if args.what == "impute":
        from ..pipeline.text import imputation_benchmark

        # before the benchmark (minutes of beam search): the file lists its runs by folder name
        try:
            refuse_to_drop(args.out, [Path(r).name for r in args.runs.split(",")], field="runs", force=args.force)
        except OutputError as e:
            p.error(str(e))
        t0 = time.perf_counter()
        r = imputation_benchmark(args.runs.split(","), n=args.n, beam=args.beam)
        r["command"] = "python -m vaekit.reproduce.text " + " ".join(argv if argv is not None else sys.argv[1:])
        r["wall_seconds"] = round(time.perf_counter() - t0, 1)
        try:
            write_output(args.out, json.dumps(r, indent=1) + "\n", payload=r)
        finally:
            print(json.dumps(r))  # the results reach the terminal even if the write fails
        return 0
    # every setting is checked before the first run trains, so a typo in the last method costs nothing
    methods = [m.strip() for m in args.methods.split(",")]
    bad = [m for m in methods if m not in SSL_METHODS]
    if bad:
        p.error(f"--methods: unknown {', '.join(map(repr, bad))}; choose from {', '.join(SSL_METHODS)}")
    if args.data not in SSL_DATA:
        p.error(f"--data: {args.data!r} is not a labelled text data set; choose from {', '.join(SSL_DATA)}")
    for flag, v, ok, allowed in (("--epochs", args.epochs, args.epochs >= 1, ">= 1"),
                                 ("--val-fraction", args.val_fraction, 0 < args.val_fraction < 1, "in (0, 1)"),
                                 ("--alpha", args.alpha, args.alpha >= 0, ">= 0"),
                                 ("--seeds", args.seeds, min(args.seeds) >= 0, ">= 0")):
        if not ok:
            p.error(f"{flag}: must be {allowed}, got {v}")
    for seed in args.seeds:
        for method in methods:
            try:
                r = ssl_run(args.data, method, seed, args.epochs, args.out_dir, alpha=args.alpha,
                            val_fraction=args.val_fraction, label_sampling=args.labels)
            except (ValueError, FileNotFoundError) as e:  # a missing data file, a run folder of other settings
                p.error(str(e))
            print(json.dumps({k: v for k, v in r.items() if k != "history"}), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
