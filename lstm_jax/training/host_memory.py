"""Keep freed host memory for reuse, so XLA's CPU runtime stops paying page faults each call.

XLA's CPU runtime allocates a compiled program's temporary buffer afresh on every call (50 MiB
for an LSTM pass at (T, B, I, H) = (100, 64, 256, 256), 100 MiB at (50, 128, 512, 512)). glibc's
malloc serves blocks that large with `mmap` (or from a per-thread arena that unmaps them) and
gives them back on `free`, so each call touches fresh pages: 19,000-30,000 minor page faults per
pass at those shapes. `keep_freed_host_memory()` sets three `mallopt` parameters: one arena for
all threads (`M_ARENA_MAX` 1: the main heap, which can grow past the 64 MiB limit of a thread
arena), no `mmap` for large blocks (`M_MMAP_MAX` 0), and no trimming of the heap's top
(`M_TRIM_THRESHOLD` at its maximum). Freed buffers then stay mapped and the next call reuses
them: 2,000-3,700 faults per pass, and the fused LSTM pass 0.8-0.9x its time at those shapes
(`experiments/benchmarks/README.md`). The cost: the process keeps its peak heap size instead of
returning memory to the system. Call it before JAX's first computation (the runtime's threads
take their arena when they start); the trainer does (`training.keep_host_memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # glibc's <malloc.h>


def keep_freed_host_memory() -> bool:
    """Applies the settings above; True where it could (Linux with glibc), else False."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))
    return all(mallopt(param, value) == 1 for param, value in settings)
