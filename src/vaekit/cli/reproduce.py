"""``vaekit reproduce NAME``: re-run a paper's experiment set and print our numbers next to the paper's.

Available: ``iwae`` (Burda, Grosse & Salakhutdinov 2015, arXiv:1509.00519, Table 1) — see
:mod:`vaekit.reproduce.iwae`. Prints the markdown table, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``reproduce`` (with its ``iwae`` sub-command) on the ``vaekit`` sub-parsers."""
    from ..reproduce import iwae

    p = sub.add_parser("reproduce", help="reproduce a paper's experiments (iwae)",
                       description="Reproduce a paper's experiment set and compare with its published numbers.")
    which = p.add_subparsers(dest="paper", required=True, metavar="PAPER")
    pi = which.add_parser("iwae", help="Burda et al. 2015, Table 1: test NLL (IWAE-5000) and active units on MNIST",
                          description=iwae.__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    iwae.add_arguments(pi)
    pi.set_defaults(func=iwae.run_from_args)
