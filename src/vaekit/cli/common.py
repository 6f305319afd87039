"""Arguments shared by the subcommands."""

from __future__ import annotations

import argparse
from typing import Any, Callable

__all__ = ["add_image_run_args", "add_out_args", "add_run_dir_arg", "add_checkpoint_arg", "int_at_least"]


def int_at_least(lo: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= lo``.

    A count of 0 is refused when the options are parsed (argparse names the option and exits with status 2)
    rather than reaching code where ``0`` reads as "not given" and is silently replaced by a default.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {value}")
        return value

    return parse


def add_run_dir_arg(p: Any) -> None:
    """The positional ``run_dir``."""
    p.add_argument("run_dir", help="a run directory written by `vaekit train` (holds config.json and checkpoints/)")


def add_checkpoint_arg(p: Any) -> None:
    """``--checkpoint best|last``."""
    p.add_argument("--checkpoint", choices=["best", "last"], default="best",
                   help="best: the checkpoint with the best validation score of train.select_by (the training "
                        "objective's value by default; the last one when the run has no validation split); last: the latest one (default: best)")


def add_image_run_args(p: Any, default_png: str) -> None:
    """The arguments every "draw from a run's data" command shares (``reconstruct``, ``interpolate``)."""
    add_run_dir_arg(p)
    p.add_argument("--split", choices=["train", "val", "test"], default="test",
                   help="the split whose images are used, binarised once with the run's fixed seed as for evaluation "
                        "(default: test)")
    add_checkpoint_arg(p)
    p.add_argument("--data-dir", help="where the data set's files are, if not where training found them "
                                      "(overrides the run's data.data_dir)")
    add_out_args(p, default_png)


def add_out_args(p: Any, default_png: str) -> None:
    """``--out`` and ``--force`` of the commands that write one PNG."""
    stem, _, ext = default_png.rpartition(".")
    p.add_argument("--out", help=f"PNG path, or a folder (existing, or written with a trailing /) for {default_png} "
                                 f"in it; checked before drawing (default RUN_DIR/plots/{default_png}, or "
                                 f"{stem}-2.{ext}, ... when taken)")
    p.add_argument("--force", action="store_true", help="replace the file --out names if it exists")
