"""The wheel (what ``pip install .`` installs) ships every config, and a non-editable install finds them.

Before: ``configs/`` sat beside ``src/`` and was not in the wheel, so ``vaekit reproduce`` in a non-editable
install failed looking for ``<site-packages>/../configs/...``. The wheel is built from a copy of the tree (the
checkout is shared; a build writes ``build/`` and ``*.egg-info`` where it runs) and inspected with zipfile;
installing it into a fresh venv would take minutes, so the second test puts the unpacked wheel first on
``PYTHONPATH`` in a folder with no ``configs/`` and resolves every reproduction's configs there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "src" / "vaekit" / "configs"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    r = subprocess.run([sys.executable, "-c", "from setuptools import build_meta; build_meta.build_wheel('dist')"],
                       cwd=tree, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = (tree / "dist").glob("vaekit-*.whl")
    return whl


def test_the_wheel_ships_every_config(wheel: Path) -> None:
    source = {f"vaekit/configs/{p.relative_to(CONFIGS).as_posix()}" for p in CONFIGS.rglob("*.yaml")}
    assert len(source) >= 20 and "vaekit/configs/vae_digits.yaml" in source  # the sub-folders are there too
    assert any(s.startswith("vaekit/configs/iwae/") for s in source)
    with zipfile.ZipFile(wheel) as z:
        shipped = {n for n in z.namelist() if n.startswith("vaekit/configs/")}
        assert shipped == source
        for name in shipped:  # the files themselves, not just their names
            assert z.read(name) == (ROOT / "src" / name).read_bytes()


def test_an_installed_wheel_finds_the_configs_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = textwrap.dedent(f"""
        import vaekit
        from pathlib import Path
        assert Path(vaekit.__file__).is_relative_to({str(site)!r}), vaekit.__file__
        from vaekit.config import load_config
        from vaekit.reproduce.runner import REPRODUCTIONS, get_reproduction, run_config
        n = 0
        for name in REPRODUCTIONS:
            rep = get_reproduction(name)
            for budget in rep.budgets.values():
                for run in budget.runs:
                    cfg = run_config(rep, run, 1, "out")
                    assert rep.run_spec(run).path.is_relative_to({str(site)!r})
                    n += 1
        # the README's command line: --config configs/... from a folder without configs/
        assert load_config("configs/vae_digits.yaml").data.name == "digits"
        print(n)
    """)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.split()[-1]) >= 3  # every reproduction's runs were resolved
    assert not (elsewhere / "out").exists()  # resolving a config starts nothing
