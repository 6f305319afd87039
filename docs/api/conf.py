"""Sphinx configuration of vaekit's API reference (``sphinx-build -W -b html docs/api OUT``).

Sphinx, not MkDocs: the docstrings are reStructuredText (``:func:`` roles, ``.. math::``, double
backquotes) in Google style (``Args:``, ``Returns:``, ``Raises:``), which autodoc with napoleon reads
as written; DEVELOPERS.md says more. ``tests/test_docs.py`` builds this with warnings as errors.
"""

from __future__ import annotations

project = "vaekit"
author = "the vaekit developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "myst_parser"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

# Each package page documents exactly the package's __all__ (autodoc follows __all__ for :members:);
# undoc-members so that registries and constants without a docstring are listed too.
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Annotations such as torch.Tensor or nn.Module stay as written: resolving them would import
# nothing new, but the reference would then depend on torch's own (absent) inventory.
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Attributes: sections as :ivar: fields: as attribute directives they would describe a dataclass field a
# second time (undoc-members already lists it).
napoleon_use_ivar = True
# A re-exported name is documented on each page that exports it (vaekit.config.ConfigError is
# vaekit.registry.ConfigError), so an unqualified reference to it finds more than one target; all of
# them are the same object, and that is the only case in which Sphinx emits ref.python.
suppress_warnings = ["ref.python"]
myst_heading_anchors = 2
html_theme = "alabaster"
html_title = "vaekit API reference"


def _data_entries(app, docname, source):
    """Append an ``autodata`` entry for every name of the page's package ``__all__`` that ``automodule``
    leaves out: autodoc documents a variable only where its own module's source assigns it with a doc
    comment, so a registry, a constant or a submodule that a package re-exports would be missing. Done here
    rather than by hand, so that a name added to ``__all__`` appears without editing the page
    (tests/test_docs.py checks every name)."""
    import importlib
    import inspect

    from sphinx.pycode import ModuleAnalyzer

    if docname in ("index", "vaekit"):
        return
    modname = f"vaekit.{docname}"
    mod = importlib.import_module(modname)
    try:
        own = {name for (_, name) in ModuleAnalyzer.for_module(modname).find_attr_docs()}
    except Exception:  # noqa: BLE001 - no source to analyse: then nothing is documented twice either
        own = set()
    entries = []
    for name in getattr(mod, "__all__", ()):
        obj = getattr(mod, name)
        if inspect.isclass(obj) or inspect.isroutine(obj) or name in own:
            continue
        simple = isinstance(obj, (str, int, float, bool, tuple)) and len(repr(obj)) <= 80
        entries.append(f".. autodata:: {modname}.{name}" + ("" if simple else "\n   :no-value:"))
    if entries:
        source[0] += "\n\nVariables and submodules\n" + "-" * 24 + "\n\n" + "\n\n".join(entries) + "\n"


def _data_doc(app, what, name, obj, options, lines):
    """A re-exported variable's doc is its ``#:`` comment where a module of its package assigns it; never the
    docstring of its type (``dict``'s, a registry class's), which autodoc falls back to."""
    import inspect
    import sys

    from sphinx.pycode import ModuleAnalyzer

    if what != "data" or inspect.ismodule(obj):
        return
    pkg, _, short = name.rpartition(".")
    for modname in sorted(m for m in list(sys.modules) if m == pkg or m.startswith(pkg + ".")):
        try:
            doc = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", short))
        except Exception:  # noqa: BLE001 - a module without source
            continue
        if doc:
            lines[:] = list(doc)
            return
    lines[:] = []


def setup(app):
    app.connect("source-read", _data_entries)
    app.connect("autodoc-process-docstring", _data_doc)
