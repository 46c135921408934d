"""Ctrl-C and SIGTERM end a run cleanly: the current step finishes, a checkpoint and a summary
(status "interrupted") are written, and `Interrupted` says how to resume.

The handler only records the request; the training loop asks `requested` after each step, so
a step is never cut in half and the checkpoint is a state an uninterrupted run also passes
through (`--resume` then continues exactly as if nothing had happened). A second signal while
the first is being handled is the user insisting: it raises `KeyboardInterrupt` at once (the
newest checkpoint on disk stays intact: Orbax renames a step into place only when complete).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


class Interrupted(KeyboardInterrupt):
    """The run stopped at a signal after saving its state; the message says how to resume.

    A KeyboardInterrupt, so code that catches `Exception` does not swallow it.
    """


class Requests:
    """The signals received while `deferred()` is active."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @property
    def requested(self) -> bool:
        return bool(self.received)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping now")
        self.received.append(signal.Signals(signum).name)


@contextlib.contextmanager
def deferred() -> Iterator[Requests]:
    """SIGINT and SIGTERM recorded instead of raised while the block runs; the previous
    handlers come back afterwards. Outside the main thread (where Python cannot install signal
    handlers) nothing is deferred and `requested` stays False.

    >>> with deferred() as requests:
    ...     requests.requested
    False
    """
    requests = Requests()
    if threading.current_thread() is not threading.main_thread():
        yield requests
        return
    previous = {sig: signal.signal(sig, requests.handle) for sig in SIGNALS}
    try:
        yield requests
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
