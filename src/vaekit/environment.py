"""What a result was computed with: versions, the device, the machine and the commit of vaekit's source.

Training records it in ``RUN_DIR/environment.json`` (one entry per ``fit`` call, so a resumed run shows
every machine it ran on), and ``vaekit report`` shows it next to the environment the report was made in.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment", "git_commit"]

#: distributions whose versions are recorded (those that change numbers or plots)
_PACKAGES = ("torch", "numpy", "scipy", "matplotlib", "safetensors")


def git_commit(path: str | Path | None = None) -> dict[str, Any] | None:
    """The commit checked out where ``path`` (default: vaekit's own source folder) lies, and whether tracked
    files differ from it: ``{"commit": 40 hex digits, "dirty": bool}``; None outside a git work tree (an
    installed wheel) or without ``git``."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)} if len(head) == 40 else None


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: Any = None) -> dict[str, Any]:
    """A JSON-ready record of this process's environment.

    Args:
        device: the device the work runs on (a ``torch.device`` or its name); recorded as given, with the
            GPU's name when it is a CUDA device.

    Returns:
        ``{"time" (UTC, ISO 8601), "python", "platform", "packages": {name: version}, "vaekit": {"version",
        "path", "git"}, "device", "gpu", "cuda_available", "cpu", "cores", "threads", "argv"}``.
    """
    import torch

    packages = {}
    for name in ("vaekit", *_PACKAGES):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    packages["torch"] = torch.__version__  # the build tag (+cpu, +cu124) says which wheel
    gpu = None
    dev = str(device) if device is not None else None
    if dev is not None and dev.startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(dev))
    return {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "platform": platform.platform(), "packages": packages,
            "vaekit": {"version": packages.pop("vaekit"), "path": str(Path(__file__).resolve().parent),
                       "git": git_commit()},
            "device": dev, "gpu": gpu, "cuda_available": torch.cuda.is_available(), "cpu": _cpu(),
            "cores": os.cpu_count(), "threads": torch.get_num_threads(), "argv": list(sys.argv)}
