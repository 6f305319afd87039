"""``vaekit impute RUN_DIR "the ___ sat on the ___"``: fill in missing words with a text run."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``vaekit impute`` on the argparse subparsers ``sub``."""
    from .common import add_checkpoint_arg, add_run_dir_arg, int_at_least

    p = sub.add_parser(
        "impute", help="fill in missing words (___) of a sentence with a text run",
        description="Replace each ___ in the sentence by the run's imputation: a text VAE infers its code from the "
                    "observed words and beam search maximises log p(x|z) over the missing ones, the observed words "
                    "fixed; a language model maximises log p(x) (Bowman et al. 2016, Sec. 5.2). Words are split on "
                    "whitespace; words outside the run's vocabulary are read as <unk> (said on stderr).")
    add_run_dir_arg(p)
    p.add_argument("sentence", help='the sentence with ___ for each missing word (quoted), e.g. "the ___ rose ___"')
    p.add_argument("--beam", type=int_at_least(1), default=5, help="beam width (default: 5)")
    p.add_argument("--free-tail", action="store_true",
                   help="the blanks end the sentence: continue it freely (any number of words) instead of filling "
                        "exactly as many words as there are blanks")
    p.add_argument("--keep-case", action="store_true",
                   help="do not lower-case the sentence (the shipped corpora are lower case; default: lower-case)")
    add_checkpoint_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``vaekit impute`` (:func:`vaekit.pipeline.text.impute_text`); returns the exit status."""
    from ..pipeline.text import impute_text

    print(impute_text(args.run_dir, args.sentence, args.beam, args.free_tail, checkpoint=args.checkpoint,
                      lowercase=not args.keep_case))
    return 0
