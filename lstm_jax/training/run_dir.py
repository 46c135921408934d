"""Claiming a run directory: never overwrite a user's files, and never let two writers in.

A new run goes only into a directory that does not exist or is empty, and `--resume` only
into one that holds a run; a directory holding anything else is refused, naming what is
there. The writer then holds an exclusive `flock` on `<run>/.lock` for the whole run: a second
`lstm-jax run --resume` of the same directory is refused at once instead of interleaving its
steps with the first one's. The operating system drops the lock when the process ends, however
it ends (SIGKILL included), so a crashed run never leaves a stale lock behind. `show` and
`compare` only read and never take it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK = ".lock"
RUN_MARKERS = ("checkpoints", "checkpoint.msgpack", "metrics.jsonl")  # a run has begun


class RunDirError(ValueError):
    """The run directory cannot be used: it holds other files, is locked, or is not writable."""


def holds_run(out: Path) -> bool:
    """Whether `out` holds a run this trainer started (a checkpoint or a metrics log).

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> holds_run(out), (out / "metrics.jsonl").touch(), holds_run(out)
    (False, None, True)
    """
    return any((out / name).exists() for name in RUN_MARKERS)


def check_new(out: Path) -> None:
    """Refuses `out` for a new run unless it is missing or empty; names what is there.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> check_new(out / "new"), (out / "notes.txt").touch()
    (None, None)
    >>> check_new(out)
    Traceback (most recent call last):
    lstm_jax.training.run_dir.RunDirError: --out ... is not empty and holds no run (notes.txt); ...
    """
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file, not a directory; choose a directory")
    if not out.is_dir():
        return
    if holds_run(out):
        raise RunDirError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    entries = sorted(p.name for p in out.iterdir())
    # even a lone config.yaml may be the user's own (comments, variants): never overwrite it
    foreign = [name for name in entries if name != LOCK]
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        shown = ", ".join(foreign[:5]) + more
        raise RunDirError(
            f"--out {out} is not empty and holds no run ({shown}); a new run needs a new or "
            "empty directory, so that none of these files is overwritten"
        )


@contextlib.contextmanager
def claimed(out: Path) -> Iterator[Path]:
    """Creates `out` if needed and holds its lock until the block ends.

    A RunDirError names the problem: `out` (or a parent) is a file, is not writable, or
    another live process holds the lock (its pid, as it wrote it).

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> with claimed(out):
    ...     with claimed(out):  # a second writer, as another process would be
    ...         pass
    Traceback (most recent call last):
    lstm_jax.training.run_dir.RunDirError: ... is in use by another lstm-jax process (pid ...
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunDirError(f"cannot write the run directory {out}: {_reason(err)}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirError(
                f"{out} is in use by another lstm-jax process (pid {holder}); wait for it to "
                "finish, or stop it, before resuming this run"
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        yield out
    finally:
        os.close(handle)  # releases the lock


def _reason(err: OSError) -> str:
    reasons = {
        errno.EROFS: "the filesystem is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a part of the path is a file, not a directory",
        errno.EEXIST: "a file of that name is in the way",
        errno.ENOSPC: "no space left on the device",
    }
    return f"{reasons.get(err.errno, err.strerror)} ({err.filename or ''})".replace(" ()", "")
