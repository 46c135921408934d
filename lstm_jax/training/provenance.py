"""Where a result came from: the git commit of the code, the package versions, the machine.

Every run's `summary.json` and every experiment's `results.json` carry this record, so a
figure can be traced to the code that produced it and re-measured (each experiment's
`--check`, `lstm_jax.reporting.check`).

A committed record must name code that exists: `record_provenance()` (what experiments call before
writing results) refuses a checkout with uncommitted changes to tracked files, unless the
environment sets `LSTM_JAX_ALLOW_DIRTY=1` (the test suite does; its records go to temporary
directories); the record then carries the sha256 of `git diff HEAD`, so what ran can be told
apart from the commit it names.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("lstm-jax", "jax", "jaxlib", "numpy", "optax", "flax")
ALLOW_DIRTY = "LSTM_JAX_ALLOW_DIRTY"  # "1": record from a checkout with uncommitted changes
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


def diff_sha256() -> str | None:
    """sha256 of `git diff HEAD` (tracked files; None when they match HEAD or no checkout).

    >>> digest = diff_sha256()
    >>> digest is None or len(digest) == 64
    True
    """
    try:
        diff = _git("diff", "HEAD", "--binary")
    except (OSError, subprocess.CalledProcessError):
        return None
    return hashlib.sha256(diff.encode()).hexdigest() if diff else None


class DirtyTreeError(RuntimeError):
    """A record was about to be written from a checkout with uncommitted changes."""


def require_clean(what: str) -> None:
    """Raises DirtyTreeError naming the changed files, unless the checkout is clean or
    `LSTM_JAX_ALLOW_DIRTY=1`.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {ALLOW_DIRTY: "1"}):  # as the test suite sets it
    ...     require_clean("writing results.json")
    """
    commit = git_commit()
    if not commit or not commit.endswith("+dirty") or os.environ.get(ALLOW_DIRTY) == "1":
        return
    changed = _git("diff", "HEAD", "--name-only").splitlines()
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    raise DirtyTreeError(
        f"{what}: the checkout {_SOURCE} has uncommitted changes ({shown}); records come from "
        f"a clean tree, so commit them first, or set {ALLOW_DIRTY}=1 to record anyway (the "
        "diff's sha256 is stored beside the commit)"
    )


def record_provenance(what: str = "writing a record") -> dict[str, Any]:
    """`provenance()` for a committed record: refuses a dirty checkout (`require_clean`).

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {ALLOW_DIRTY: "1"}):
    ...     "commit" in record_provenance()
    True
    """
    require_clean(what)
    return provenance()


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
    commit = git_commit()
    return {
        "commit": commit,
        **({"diff_sha256": diff_sha256()} if commit and commit.endswith("+dirty") else {}),
        "versions": versions(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
