"""Imports point down the layer table of ARCHITECTURE.md: no module imports from a higher layer.

Every module under ``src/vaekit`` is parsed with :mod:`ast` (imports inside functions included,
relative and absolute) and mapped to its layer; an import of a module in a higher layer fails the
test, listed with file and line. The package's own ``vaekit/__init__.py`` is exempt (it re-exports).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "vaekit"

#: bottom up; a package may import itself and anything listed before it. The order refines the layer
#: table of ARCHITECTURE.md (as ranked by ../shared/hooks/before-stop): layers the table puts level
#: (distributions, nets, likelihoods, data, viz; flows, inference; objectives, evaluation; train,
#: pipeline) are given an order here too, so that no two packages may import each other.
LAYERS: list[tuple[str, ...]] = [
    ("registry", "compile", "progress", "environment"),  # utilities
    ("distributions",),
    ("nets",),
    ("likelihoods",),
    ("data",),
    ("viz",),
    ("flows",),
    ("inference",),
    ("latents",),
    ("models",),
    ("objectives",),
    ("evaluation",),
    ("config",),
    ("train",),
    ("pipeline",),
    ("reproduce",),
    ("cli",),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}

#: (importing file relative to src/vaekit, imported module) pairs allowed for now; each names
#: the file whose owner must move the import. Empty is the goal.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    """``src/vaekit/train/loop.py`` -> ``vaekit.train.loop``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every ``vaekit`` module imported anywhere in ``path`` (function bodies too).

    ``from X import name`` counts as an import of ``X.name`` when that is a module, else of ``X``.
    """
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "vaekit"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "vaekit":
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.append((node.lineno, sub if _is_module(sub) else mod))
    return out


def layer_of(module: str) -> str | None:
    """The layer name of ``vaekit.<layer>...`` (None for the package root ``vaekit``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """``layer -> layers it imports`` over every module, and the list of upward imports (as messages)."""
    graph: dict[str, set[str]] = {}
    upward: list[str] = []
    for path in sorted(PKG.rglob("*.py")):
        if path == PKG / "__init__.py":
            continue
        me = layer_of(module_name(path))
        assert me in RANK, f"{path.relative_to(SRC)}: package {me!r} is not in the layer table; add it to LAYERS"
        graph.setdefault(me, set())
        for line, mod in imported_modules(path):
            other = layer_of(mod)
            rel = str(path.relative_to(PKG))
            if other is None:
                upward.append(f"{rel}:{line} imports the package root 'vaekit' (which imports many layers); "
                              "import from the defining package instead")
                continue
            assert other in RANK, f"{rel}:{line}: imports {mod}, whose package is not in the layer table"
            if other != me:
                graph[me].add(other)
            if RANK[other] > RANK[me] and (rel, mod) not in KNOWN_EXCEPTIONS:
                upward.append(f"{rel}:{line} ({me}, layer {RANK[me]}) imports {mod} ({other}, layer {RANK[other]})")
    return graph, upward


def test_imports_point_down_the_layer_table():
    _, upward = import_graph()
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_known_exceptions_are_still_needed():
    """An exception that no longer occurs must leave the list (so the list only shrinks)."""
    seen = {(str(p.relative_to(PKG)), m) for p in PKG.rglob("*.py") for _, m in imported_modules(p)}
    stale = KNOWN_EXCEPTIONS - seen
    assert not stale, f"remove these from KNOWN_EXCEPTIONS, they no longer occur: {sorted(stale)}"


def test_the_parser_sees_relative_function_level_and_from_imports(tmp_path, monkeypatch):
    """The checker itself: a function-level relative import two levels up is resolved and flagged."""
    pkg = tmp_path / "vaekit"
    (pkg / "config").mkdir(parents=True)
    (pkg / "train").mkdir()
    for f in ("__init__.py", "config/__init__.py", "train/__init__.py", "train/loop.py"):
        (pkg / f).write_text("")
    (pkg / "config" / "x.py").write_text("def f():\n    from ..train import loop\n    from . import y\n"
                                         "import vaekit.registry\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    got = sorted(imported_modules(pkg / "config" / "x.py"))
    assert got == [(2, "vaekit.train.loop"), (3, "vaekit.config"), (4, "vaekit.registry")]


if __name__ == "__main__":  # print the import graph (package -> packages it imports)
    g, up = import_graph()
    for layer in sorted(g, key=RANK.get):
        print(f"{layer} -> {', '.join(sorted(g[layer], key=RANK.get)) or '(torch and third-party only)'}")
    print("\n".join(up) or "no upward imports")
