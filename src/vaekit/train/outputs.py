"""Where a command writes: checked before the work, never replaced unasked, and a failed write that keeps
what was computed.

Evaluations can run for hours; finding out afterwards that ``--out`` points into a read-only or
missing folder must not cost the result. So every command that computes and then writes:

1. plans its output first (:func:`plan_output`): the folder is created and a probe file written and
   removed in it, so a folder that cannot take the file fails before any work, naming it;
2. never replaces a file silently: a default name that is taken gets the next free number
   (``eval.json`` -> ``eval-2.json``), an explicit path that exists is refused unless overwriting is
   asked for;
3. writes atomically (:func:`write_output`), and on failure raises :class:`OutputError` naming the
   path and carrying the result (``payload``), which the command line then prints;
4. a summary rebuilt from the run folders present (the reproductions' results files) is not rewritten when
   that would drop runs it already holds (:func:`refuse_to_drop`): run folders are not committed, so another
   machine sees fewer of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from .checkpoint import atomic_write_bytes

__all__ = ["OutputError", "plan_output", "check_folder", "write_output", "next_free", "refuse_to_drop",
           "files_sha256", "read_keyed", "write_keyed"]


class OutputError(OSError):
    """A result could not be written to ``path``.

    Attributes:
        path: the file (or folder) that could not be written.
        payload: the JSON-ready result that was to be written, kept so that it is not lost
            (``vaekit`` prints it); None when nothing was computed yet.
    """

    def __init__(self, message: str, path: str | Path, payload: Any = None) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.payload = payload

    def __str__(self) -> str:
        return str(self.args[0])


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def next_free(path: Path) -> Path:
    """``path`` if no such file exists, else the first of ``stem-2.suffix``, ``stem-3.suffix``, ... that is free."""
    if not path.exists():
        return path
    i = 2
    while (cand := path.with_name(f"{path.stem}-{i}{path.suffix}")).exists():
        i += 1
    return cand


def check_folder(folder: str | Path, what: str = "output") -> Path:
    """Create ``folder`` (with its parents) and prove it takes a file: write and remove a probe in it.

    A probe rather than :func:`os.access`: the permission bits say nothing about a read-only mount,
    a full disk's inode table or a root-owned folder under ``sudo``.

    Raises:
        OutputError: naming the folder and the system's reason.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the {what} folder {folder}: {_reason(e)}", folder) from None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".vaekit-probe-"):
            pass
    except OSError as e:
        raise OutputError(f"cannot write into the {what} folder {folder}: {_reason(e)}", folder) from None
    return folder


def plan_output(out: str | Path | None, default: Path, *, overwrite: bool = False, flag: str = "--out") -> Path:
    """The file a command will write, decided and checked before the command does any work.

    Args:
        out: the path the user gave (None: ``default``). An existing folder, or a path ending in a
            separator, means ``<out>/<default's name>``.
        default: where the file goes by default; taken names get the next free number
            (:func:`next_free`), so an earlier result is kept.
        overwrite: replace a file the user named explicitly (without it that is an error).
        flag: how the user named ``out`` (for messages).

    Raises:
        OutputError: the named file exists (and ``overwrite`` is False), or its folder cannot be created
            or written (see :func:`check_folder`).
    """
    if out is None:
        path = next_free(Path(default))
    else:
        path = Path(out).expanduser()
        if path.is_dir() or str(out).endswith((os.sep, "/")):
            path = path / Path(default).name
        if path.is_dir():
            raise OutputError(f"{flag} {path} is a folder; give a file name", path)
        if path.exists() and not overwrite:
            raise OutputError(f"{flag} {path} exists; choose another path or ask to overwrite it "
                              "(--force on the command line)", path)
    check_folder(path.parent)
    return path


def write_output(path: str | Path, data: str | bytes, payload: Any = None) -> Path:
    """Write ``data`` to ``path`` atomically (the old file or the whole new one, never a torn one).

    Raises:
        OutputError: naming ``path`` and the system's reason, carrying ``payload`` (the result).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data.encode() if isinstance(data, str) else data)
    except OSError as e:
        raise OutputError(f"could not write {path}: {_reason(e)}", path, payload) from None
    return path


def refuse_to_drop(path: str | Path, present: Iterable[str], field: str | None = None,
                   ignore: Iterable[str] = (), force: bool = False,
                   names: Callable[[Any], Iterable[str]] | None = None, how: str = "pass --force") -> None:
    """Refuse to rebuild a results file from run folders when that would drop results the file already holds.

    A summary such as ``docs/results/convdraw.json`` is rebuilt from the run folders found on this machine, and
    run folders are not committed: on another machine a rebuild would silently drop every run it cannot see.
    The runs the file holds are the keys of ``data[field]`` (or of the top level when ``field`` is None, less
    ``ignore``), or ``names(data)`` when given (for files that list their runs as rows); those not in ``present``
    would be lost. ``how`` ends the message: the flag that overrides the check in the calling command.

    Raises:
        OutputError: naming the file and the runs it would drop, unless ``force`` (or the file is absent or not a
            JSON object).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if force:
        return
    if names is not None:
        try:
            held: Any = set(names(data))
        except (KeyError, TypeError, AttributeError):
            return  # not a file of this kind: nothing of ours to drop
    else:
        held = data.get(field) if isinstance(data, dict) and field is not None else data
        if not isinstance(held, dict):
            return
    missing = sorted(set(held) - set(present) - set(ignore))
    if missing:
        raise OutputError(f"{path} holds the results of {len(missing)} run(s) not found here ({', '.join(missing)}); "
                          f"rewriting it would drop them. Bring those run folders back, write elsewhere, or {how}",
                          path)


def refuse_other_settings(path: str | Path, settings: dict[str, Any], read: Callable[[Any], dict[str, Any]],
                          force: bool = False, how: str = "pass --force") -> None:
    """Refuse to replace a results file that holds the same experiment at other settings (epochs, AIS lengths,
    images, run folders...): such a file is another result, not an older copy of this one. ``read`` takes the
    file's JSON to its settings (a missing key counts as different); a file that is absent or not JSON passes.

    Raises:
        OutputError: naming the file, each differing setting as ``key: old → new`` and ``how`` (the way out).
    """
    if force:
        return
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return
    try:
        old = read(data)
    except (KeyError, TypeError, AttributeError):
        old = {}
    differ = [f"{k}: {old.get(k)} → {v}" for k, v in settings.items() if old.get(k) != v]
    if differ:
        raise OutputError(f"{path} holds this experiment at other settings ({'; '.join(differ)}); replacing it "
                          f"would lose that result. Write elsewhere, or {how}", Path(path))


def files_sha256(paths: Iterable[str | Path]) -> str | None:
    """sha256 over the names and bytes of ``paths`` in sorted order (what a saved result was computed from);
    None when none exists."""
    found = sorted(Path(p) for p in paths if Path(p).exists())
    if not found:
        return None
    h = hashlib.sha256()
    for f in found:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def read_keyed(path: str | Path, key: dict[str, Any]) -> Any:
    """The value :func:`write_keyed` saved in ``path`` under exactly ``key``, else None (no file, an unreadable one,
    or one saved under another key: another checkpoint, data or setting).

    Long computations (AIS, estimators of an evaluation) save each finished part this way, so an interruption
    loses only the part that was running and a rerun with the same key picks the rest up.
    """
    try:
        held = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return held.get("value") if isinstance(held, dict) and held.get("key") == key else None


def write_keyed(path: str | Path, key: dict[str, Any], value: Any) -> Path:
    """Save ``value`` under ``key`` in ``path`` atomically, for :func:`read_keyed`.

    Raises:
        OutputError: as :func:`write_output` (its payload is ``value``).
    """
    return write_output(path, json.dumps({"key": key, "value": value}, default=float) + "\n", payload=value)
