"""Where a result came from: the git commit of the code, the package versions, the machine.

Every run's `summary.json` and every experiment's `results.json` carry this record, so a
figure can be traced to the code that produced it and re-run (`sweep.check_report`).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("lstm-jax", "jax", "jaxlib", "numpy", "optax", "flax")
_SOURCE = Path(__file__).resolve().parents[2]  # the checkout holding the lstm_jax package


def git_commit() -> str | None:
    """`HEAD` of the checkout the package runs from, with `+dirty` when tracked files differ
    from it; None for an installed copy outside a git checkout."""
    try:
        head = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(_SOURCE), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def versions() -> dict[str, str | None]:
    """The installed version of each of `PACKAGES` (None if absent) and of Python."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def provenance() -> dict[str, Any]:
    """`{"commit", "versions", "machine"}` for the current process."""
    return {
        "commit": git_commit(),
        "versions": versions(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
