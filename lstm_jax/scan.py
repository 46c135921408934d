"""The `lax.scan` driver that runs cells: `unroll`, and the layers composed from it
(`bidirectional`, `stacked`). The other scans in the package are the analytic reference
passes (`analytic`, `fused`, `online`) and the diagnostics' products, each over explicit
formulas, not over a cell's step."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax import checks, fused
from lstm_jax.cell import Carry, Cell, Params, StepFn
from lstm_jax.gradients import Gradient, as_gradient, cut_window

Array = jax.Array

IMPLS = ("auto", "fused", "scan")


def unroll(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry | None = None,
    *,
    gradient: Gradient | str = Gradient.FULL,
    window: int | None = None,
    lengths: Array | None = None,
    resets: Array | None = None,
    reverse: bool = False,
    time_major: bool = True,
    unroll: int = 1,
    remat: bool = False,
    impl: str = "auto",
) -> tuple[Carry, Array]:
    """Runs `cell` over a sequence with one `jax.lax.scan`.

    Args:
      cell: a `Cell` (`lstm_jax.rnn()`, `lstm_jax.lstm(...)`, `lstm_jax.gru(...)`).
      params: its parameters.
      xs: `[T, B, I]` (time-major), `[B, T, I]` (`time_major=False`) or `[T, I]` (unbatched).
      carry: initial carry for batch shape `[B]` (or `()`); zeros when None.
      gradient: `Gradient.FULL` / "full" (exact BPTT) or `Gradient.TRUNCATED` / "truncated"
        (truncation through the gates, SPEC §3). Forward values are the same in both.
      window: windowed truncated BPTT: the gradient through the carry is cut every `window`
        steps of each sequence (`gradients.cut_window`); the forward state flows on. Combines
        with either `gradient`.
      lengths: `[B]` ints (a scalar for unbatched xs): steps at or past a sequence's length
        leave its carry unchanged and output zeros, so the final carry is the carry after
        its last valid step.
      resets: `[T, B]` bools (laid out like `xs` without its last axis): where true, the carry
        is set to zeros before that step, as at the start of a new sequence (e.g. the external
        reset at string boundaries of Gers et al. 2000). No gradient crosses a reset.
      reverse: process each sequence from its last valid step back to its first; outputs stay
        in input order (`ys[t]` belongs to `xs[t]`).
      time_major: layout of `xs` and `ys`.
      unroll: steps per scan iteration (`lax.scan(unroll=...)`).
      remat: recompute each step in the backward pass (`jax.checkpoint`) instead of storing
        its intermediates; the scan then stores only the carries.
      impl: "scan" differentiates through the scan with JAX's autodiff (any order, forward
        and reverse mode, every option). "fused" (`lstm_jax.fused`) hoists the input
        projection and the weight-gradient matmuls out of the loops with a hand-derived
        backward pass: reverse mode only, no `lengths`, `window`, `resets` or `remat`.
        "auto", the default, takes "fused" wherever it applies (it measured faster than "scan"
        for every cell at every benchmark shape, `experiments/benchmarks/`) and "scan"
        otherwise. Pass "scan" for `jax.jvp`/`jax.jacfwd` and higher derivatives.

    Returns:
      `(final_carry, ys)` with `ys` laid out like `xs`, last axis `H`.
    """
    mode = as_gradient(gradient)
    checks.check_window(window)
    xs, carry = checks.prepare(cell, params, xs, carry, time_major)
    batch_shape = tuple(xs.shape[1:-1])
    if lengths is not None:
        lengths = jnp.asarray(lengths)  # a list or an int is fine; its dtype is checked next
        checks.check_lengths(lengths, batch_shape, xs.shape[0])
    if resets is not None:
        resets = jnp.asarray(resets)
        if not time_major and resets.ndim == 2:
            resets = jnp.swapaxes(resets, 0, 1)
        checks.check_resets(resets, xs.shape[:-1])
    unsupported = (
        [
            name
            for name, value in (("lengths", lengths), ("window", window), ("resets", resets))
            if value is not None
        ]
        + (["remat"] if remat else [])
        + ([] if fused.supports(cell.options) else ["this cell"])
    )
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {list(IMPLS)}, got {impl!r}")
    if impl == "fused" and unsupported:
        raise ValueError(f"impl='fused' does not support {', '.join(unsupported)}; use impl='scan'")
    if impl == "fused" or (impl == "auto" and not unsupported):
        full = mode is Gradient.FULL
        if reverse:
            carry, ys = fused.fused_unroll(cell.options, params, xs[::-1], carry, full)
            ys = ys[::-1]
        else:
            carry, ys = fused.fused_unroll(cell.options, params, xs, carry, full)
    else:
        step = cell.step_for(mode)
        carry, ys = scan_steps(
            step, params, xs, carry, lengths, window, reverse, unroll, remat, resets
        )
    if not time_major and ys.ndim == 3:
        ys = jnp.swapaxes(ys, 0, 1)
    return carry, ys


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 7, 8))
def scan_steps(
    step: StepFn,
    params: Params,
    xs: Array,
    carry: Carry,
    lengths: Array | None,
    window: int | None,
    reverse: bool,
    unroll: int,
    remat: bool,
    resets: Array | None = None,
) -> tuple[Carry, Array]:
    """The scan itself, without validation (`unroll` validates first).

    `xs` is time-major; it may be a pytree of `[T, ...]` arrays when `step` takes one (the
    diagnostics pass `(x_t, probe_t)` pairs). Returns `(final_carry, ys)`.
    """
    num_steps = jax.tree.leaves(xs)[0].shape[0]
    if remat:
        step = jax.checkpoint(step)

    def body(carry: Carry, inputs: tuple[Array, Array, Array | None]) -> tuple[Carry, Array]:
        t, x, reset = inputs
        if reset is not None:
            carry = jax.tree.map(
                lambda c: jnp.where(_expand(reset, c), jnp.zeros_like(c), c), carry
            )
        carry_in = carry  # a padded step passes on this uncut carry
        if window is not None:
            # Steps already taken by this sequence in processing order; the carry entering a
            # step that starts a new window (not the first) is cut.
            if not reverse:
                taken = t
            elif lengths is None:
                taken = num_steps - 1 - t
            else:
                taken = lengths - 1 - t
            carry = cut_window(carry, (taken > 0) & (taken % window == 0))
        new_carry, y = step(params, carry, x)
        if lengths is not None:
            valid = t < lengths  # [*batch]

            def keep_valid(new: Array, old: Array) -> Array:
                return jnp.where(_expand(valid, new), new, old)

            new_carry = jax.tree.map(keep_valid, new_carry, carry_in)
            y = keep_valid(y, jnp.zeros_like(y))
        return new_carry, y

    ts = jnp.arange(num_steps)
    return jax.lax.scan(body, carry, (ts, xs, resets), reverse=reverse, unroll=unroll)


def _expand(mask: Array, like: Array) -> Array:
    """`[*batch]` mask broadcastable against a `[*batch, ...]` array."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def bidirectional(
    cell: Cell,
    params: tuple[Params, Params],
    xs: Array,
    carry: tuple[Carry, Carry] | None = None,
    **kwargs: Any,
) -> tuple[tuple[Carry, Carry], Array]:
    """A forward and a backward `unroll` over the same inputs, outputs concatenated.

    Args:
      params: `(forward_params, backward_params)`.
      carry: `(forward_carry, backward_carry)`, or None for zeros.
      **kwargs: any `unroll` keyword except `reverse` (`lengths` makes the backward pass start
        at each sequence's last valid step).

    Returns:
      `((forward_final_carry, backward_final_carry), ys)`, `ys[..., :H]` forward and
      `ys[..., H:]` backward, both aligned with the inputs.
    """
    if "reverse" in kwargs:
        raise TypeError("bidirectional runs both directions; do not pass reverse")
    params = _pair("params", params)
    carry_fw, carry_bw = (None, None) if carry is None else _pair("carry", carry)
    with _context("forward direction"):
        c_fw, y_fw = unroll(cell, params[0], xs, carry_fw, **kwargs)
    with _context("backward direction"):
        c_bw, y_bw = unroll(cell, params[1], xs, carry_bw, reverse=True, **kwargs)
    return (c_fw, c_bw), jnp.concatenate([y_fw, y_bw], axis=-1)


def stacked(
    cell: Cell,
    params: Sequence[Params],
    xs: Array,
    carries: Sequence[Carry] | None = None,
    *,
    bidirectional: bool = False,
    **kwargs: Any,
) -> tuple[tuple[Carry, ...], Array]:
    """Layers of `unroll` (or of `bidirectional`), each fed the previous layer's outputs.

    Args:
      params: one entry per layer (a `(forward, backward)` pair per layer when
        `bidirectional`), e.g. from `init_stacked`.
      carries: one initial carry per layer, or None for zeros.
      **kwargs: forwarded to every layer's `unroll`.

    Returns:
      `(final_carries, ys)`: a tuple with one final carry per layer, and the last layer's outputs.
    """
    if type(params) not in (tuple, list) or len(params) == 0:
        raise ValueError(
            "params must be a non-empty tuple or list with one entry per layer (see init_stacked),"
            f" got {type(params).__name__}"
        )
    if carries is not None and len(carries) != len(params):
        raise ValueError(f"carries has {len(carries)} entries but there are {len(params)} layers")
    layer = (
        functools.partial(_bidirectional, cell)
        if bidirectional
        else functools.partial(unroll, cell)
    )
    finals, ys = [], xs
    for index, layer_params in enumerate(params):
        with _context(f"layer {index}"):
            final, ys = layer(
                layer_params, ys, None if carries is None else carries[index], **kwargs
            )
        finals.append(final)
    return tuple(finals), ys


_bidirectional = bidirectional  # `stacked` has a keyword of the same name


def init_stacked(
    cell: Cell,
    key: Array,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    *,
    bidirectional: bool = False,
    dtype: Any = jnp.float32,
) -> tuple[Params, ...]:
    """Per-layer params for `stacked`: layer 0 reads `input_size` features, later layers read
    the previous layer's `hidden_size` (`2 · hidden_size` when bidirectional)."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    layers = []
    for index, layer_key in enumerate(jax.random.split(key, num_layers)):
        size = input_size if index == 0 else hidden_size * (2 if bidirectional else 1)
        if bidirectional:
            k_fw, k_bw = jax.random.split(layer_key)
            layers.append(
                (
                    cell.init(k_fw, size, hidden_size, dtype),
                    cell.init(k_bw, size, hidden_size, dtype),
                )
            )
        else:
            layers.append(cell.init(layer_key, size, hidden_size, dtype))
    return tuple(layers)


@contextlib.contextmanager
def _context(where: str) -> Iterator[None]:
    """Prefixes a validation error with the layer or direction it came from."""
    try:
        yield
    except (ValueError, TypeError) as err:
        if type(err) not in (ValueError, TypeError):  # JAX's own errors take other arguments
            err.add_note(f"in {where}")
            raise
        raise type(err)(f"{where}: {err}") from err


def _pair(name: str, value: Any) -> tuple[Any, Any]:
    # A NamedTuple of params is a tuple too: demand a plain pair.
    if type(value) not in (tuple, list) or len(value) != 2:
        raise ValueError(f"{name} must be a (forward, backward) pair, got {type(value).__name__}")
    return value[0], value[1]
