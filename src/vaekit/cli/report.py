"""``vaekit report RUN_DIR``: one self-contained HTML page about a run (:func:`vaekit.pipeline.write_report`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit report`` on the argparse subparsers ``sub``."""
    from .common import add_checkpoint_arg, add_run_dir_arg

    p = sub.add_parser(
        "report", help="write one self-contained HTML page about a run",
        description="Write one HTML page about a run that needs nothing at view time (figures embedded, no "
                    "scripts, nothing fetched): the run and its config, training curves, prior samples and "
                    "reconstructions, the latent plots that suit its latent geometry (drawn afresh from the "
                    "checkpoint on the run's evaluation split), every evaluation in the run directory with its "
                    "standard errors and estimator settings, and the environment (versions, device, commit) it "
                    "was trained in and the report was made in. Prints the page's path.")
    add_run_dir_arg(p)
    add_checkpoint_arg(p)
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="where the figures are drawn; auto: cuda if available (default: cpu)")
    p.add_argument("--data-dir", help="where the data set's files are, if not where training found them "
                                      "(overrides the run's data.data_dir)")
    p.add_argument("--no-figures", action="store_true",
                   help="leave out the samples, reconstructions and latent plots (they need the data set)")
    p.add_argument("--out", help="HTML path, or a folder (existing, or written with a trailing /) for report.html "
                                 "in it; checked before the work (default RUN_DIR/report.html, or report-2.html, "
                                 "... when taken)")
    p.add_argument("--force", action="store_true", help="replace the file --out names if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit report``; returns the exit status."""
    from ..pipeline import write_report

    print(write_report(args.run_dir, args.out, checkpoint=args.checkpoint, device=args.device,
                       data_dir=args.data_dir, figures=not args.no_figures, overwrite=args.force))
    return 0
