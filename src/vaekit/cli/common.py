"""Arguments shared by the subcommands."""

from __future__ import annotations

from typing import Any

__all__ = ["add_image_run_args", "add_out_args"]


def add_image_run_args(p: Any, default_png: str) -> None:
    """The arguments every "draw from a run's data" command shares (``reconstruct``, ``interpolate``)."""
    p.add_argument("run_dir")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--data-dir", help="override data.data_dir")
    add_out_args(p, default_png)


def add_out_args(p: Any, default_png: str) -> None:
    """``--out`` and ``--force`` of the commands that write one PNG."""
    stem, _, ext = default_png.rpartition(".")
    p.add_argument("--out", help=f"PNG path or folder (default RUN_DIR/plots/{default_png}, or {stem}-2.{ext}, ... "
                                 "when taken)")
    p.add_argument("--force", action="store_true", help="replace the file --out names if it exists")
