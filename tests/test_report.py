"""``vaekit report RUN_DIR``: one self-contained HTML page (issue 18, "Reports").

The structure test always runs: it parses the page with the standard library and checks that it fetches
nothing (no script, no link, no external URL; every image a PNG ``data:`` URI whose pixels are not
blank), that the sections come in order, that the latent plots are the ones the latent geometry calls
for, and that the evaluation table, the config and the environment show what the run directory holds.
The browser test loads the page in Debian's chromium, headless through Playwright, and asserts no console
error, no failed or external request, and every image decoded with a non-zero size; it is skipped, with
the reason, where chromium or Playwright is missing (CI machines may lack the browser).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from vaekit.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "vae_digits.yaml")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.usefixtures("one_thread")


class Page(HTMLParser):
    """Tags, attributes, section ids and text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def _png(src: str) -> np.ndarray:
    """Decode a ``data:image/png;base64,`` URI to an (H, W, C) array."""
    import matplotlib.image

    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    raw = base64.b64decode(src[len(prefix):], validate=True)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(io.BytesIO(raw), format="png")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two short runs with different latent geometries, evaluated, then reported through the command line."""
    out = tmp_path_factory.mktemp("report")
    made = {}
    for name, latent in (("gauss<&>", ["model.latent.dim=2"]),
                         ("sphere", ["model.latent={type: vmf, dim: 3}"])):
        args = ["train", "--config", CONFIG, "--out", str(out), f"run_name={name}", "train.epochs=2",
                "eval.estimators=elbo,iwae:10", "--device", "cpu", "--threads", "1", *latent]
        assert main(args) == 0
        run = out / name
        assert main(["eval", str(run), "--estimators", "elbo,ais:3", "--n", "20", "--ais-chains", "2",
                     "--bdmc", "--bdmc-n", "3", "--bdmc-T", "2,4"]) == 0
        page = out / f"{name}.html"
        assert main(["report", str(run), "--out", str(page)]) == 0
        made[name] = (run, page)
    return made


def test_the_page_is_self_contained_and_complete(runs):
    from vaekit.pipeline import build_report, latent_plots
    from vaekit.pipeline.report import REPORT_SECTIONS
    from vaekit.train import load_run

    for name, (run, page_path) in runs.items():
        html = page_path.read_text()
        page = Page(html)
        # nothing fetched at view time
        assert not page.all("script") and not page.all("link") and not page.all("iframe")
        assert "http://" not in html and "https://" not in html and "url(" not in html
        for tag, attrs in page.tags:
            for key in ("src", "href"):
                assert attrs.get(key) is None or attrs[key].startswith(("data:", "#")), (tag, attrs)
        # sections in order
        ids = [a["id"] for t, a in page.tags if t == "section"]
        assert ids == list(REPORT_SECTIONS)
        # images: PNGs with pixels that vary (not blank), and the latent plots the geometry calls for
        imgs = page.all("img")
        for a in imgs:
            px = _png(a["src"])
            assert px.shape[0] > 10 and px.shape[1] > 10 and float(px[..., :3].std()) > 0.01, a["alt"]
        model = load_run(run).model
        kinds = latent_plots(model.latent_space)
        assert kinds == ({"gauss<&>": ("manifold", "scatter"), "sphere": ("sphere", "scatter")}[name])
        alts = [a["alt"] for a in imgs]
        assert alts[0] == "training curves" and len(imgs) == 3 + len(kinds)
        assert alts[1].startswith("64 draws z ~ p(z)") and alts[2].startswith("odd rows: data")
        text = " ".join(page.text)
        assert f"plots chosen for it: {', '.join(kinds)}" in text
        # the evaluations, with standard errors and settings
        for f in ("eval.json", "eval-2.json"):
            ev = json.loads((run / f).read_text())
            assert f in text
            for tok, r in ev["estimates"].items():
                assert f"{r['mean']:.3f}" in text and f"{r['stderr']:.3f}" in text, (f, tok)
        assert "k=10, seed=1234, batch_size=100" in text and "T=3, n_chains=2, leapfrog_steps=10" in text
        bd = json.loads((run / "eval-2.json").read_text())["bdmc"]["rows"]
        assert [f"{r['upper']:.3f}" in text for r in bd] == [True, True]
        # the config, key by key, and the environment training recorded
        cfg = json.loads((run / "config.json").read_text())
        assert "model.latent.type" in text and json.dumps(cfg["model"]["latent"]["type"]) in text
        env = json.loads((run / "environment.json").read_text())
        assert len(env) == 1 and env[0]["packages"]["torch"] in text
        if env[0]["vaekit"]["git"]:
            assert env[0]["vaekit"]["git"]["commit"] in text
    # text from the run is escaped, not markup
    html = runs["gauss<&>"][1].read_text()
    assert "gauss&lt;&amp;&gt;" in html and "gauss<&>" not in html
    # the library call gives the same page but for the time stamps
    again = build_report(runs["sphere"][0])
    assert again.count("<img") == runs["sphere"][1].read_text().count("<img")


def test_the_report_checks_where_it_writes_first_and_never_replaces_unasked(runs, capsys, monkeypatch):
    from vaekit.pipeline import report

    run, page = runs["sphere"]
    monkeypatch.setattr(report, "build_report", lambda *a, **k: pytest.fail("built before the output was checked"))
    assert main(["report", str(run), "--out", str(page)]) == 1
    assert f"--out {page} exists" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["report", str(run), "--no-figures"]) == 0 and main(["report", str(run), "--no-figures"]) == 0
    assert (run / "report.html").is_file() and (run / "report-2.html").is_file()
    assert "<img" in (run / "report.html").read_text()  # the training curves: no data needed
    assert "Figures not drawn" in (run / "report-2.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install -y chromium)")
def test_the_page_loads_in_a_real_browser_without_errors(runs, tmp_path):
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    script = r'''
import json, sys
from playwright.sync_api import sync_playwright
out = {"console": [], "errors": [], "requests": [], "failed": []}
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=sys.argv[1], args=["--no-sandbox"])
    page = browser.new_page()
    page.on("console", lambda m: out["console"].append([m.type, m.text]))
    page.on("pageerror", lambda e: out["errors"].append(str(e)))
    page.on("request", lambda r: out["requests"].append(r.url[:60]))
    page.on("requestfailed", lambda r: out["failed"].append(r.url[:60]))
    page.goto(sys.argv[2], wait_until="load")
    out["images"] = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    out["sections"] = page.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")
    out["title"] = page.title()
    page.screenshot(path=sys.argv[3], full_page=True)
    browser.close()
print(json.dumps(out))
'''
    # in a child process: Playwright's sync API refuses to start inside a running event loop
    for name, (run, page) in runs.items():
        shot = tmp_path / f"{name}.png"
        r = subprocess.run([sys.executable, "-c", script, CHROMIUM, page.resolve().as_uri(), str(shot)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out["errors"] == [] and [m for m in out["console"] if m[0] in ("error", "warning")] == [], out
        assert out["failed"] == [] and all(u.startswith(("file:", "data:")) for u in out["requests"]), out
        assert len(out["images"]) >= 4 and all(c and w > 0 and h > 0 for c, w, h in out["images"]), out["images"]
        assert out["sections"][0] == "run" and out["title"].startswith("vaekit run")
        assert shot.stat().st_size > 10_000
