"""``vaekit report RUN_DIR``: one self-contained HTML page about a run.

The page needs nothing at view time: styles are inline, there is no script, and every figure is a PNG
embedded as a ``data:`` URI, so it can be mailed, archived or opened offline. It shows:

* the run: data set, model, checkpoint, training time;
* the resolved config (``config.json``), one dotted key per row;
* training curves (``metrics.jsonl``, :func:`vaekit.viz.training_curves`);
* prior samples, reconstructions and the latent plots that suit the model's latent geometry, drawn afresh
  from the checkpoint on the run's evaluation split (:func:`vaekit.pipeline.write_plots`, chosen by
  :func:`vaekit.pipeline.latent_plots`);
* every evaluation in the run directory (``eval.json``, ``eval-2.json``, ...; ``vaekit reproduce``'s saved
  ones in ``eval/``): estimates with standard errors and the estimators' settings, BDMC bounds;
* the environment the run was trained in (``environment.json``) and the one the report was made in:
  versions, device, the commit of vaekit's source.

The HTML is written with the standard library's :mod:`html` escaping rather than a template engine: one
fixed page of a few sections does not repay a dependency (jinja2), and every value is escaped at one place.
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
from html import escape
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["write_report", "build_report", "REPORT_SECTIONS"]

#: the sections of the page, by ``id``, in order
REPORT_SECTIONS = ("run", "config", "training", "images", "latents", "evaluation", "environment")

#: why each latent plot was chosen (see :func:`vaekit.pipeline.latent_plots`)
_WHY = {
    "manifold": "a 2-D Euclidean latent: decoder means on a grid of N(0, 1) quantiles (Kingma & Welling 2013, "
                "Fig. 4)",
    "circle": "a latent on the circle: decoder means along the angle; a Gaussian grid would decode points the "
              "decoder never saw",
    "sphere": "a latent on the 2-sphere: decoder means on a longitude/latitude grid",
    "scatter": "a latent of two or more coordinates: its encodings of the evaluation split, coloured by label "
               "(PCA above 2-D)",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:72em;
padding:0 1em;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;vertical-align:top;
text-align:left}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre,td.key{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
figure{display:inline-table;margin:.5em 1.5em 1em 0;vertical-align:top}figure img{max-width:100%;max-height:520px;
border:1px solid #eee}figcaption{display:table-caption;caption-side:bottom;font-size:.9em;color:#444;
padding-top:.3em}.note{color:#555}
.cfg table{display:inline-table;margin-right:1.2em;vertical-align:top}
"""


def _table(header: Sequence[str] | None, rows: Iterable[Sequence[Any]], num: Sequence[int] = ()) -> str:
    """An HTML table of escaped cells; ``num``: the columns aligned as numbers; no header row for None."""
    head = "" if header is None else "<thead><tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in header) + \
        "</tr></thead>"
    body = "".join("<tr>" + "".join(f"<td{' class=num' if i in num else ''}>{escape(str(c))}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``[("a.b", 1)]``; lists and scalars are leaves."""
    if isinstance(d, dict) and d:
        out: list[tuple[str, Any]] = []
        for k, v in d.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, json.dumps(d))]


def _config_tables(cfg: dict[str, Any]) -> str:
    """One small table per section of the config (data, model, train, eval, the rest), side by side."""
    groups: dict[str, list[tuple[str, Any]]] = {}
    for key, value in _flatten(cfg):
        top = key.split(".", 1)[0]
        groups.setdefault(top if isinstance(cfg.get(top), dict) else "run", []).append((key, value))
    return "<div class=cfg>" + "".join(_table(["key", "value"], rows) for rows in groups.values()) + "</div>"


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.{digits}f}"
    return "–" if v is None else str(v)


def _img(path: Path, caption: str, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _settings(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())


def _eval_section(run_dir: Path) -> str:
    """Every evaluation the run directory holds, newest numbering last."""
    parts = []
    files = sorted(run_dir.glob("eval*.json"), key=lambda p: (len(p.name), p.name))
    for f in files:
        try:
            p = json.loads(f.read_text())
            est = p["estimates"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            parts.append(f"<p class=note>{escape(f.name)}: not readable as an evaluation ({escape(str(e))})</p>")
            continue
        rows = []
        for tok, r in est.items():
            extra = {k: r[k] for k in ("acceptance",) if k in r}
            rows.append([tok, _fmt(r.get("mean")), _fmt(r.get("stderr")), _fmt(r.get("mc_stderr")), r.get("n"),
                         _fmt(r.get("seconds"), 1), _settings({**r.get("settings", {}), **extra})])
        parts.append(f"<h3>{escape(f.name)}</h3><p>{escape(str(p.get('split')))} split, {escape(str(p.get('n')))} "
                     f"examples, {escape(str(p.get('checkpoint')))} checkpoint (epoch {escape(str(p.get('epoch')))}, "
                     f"step {escape(str(p.get('step')))}), estimator seed {escape(str(p.get('seed')))}; estimates of "
                     "log p(x) in nats per example; s.e. over examples; MC s.e.: the Monte Carlo error of the mean "
                     "alone.</p>")
        parts.append(_table(["estimator", "mean (nats)", "s.e.", "MC s.e.", "n", "seconds", "settings"], rows,
                            num=(1, 2, 3, 4, 5)))
        if est:
            tok = max(est, key=lambda k: est[k]["mean"])
            parts.append(f"<p>NLL {-est[tok]['mean']:.3f} ± {est[tok]['stderr']:.3f} nats (from {escape(tok)}, the "
                         "largest estimate; each is a lower bound on log p(x) in expectation).</p>")
        if "classification_error" in p:  # M2: its classifier q(y|x) on the same rows
            c = p["classification_error"]
            parts.append(f"<p>Classification error {100 * c['error']:.2f} % ± {100 * c['se']:.2f} (binomial s.e., "
                         f"{escape(str(c['n']))} rows; the classifier q(y|x)).</p>")
        if "bdmc" in p:
            b = p["bdmc"]
            parts.append(f"<p>BDMC on {escape(str(b['settings'].get('n_simulated')))} examples simulated from the "
                         f"model ({escape(_settings(b['settings']))}): forward AIS bounds log p(x) from below, "
                         "reverse AIS from above.</p>")
            parts.append(_table(["T", "lower", "s.e.", "upper", "s.e.", "gap"],
                                [[r["T"], _fmt(r["lower"]), _fmt(r["lower_stderr"]), _fmt(r["upper"]),
                                  _fmt(r["upper_stderr"]), _fmt(r["gap"])] for r in b["rows"]], num=range(6)))
    saved = sorted((run_dir / "eval").glob("*.json")) if (run_dir / "eval").is_dir() else []
    rows = []
    for f in saved:  # vaekit reproduce's evaluations of the last checkpoint
        try:
            r = json.loads(f.read_text())
            ev = r["settings"]["eval"]
            rows.append([f.name, r["checkpoint"]["epoch"], r["n"], f"{r['elbo']['mean']:.3f} ± {r['elbo']['se']:.3f}",
                         f"{r['iwae']['mean']:.3f} ± {r['iwae']['se']:.3f}", _settings(ev)])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if rows:
        parts.append("<h3>vaekit reproduce's evaluations (eval/)</h3>")
        parts.append(_table(["file", "epoch", "n", "ELBO ± s.e.", "IWAE ± s.e.", "settings"], rows, num=(1, 2)))
    if not parts:
        parts.append(f"<p class=note>No evaluation in {escape(str(run_dir))} yet: <code>vaekit eval "
                     f"{escape(str(run_dir))}</code> writes one.</p>")
    return "".join(parts)


def _env_rows(env: dict[str, Any]) -> list[list[Any]]:
    git = (env.get("vaekit") or {}).get("git")
    commit = "not a git checkout" if not git else git["commit"] + (" (with uncommitted changes)" if git["dirty"]
                                                                   else "")
    pk = env.get("packages", {})
    return [["time (UTC)", env.get("time")], ["python", env.get("python")], ["platform", env.get("platform")],
            ["vaekit", f"{(env.get('vaekit') or {}).get('version')} at {(env.get('vaekit') or {}).get('path')}"],
            ["commit", commit], ["packages", ", ".join(f"{k} {v}" for k, v in pk.items())],
            ["device", env.get("device") if not env.get("gpu") else f"{env.get('device')} ({env.get('gpu')})"],
            ["CUDA available", env.get("cuda_available")], ["CPU", f"{env.get('cpu')}, {env.get('cores')} cores, "
                                                                  f"{env.get('threads')} torch threads"]]


def build_report(run_dir: str | Path, *, checkpoint: str = "best", device: str = "cpu",
                 data_dir: str | None = None, figures: bool = True) -> str:
    """The report page of ``run_dir`` as HTML text (see the module docstring for what it holds).

    Args:
        run_dir: a run directory written by :func:`vaekit.train.fit`.
        checkpoint: the checkpoint the figures are drawn from, ``best`` (falls back to ``last``) or ``last``.
        device: where the figures are drawn (``cpu``, ``cuda``, ``auto``).
        data_dir: where the data set's files are, if not where training found them.
        figures: draw the samples, reconstructions and latent plots (needs the data set).

    Raises:
        FileNotFoundError: no such run directory, no ``config.json``, or the data set's files are missing.
        vaekit.train.CheckpointError: the checkpoint is missing or corrupted.
    """
    from .. import viz
    from ..environment import environment
    from ..train import read_checkpoint
    from .evaluate import _open, _run_dir
    from .plots import caption, latent_plots, write_plots

    run_dir = _run_dir(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no config.json in {run_dir} (is it a vaekit run directory?)")
    cfg = json.loads(cfg_path.read_text())
    trained_env: list[dict[str, Any]] = []
    if (run_dir / "environment.json").is_file():
        try:
            trained_env = list(json.loads((run_dir / "environment.json").read_text()))
        except (OSError, ValueError, TypeError):
            trained_env = []
    metrics = run_dir / "metrics.jsonl"
    by_id: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="vaekit-report-") as tmp:
        tmp_dir = Path(tmp)
        if metrics.is_file() and metrics.stat().st_size > 0:
            curves = viz.training_curves(metrics, tmp_dir / "curves.png", keys=("elbo", "kl"))
            by_id["training"] = _img(curves, "ELBO and KL in nats per example: training (averaged over each "
                                             "logging window of steps) and validation (per epoch)",
                                     "training curves")
        else:
            by_id["training"] = "<p class=note>No metrics.jsonl yet: the run has not logged a step.</p>"
        fig_from = None
        if cfg.get("model") is None:
            by_id["images"] = by_id["latents"] = ("<p class=note>This run trained a model built by hand on data "
                                                  "given in memory; the page cannot rebuild it to draw figures.</p>")
        elif not figures:
            by_id["images"] = by_id["latents"] = "<p class=note>Figures not drawn (--no-figures).</p>"
        else:
            run, split, x, y = _open(run_dir, checkpoint, device, data_dir, None)
            kinds = latent_plots(run.model.latent_space)
            write_plots(tmp_dir, run.model, x, y, run.image_shape, seed=run.config.eval.seed)
            plots = tmp_dir / "plots"
            images = []
            if (plots / "samples.png").exists():  # the grids carry their captions as titles
                images.append(_img(plots / "samples.png", f"64 prior samples from the {run.which} checkpoint",
                                   caption("samples", 64)))
                images.append(_img(plots / "reconstructions.png", f"the first {min(32, x.shape[0])} examples of "
                                   f"the {split} split and their reconstructions", caption("reconstructions")))
            by_id["images"] = "".join(images) or ("<p class=note>The data are not images (no image shape), so "
                                                  "there are no sample or reconstruction grids.</p>")
            lat = []
            for kind in kinds:
                png = plots / f"latent_{kind}.png"
                if png.exists():
                    lat.append(_img(png, f"Chosen because the model has {_WHY[kind]}.",
                                    caption(kind) if kind != "scatter" else f"encodings of the {split} split"))
            space = run.model.latent_space
            by_id["latents"] = (f"<p>Latent space: {escape(str(space.geometry))}, dimension {space.dim}; plots "
                                f"chosen for it: {escape(', '.join(kinds) or 'none (a 1-D latent)')}.</p>"
                                + "".join(lat))
            fig_from = (f"{run.which} checkpoint, epoch {run.meta['epoch']}, step {run.meta['step']}; {split} split "
                        f"({x.shape[0]} examples)")
    last = None
    try:
        last = read_checkpoint(run_dir / "checkpoints", "last")[0]
    except Exception:  # noqa: BLE001 - a run without a readable checkpoint still gets its page
        last = None
    ex = (last or {}).get("extra", {})
    model = cfg.get("model") or {}
    latent = model.get("latent", {}) if isinstance(model, dict) else {}
    run_rows = [["run directory", str(run_dir.resolve())], ["data", f"{cfg['data']['name']} "
                                                                   f"(binarize: {cfg['data']['binarize']})"],
                ["model", f"{model.get('type', 'built by hand')}, latent {latent.get('type', '?')} "
                          f"(dim {latent.get('dim', '?')})" if model else "built by hand (model: null)"],
                ["trained", "no checkpoint yet" if last is None else
                 f"{last['epoch']} of {cfg['train']['epochs']} epochs, {last['step']} steps, "
                 f"{_fmt(ex.get('elapsed'), 1)} s"],
                ["best checkpoint", "–" if ex.get("best_val_elbo") is None else
                 f"epoch {ex.get('best_epoch')}, selected by validation {ex.get('select_by') or 'elbo'}"
                 + ("" if ex.get("best_val") is None or (ex.get("select_by") or "elbo") == "elbo" else
                    f" {ex['best_val']:.3f}") + f"; validation ELBO {ex['best_val_elbo']:.3f} nats"]]
    if fig_from is not None:
        run_rows.append(["figures from", fig_from])
    env_now = environment(device)
    env_html = ""
    for i, e in enumerate(trained_env):
        what = "trained" if not e.get("resumed_at_step") else f"resumed at step {e['resumed_at_step']}"
        env_html += f"<h3>{escape(what)} ({escape(str(e.get('ranks', 1)))} rank(s))</h3>" + _table(None, _env_rows(e))
    if not trained_env:
        env_html += "<p class=note>The run directory has no environment.json (trained before vaekit recorded it).</p>"
    env_html += "<h3>this report</h3>" + _table(None, _env_rows(env_now))
    name = escape(run_dir.resolve().name)
    body = [f"<h1>vaekit run {name}</h1><p class=note>Report made {escape(env_now['time'])} by <code>vaekit report"
            f"</code>; self-contained: figures are embedded, nothing is fetched.</p>",
            f'<section id="run"><h2>Run</h2>{_table(None, run_rows)}</section>',
            f'<section id="config"><h2>Config</h2><p>The resolved <code>config.json</code>, one dotted key per row '
            f"(values as JSON).</p>{_config_tables(cfg)}</section>",
            f'<section id="training"><h2>Training</h2>{by_id["training"]}</section>',
            f'<section id="images"><h2>Samples and reconstructions</h2>{by_id["images"]}</section>',
            f'<section id="latents"><h2>Latent space</h2>{by_id["latents"]}</section>',
            f'<section id="evaluation"><h2>Evaluation</h2>{_eval_section(run_dir)}</section>',
            f'<section id="environment"><h2>Environment</h2>{env_html}</section>']
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            f"<title>vaekit run {name}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None, *, checkpoint: str = "best",
                 device: str = "cpu", data_dir: str | None = None, figures: bool = True,
                 overwrite: bool = False) -> Path:
    """Write :func:`build_report`'s page and return its path.

    Where it goes is settled and checked before any work (:func:`vaekit.train.plan_output`): by default
    ``run_dir/report.html``, or ``report-2.html``, ... when that exists.

    Args:
        run_dir, checkpoint, device, data_dir, figures: as :func:`build_report`.
        out: the HTML path, or a folder for ``report.html`` in it.
        overwrite: replace the file ``out`` names if it exists.

    Raises:
        OutputError: ``out`` exists or cannot be written (before the work), or the write failed; and what
            :func:`build_report` raises.
    """
    from ..train import plan_output, write_output
    from .evaluate import _run_dir

    path = plan_output(out, _run_dir(run_dir) / "report.html", overwrite=overwrite)
    return write_output(path, build_report(run_dir, checkpoint=checkpoint, device=device, data_dir=data_dir,
                                           figures=figures))
