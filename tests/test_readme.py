"""The README's "In your own training loop" snippet runs as written (epochs and k cut down for time)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippet_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "the README should hold exactly one python snippet"
    code = blocks[0]
    assert "range(20)" in code and "k=1000" in code
    code = code.replace("range(20)", "range(1)").replace("k=1000", "k=20")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme_snippet"})  # noqa: S102 - our own README
