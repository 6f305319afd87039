"""``vaekit`` entry point: argparse subcommands, each in its own module with ``add_parser(subparsers)``.

Bad input (unknown config key, wrong type, missing data, corrupted checkpoint,
data a model cannot score) ends with one ``vaekit: error: ...`` message and exit
status 2, not a traceback; a run that trained but failed at its job (a non-finite
loss, no optimiser step) or a file that could not be written, the same way with
status 1 (results computed but not written are printed as JSON first). Set
``VAEKIT_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from ..registry import ConfigError
from ..train.checkpoint import CheckpointError
from ..train.ddp import joined_process_group
from ..train.loop import TrainingError
from ..train.outputs import OutputError
from . import eval as eval_cmd
from . import complete, fewshot, generate, homotopy, impute, interpolate, reconstruct, report, sample, train

#: Errors that mean "your input is wrong" and are reported in one message.
USER_ERRORS = (ConfigError, CheckpointError, FileNotFoundError, ValueError, TypeError, NotImplementedError)


def build_parser() -> argparse.ArgumentParser:
    """The ``vaekit`` parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(prog="vaekit", description="Variational autoencoders from pluggable latent layers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in (train, eval_cmd, sample, complete, reconstruct, interpolate, report, fewshot, generate, homotopy, impute):
        mod.add_parser(sub)
    try:  # written by another module; optional so the rest of the CLI never depends on it
        from . import reproduce
    except ImportError:
        pass
    else:
        reproduce.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vaekit`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse fills a positional ``nargs="*"`` once, so KEY=VALUE overrides written after options
    # (``vaekit reproduce iwae --budget small train.epochs=1``) come back unparsed: take them, refuse the rest.
    if extra and hasattr(args, "overrides") and all("=" in a and not a.startswith("-") for a in extra):
        args.overrides = list(args.overrides or []) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        rc = args.func(args)
    except USER_ERRORS as e:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        msg = str(e) if str(e) else type(e).__name__
        if isinstance(e, KeyError):
            msg = f"missing key {e}"
        print(f"vaekit: error: {msg}", file=sys.stderr)
        return 2
    except OutputError as e:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        if e.payload is not None:  # computed but not written: the results go to stdout rather than nowhere
            print(json.dumps(e.payload, indent=2, default=float))
        print(f"vaekit: error: {e}" + ("; the results are printed above" if e.payload is not None else ""),
              file=sys.stderr)
        return 1
    except (TrainingError, OSError) as e:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        print(f"vaekit: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # a TrainingInterrupted says where training stopped and how to resume
        print(f"vaekit: interrupted: {e}" if str(e) else "vaekit: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


def console_main() -> None:
    """The ``vaekit`` console script: :func:`main`, then exit with its status.

    A process that joined a DDP process group ends at once (:func:`os._exit`, after flushing stdout and
    stderr) instead of through the interpreter's teardown. There gloo's transport threads can still hold their
    pairs (a peer that was lost leaves them broken), and destroying a joinable C++ ``std::thread`` aborts the
    process (SIGABRT, "terminate called without an active exception") after it has reported its result: about
    1 exit in 12 here after a lost peer, and about 1 in 100 after a run that ended normally. Nothing is left
    to clean up by then: checkpoints, metrics and reports were written and closed before :func:`main` returned.
    An exception that escapes :func:`main` there (a bug, ``VAEKIT_DEBUG=1``) is printed with its traceback and
    ends the process the same way, with status 1. :func:`main` itself returns, so a program that calls it keeps
    control.
    """
    try:
        status = main()
    except SystemExit as e:
        if not joined_process_group():
            raise
        status = e.code if isinstance(e.code, int) else 1
    except BaseException:
        if not joined_process_group():
            raise
        import traceback

        traceback.print_exc()
        status = 1
    if joined_process_group():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    console_main()
