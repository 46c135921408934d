"""The checks every cell's options and constructor arguments pass, each error naming the
argument, what was expected and what was received.

Option values are checked when a cell is built (a string or a NaN bias would otherwise surface
inside `init` as a dtype error, or not at all), and `init`'s sizes before XLA sees them: sizes
whose parameters cannot fit in memory make XLA abort the whole process (a notebook's kernel with
it), which no `try` can catch.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.cells import initializers

_REAL = int | float | np.integer | np.floating


def shown(value: Any, limit: int = 60) -> str:
    """`type value`, the repr cut to `limit` characters: what a message says it received.

    >>> shown("a" * 100, limit=8)
    "str 'aaaa..."
    """
    text = repr(value)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(value).__name__} {text}"


def is_real(value: Any) -> bool:
    """Whether `value` is a real number: a Python or NumPy int or float, never a bool.

    >>> is_real(2), is_real(True), is_real("2")
    (True, False, False)
    """
    return isinstance(value, _REAL) and not isinstance(value, bool | np.bool_)


def check_number(name: str, value: Any, *, positive: bool = False) -> float:
    """`value` as a float, or a ValueError naming `name` unless it is a finite real number
    (bools and strings refused), and `> 0` where `positive`.

    >>> check_number("forget_bias", 1)
    1.0
    >>> check_number("forget_bias", "1")
    Traceback (most recent call last):
    ValueError: forget_bias must be a finite number, got str '1'
    """
    if not is_real(value):
        raise ValueError(f"{name} must be a finite number, got {shown(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def check_flag(name: str, value: Any) -> bool:
    """`value` as a bool, or a ValueError naming `name`: any object is truthy, so a string
    such as "no" would otherwise switch the option on.

    >>> check_flag("peepholes", "no")
    Traceback (most recent call last):
    ValueError: peepholes must be a bool (True or False), got str 'no'
    """
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a bool (True or False), got {shown(value)}")
    return bool(value)


def check_batch_shape(batch_shape: Any, hidden_size: Any) -> None:
    """`initial_carry`'s arguments: `batch_shape` a tuple (or list) of non-negative ints,
    `hidden_size` a positive int.

    >>> check_batch_shape(4, 32)
    Traceback (most recent call last):
    TypeError: initial_carry(...): batch_shape must be a tuple of ints, e.g. (4,) ..., got int 4
    """
    usage = "initial_carry(batch_shape, hidden_size, dtype=float32): "
    if not isinstance(batch_shape, tuple | list) or not all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 0 for n in batch_shape
    ):
        raise TypeError(
            f"{usage}batch_shape must be a tuple of ints, e.g. (4,) for 4 sequences or () for "
            f"one, got {shown(batch_shape)}"
        )
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int | np.integer):
        raise TypeError(f"{usage}hidden_size must be a positive int, got {shown(hidden_size)}")
    if hidden_size < 1:
        raise ValueError(f"{usage}hidden_size must be a positive int, got {hidden_size!r}")


def check_init(init: Any, input_size: Any, hidden_size: Any, dtype: Any) -> None:
    """`init`'s arguments, before it runs: positive int sizes, a floating-point dtype, and
    parameters (counted by abstract evaluation of `init`, nothing allocated) that fit in
    `memory_limit_bytes()`.

    >>> import lstm_jax, jax
    >>> lstm_jax.lstm().init(jax.random.key(0), 8, 10**9)
    Traceback (most recent call last):
    ValueError: input_size=8, hidden_size=1000000000: the parameters would take ...
    """
    initializers.check_sizes(input_size, hidden_size)
    try:
        dtype = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be a floating-point dtype, got {shown(dtype)}") from err
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating-point dtype (e.g. float32), got {dtype}")
    size = _param_bytes(init, int(input_size), int(hidden_size), dtype)
    limit = memory_limit_bytes()
    if size > limit:
        amount = "more than 2^63 bytes" if size == math.inf else f"{size / 2**30:.4g} GiB"
        raise ValueError(
            f"input_size={input_size}, hidden_size={hidden_size}: the parameters would take "
            f"{amount} in {dtype}, more than this machine's memory ({limit / 2**30:.4g} GiB); "
            "choose smaller sizes"
        )


@functools.cache
def _param_bytes(init: Any, input_size: int, hidden_size: int, dtype: np.dtype) -> float:
    """Bytes of `init`'s params, from their shapes alone (`jax.eval_shape`)."""
    try:
        with warnings.catch_warnings():  # int32-index warnings of huge sizes: not the user's
            warnings.simplefilter("ignore")
            shapes = jax.eval_shape(lambda: init(jax.random.key(0), input_size, hidden_size, dtype))
    except OverflowError:  # a shape past int64 (or an index past int32) while tracing
        return math.inf
    leaves = jax.tree.leaves(shapes)
    return float(sum(math.prod(a.shape) * jnp.dtype(a.dtype).itemsize for a in leaves))


@functools.cache
def memory_limit_bytes() -> int:
    """The most memory a cell's parameters may take: the host's physical memory, or all this
    process's devices' memory together where that is more (parameters sharded over
    accelerators; another process's devices cannot be asked).

    >>> memory_limit_bytes() > 2**20
    True
    """
    try:
        host = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX
        try:
            import psutil

            host = psutil.virtual_memory().total
        except ImportError:
            host = 2**63 - 1  # unknown: only sizes past XLA's int64 byte counts are refused
    return max(host, sum(_device_bytes(device) for device in jax.local_devices()))


def _device_bytes(device: Any) -> int:
    """A device's memory limit; 0 where the backend does not say (CPU, some plugins)."""
    try:
        stats = device.memory_stats() or {}
    except RuntimeError:  # a backend without memory statistics
        return 0
    return int(stats.get("bytes_limit", 0))
