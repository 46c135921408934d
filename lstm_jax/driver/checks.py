"""Input validation run on static shapes before anything is traced.

Every error names the argument, what was expected and what was received, so a user never has
to read an XLA trace to learn that a batch axis was missing.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.cells.checks import shown
from lstm_jax.cells.protocol import Cell


def check_float_array(name: str, x: Any) -> None:
    """TypeError unless `x` is an array with a floating-point dtype."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be a floating-point array, got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} must have a floating-point dtype (float16/bfloat16/float32/float64), got "
            f"{x.dtype}; cast it, e.g. {name}.astype(jnp.float32)"
        )


def sizes(cell: Cell, params: Any) -> tuple[int, int]:
    """`(input_size, hidden_size)` of `params` by `cell.sizes`, every leaf checked to be a float
    array."""
    input_size, hidden = cell.sizes(params)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        check_float_array(f"params{jax.tree_util.keystr(path)}", leaf)
    return input_size, hidden


@functools.cache
def _expected_params(cell: Cell, input_size: int, hidden: int) -> Any:
    # Abstract evaluation only; cached so eager loops do not re-trace `init` on every call.
    return jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size, hidden))


@functools.cache
def _expected_carry(cell: Cell, batch_shape: tuple[int, ...], hidden: int, dtype: Any) -> Any:
    return jax.eval_shape(lambda: cell.initial_carry(batch_shape, hidden, dtype))


def _check_like(
    name: str, got: Any, expected: Any, shape_hint: str, structure_hint: str
) -> list[tuple[str, Any, Any]]:
    """Same tree structure and leaf shapes as `expected`; returns `(name, got, expected)` per
    leaf for further checks."""
    exp_leaves, exp_tree = jax.tree_util.tree_flatten_with_path(expected)
    got_leaves, got_tree = jax.tree_util.tree_flatten_with_path(got)
    if exp_tree != got_tree:
        raise ValueError(
            f"{name} has structure {got_tree} but this cell expects {exp_tree} ({structure_hint})"
        )
    leaves = []
    for (path, exp), (_, leaf) in zip(exp_leaves, got_leaves, strict=True):
        leaf_name = f"{name}{jax.tree_util.keystr(path)}"
        shape = tuple(getattr(leaf, "shape", ()))
        if shape != tuple(exp.shape):
            raise ValueError(
                f"{leaf_name} has shape {shape} but expected {tuple(exp.shape)} {shape_hint}"
            )
        leaves.append((leaf_name, leaf, exp))
    return leaves


def check_params(cell: Cell, params: Any, input_size: int, hidden: int) -> None:
    """params must have the structure and shapes `cell.init(key, I, H)` gives.

    `(I, H)` are read from the params themselves (`cell.sizes`), so one wrong leaf can change
    `H` and make the right ones look wrong (a wrong `r` would blame `w`). On a mismatch the
    error is therefore stated against the hidden size that leaves the fewest leaves wrong."""
    try:
        _check_like(
            "params",
            params,
            _expected_params(cell, input_size, hidden),
            f"for input_size={input_size}, hidden_size={hidden}",
            f"params of another cell? compare cell.init(key, {input_size}, {hidden})",
        )
    except ValueError as err:
        if "has shape" not in str(err):
            raise  # a structure error: no hidden size fixes it
        hidden = _likeliest_hidden(cell, params, input_size, hidden)
        _check_like(
            "params",
            params,
            _expected_params(cell, input_size, hidden),
            f"for input_size={input_size}, hidden_size={hidden}",
            "",
        )
        raise  # every leaf fits some other hidden size: keep the first report


def _likeliest_hidden(cell: Cell, params: Any, input_size: int, hidden: int) -> int:
    """The hidden size (among divisors of the params' dimensions) whose `cell.init` shapes
    the most leaves of `params` match; `hidden` on a tie."""
    leaves = jax.tree.leaves(params)
    dims = {d for leaf in leaves for d in getattr(leaf, "shape", ())}
    candidates = {d // k for d in dims for k in range(1, 9) if d % k == 0 and d // k > 0}

    def wrong(h: int) -> int:
        try:
            expected = jax.tree.leaves(_expected_params(cell, input_size, h))
        except (ValueError, TypeError):  # e.g. heads that do not divide h
            return len(leaves) + 1
        return sum(tuple(a.shape) != tuple(b.shape) for a, b in zip(leaves, expected, strict=True))

    return min(sorted(candidates), key=lambda h: (wrong(h), h != hidden))


def check_xs(xs: Any, input_size: int, time_major: bool) -> None:
    """xs must be a float `[T, I]`, `[T, B, I]` (time-major) or `[B, T, I]` array with T ≥ 1."""
    check_float_array("xs", xs)
    layout = "[T, B, I]" if time_major else "[B, T, I]"
    if xs.ndim not in (2, 3):
        raise ValueError(
            f"xs must have rank 2 ([T, I], unbatched) or 3 ({layout}), got shape {xs.shape}"
        )
    if xs.shape[-1] != input_size:
        raise ValueError(
            f"xs has input size {xs.shape[-1]} (last axis of shape {xs.shape}) but params expect "
            f"input_size={input_size}"
        )
    time_axis = 0 if (time_major or xs.ndim == 2) else 1
    if xs.shape[time_axis] == 0:
        raise ValueError(f"xs has no time steps (shape {xs.shape}, layout {layout})")


def check_carry(cell: Cell, carry: Any, batch_shape: tuple[int, ...], hidden: int, dtype) -> None:
    """The carry must have the structure, shapes and dtype of `cell.initial_carry`."""
    expected = _expected_carry(cell, tuple(batch_shape), hidden, jnp.dtype(dtype))
    shape_hint = f"for xs batch shape {batch_shape} and hidden_size {hidden}"
    build = f"build it with cell.initial_carry(batch_shape={batch_shape}, hidden_size={hidden})"
    for name, leaf, exp in _check_like("carry", carry, expected, shape_hint, build):
        check_float_array(name, leaf)
        if leaf.dtype != exp.dtype:
            raise TypeError(
                f"{name} has dtype {leaf.dtype} but the step computes in {exp.dtype} (the "
                "promoted dtype of xs and params); cast the carry to match"
            )


def check_lengths(lengths: Any, batch_shape: tuple[int, ...], num_steps: int) -> None:
    """lengths must be an integer array of shape `batch_shape`; concrete values in [0, T]."""
    if not hasattr(lengths, "shape"):
        lengths = np.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must be an integer array, got dtype {lengths.dtype}")
    if tuple(lengths.shape) != tuple(batch_shape):
        raise ValueError(
            f"lengths must have the batch shape of xs, {tuple(batch_shape)}, got shape "
            f"{tuple(lengths.shape)}"
        )
    if not isinstance(lengths, jax.core.Tracer):
        values = np.asarray(lengths)
        if values.size and (values.min() < 0 or values.max() > num_steps):
            raise ValueError(
                f"lengths must lie in [0, T={num_steps}], got min {values.min()} and max "
                f"{values.max()}"
            )


def check_resets(resets: Any, shape: tuple[int, ...]) -> None:
    """resets must be a boolean array shaped like xs without its feature axis."""
    if resets.dtype != bool:
        raise TypeError(f"resets must be a boolean array, got dtype {resets.dtype}")
    if tuple(resets.shape) != tuple(shape):
        raise ValueError(
            f"resets must have the shape of xs without its last axis, {tuple(shape)} "
            f"(time-major), got {tuple(resets.shape)}"
        )


def _is_positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer) and value >= 1


def check_window(window: Any) -> None:
    """window must be None or a positive int.

    >>> check_window(0)
    Traceback (most recent call last):
    ValueError: window must be a positive int (steps per window) or None, got 0
    """
    if window is not None and not _is_positive_int(window):
        raise ValueError(
            f"window must be a positive int (steps per window) or None, got {window!r}"
        )


def check_cell(cell: Any) -> None:
    """TypeError unless `cell` is a `Cell`, the NamedTuple every cell builder returns.

    >>> check_cell("lstm")
    Traceback (most recent call last):
    TypeError: cell must be a lstm_jax.Cell, e.g. lstm_jax.lstm(); got str 'lstm'
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a lstm_jax.Cell, e.g. lstm_jax.lstm(); got {shown(cell)}")


def check_bool(name: str, value: Any) -> None:
    """TypeError unless `value` is a bool: any object is truthy, so `"no"` would read as True.

    >>> check_bool("time_major", "no")
    Traceback (most recent call last):
    TypeError: time_major must be a bool (True or False), got str 'no'
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a bool (True or False), got {shown(value)}")


def check_options(
    cell: Any, window: Any, scan_unroll: Any, time_major: Any, reverse: Any, remat: Any
) -> None:
    """`unroll`'s static arguments: a `Cell`, `window` None or a positive int, `scan_unroll` a
    positive int (bools refused: `lax.scan` reads True as "unroll fully"), three bools.

    >>> import lstm_jax
    >>> check_options(lstm_jax.lstm(), None, 2.5, True, False, False)
    Traceback (most recent call last):
    ValueError: scan_unroll must be a positive int (steps per scan iteration), got 2.5
    """
    check_cell(cell)
    check_window(window)
    if not _is_positive_int(scan_unroll):
        raise ValueError(
            f"scan_unroll must be a positive int (steps per scan iteration), got {scan_unroll!r}"
        )
    for name, value in (("time_major", time_major), ("reverse", reverse), ("remat", remat)):
        check_bool(name, value)


def prepare(
    cell: Cell, params: Any, xs: Any, carry: Any, time_major: bool = True
) -> tuple[Any, Any]:
    """Validates an unroll's inputs and returns `(time-major xs, carry)`, the carry defaulting
    to zeros in the promoted dtype of xs and params."""
    input_size, hidden = sizes(cell, params)
    check_params(cell, params, input_size, hidden)
    check_xs(xs, input_size, time_major)
    if not time_major and xs.ndim == 3:
        xs = jnp.swapaxes(xs, 0, 1)
    batch_shape = tuple(xs.shape[1:-1])
    dtype = jnp.result_type(xs.dtype, *jax.tree.leaves(params))
    if carry is None:
        return xs, cell.initial_carry(batch_shape, hidden, dtype)
    check_carry(cell, carry, batch_shape, hidden, dtype)
    return xs, carry
