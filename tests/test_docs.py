"""The API reference (``docs/api``, Sphinx autodoc + napoleon) builds with warnings as errors and lists
every public name: each package's ``__all__`` on that package's page, the root's re-exports as links to
their homes, and the README's tour as the landing page.

The build runs in a child process into a temporary folder (about 15-30 s on 2 cores).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vaekit

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def _public_modules() -> list[str]:
    """``vaekit``'s subpackages and top-level modules (``vaekit.train``, ``vaekit.config``, ...)."""
    return sorted(m.name for m in pkgutil.iter_modules(vaekit.__path__))


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    pytest.importorskip("sphinx", reason="Sphinx is a test dependency: pip install -e '.[test]'")
    out = tmp_path_factory.mktemp("api")
    r = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(API), str(out)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, "sphinx-build -W failed:\n" + r.stderr[-6000:]
    return out


def test_every_package_has_a_page(html):
    pages = {p.stem for p in API.glob("*.rst")} - {"index"}
    assert pages == {"vaekit", *_public_modules()}, "add a page to docs/api (and to index.rst's toctree)"
    index = (html / "index.html").read_text()
    for name in pages:
        assert f'href="{name}.html"' in index, f"{name} is not in the landing page's table of contents"


def test_every_public_name_is_documented(html):
    missing = []
    for name in _public_modules():
        mod = importlib.import_module(f"vaekit.{name}")
        page = (html / f"{name}.html").read_text()
        for public in getattr(mod, "__all__", ()):
            if f'id="vaekit.{name}.{public}"' not in page:
                missing.append(f"vaekit.{name}.{public}")
    assert not missing, f"not in the API reference: {missing}"


def test_the_roots_reexports_link_to_their_homes(html):
    page = (html / "vaekit.html").read_text()
    for public in vaekit.__all__:
        homes = [p for p in _public_modules() if public in getattr(importlib.import_module(f"vaekit.{p}"), "__all__", ())]
        assert homes, public
        assert re.search(rf'href="{homes[0]}\.html#vaekit\.{homes[0]}\.{public}"', page), \
            f"vaekit.{public}: docs/api/vaekit.rst should link it to vaekit.{homes[0]}.{public}"
    listed = set(re.findall(r"<code[^>]*><span class=\"pre\">vaekit\.(\w+)</span></code>", page))
    assert listed == set(vaekit.__all__), "docs/api/vaekit.rst lists other names than vaekit.__all__"


def test_the_landing_page_is_the_readme_tour(html):
    index = (html / "index.html").read_text()
    readme = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    assert headings
    for h in headings:
        assert h.replace("&", "&amp;") in index, f"README heading {h!r} is not on the landing page"
