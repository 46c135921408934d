"""The one `lax.scan` driver that runs cells: `unroll`. It knows only the cell protocol
(`cells.protocol.Cell`); the implementation (`Impl`) and the gradient mode (`Gradient`) are
resolved once, at the top, and passed down as they are."""

from __future__ import annotations

import enum
import functools
from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax.backward import fused
from lstm_jax.cells.protocol import Carry, Cell, Params, StepFn
from lstm_jax.driver import checks
from lstm_jax.modes import Gradient, cut_window, resolve_gradient

Array = jax.Array


class Impl(enum.Enum):
    """How `unroll` runs and differentiates the cell.

    SCAN: autodiff through the `lax.scan` of `cell.step` (any order, forward and reverse mode,
      every option).
    FUSED: `backward.fused`, a `custom_vjp` over the cell's `Derivation` with the input and
      weight-gradient matmuls hoisted out of the loops: reverse mode only, no `lengths`,
      `window` or `resets`; `remat` checkpoints segments of ⌈√T⌉ steps.
    PARALLEL: the cell's whole-sequence form (`Cell.parallel`: the mLSTM's quadratic form, the
      min-RNNs' associative scan), differentiated by autodiff: no `window`, `resets`, `remat`,
      or `lengths` with `reverse`, and TRUNCATED only for cells where it equals FULL.
    AUTO: FUSED wherever it applies (it measured faster than SCAN for every cell at every
      benchmark shape, `experiments/benchmarks/`), SCAN otherwise; never PARALLEL, which is
      asked for by name.
    """

    AUTO = "auto"
    FUSED = "fused"
    PARALLEL = "parallel"
    SCAN = "scan"


def resolve_impl(
    impl: Impl | str,
    cell: Cell,
    *,
    lengths: Any = None,
    window: int | None = None,
    resets: Any = None,
    remat: bool = False,
    gradient: Gradient | str = Gradient.FULL,
    reverse: bool = False,
) -> Impl:
    """The `Impl` that runs this cell with these options (AUTO resolved); `impl` may be a string.

    A ValueError names the valid choices for an unknown `impl`, and what stands in the way when
    `Impl.FUSED` or `Impl.PARALLEL` is asked for where it does not apply.
    """
    if not isinstance(impl, Impl):
        valid = [i.value for i in Impl]
        if not isinstance(impl, str) or impl not in valid:
            raise ValueError(f"impl must be one of {valid} or a lstm_jax.Impl, got {impl!r}")
        impl = Impl(impl)
    if impl is Impl.SCAN:
        return impl
    options = {"lengths": lengths, "window": window, "resets": resets}
    unsupported = [name for name, value in options.items() if value is not None]
    if impl is Impl.PARALLEL:
        unsupported += ["remat"] if remat else []
        unsupported = [u for u in unsupported if u != "lengths"]
        if lengths is not None and reverse:
            unsupported += ["lengths with reverse"]
        if cell.parallel is None:
            unsupported += ["this cell (it has no parallel form)"]
        if resolve_gradient(gradient) is Gradient.TRUNCATED and cell.truncation_cuts:
            unsupported += ["gradient='truncated' for this cell (its truncated step cuts paths)"]
        if unsupported:
            raise ValueError(
                f"impl='parallel' does not support {', '.join(unsupported)}; use impl='scan'"
            )
        return impl
    unsupported += [] if cell.derivation is not None else ["this cell (it has no derivation)"]
    if impl is Impl.FUSED and unsupported:
        raise ValueError(f"impl='fused' does not support {', '.join(unsupported)}; use impl='scan'")
    return Impl.SCAN if unsupported else Impl.FUSED


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
    scan_unroll: int = 1,
    remat: bool = False,
    impl: Impl | str = Impl.AUTO,
) -> tuple[Carry, Array]:
    """Runs `cell` over a sequence: `carry_t, y_t = cell.step(params, carry_{t-1}, x_t)`.

    Every argument is checked before anything is traced (a ValueError or TypeError naming the
    argument, what was expected and what was received); each path is compiled once per static
    configuration (cell, options, shapes and dtypes), so eager calls after the first only run.

    Args:
      cell: a `Cell` (`lstm_jax.rnn()`, `lstm_jax.lstm(...)`, `lstm_jax.gru(...)`, or your own).
      params: its parameters.
      xs: `[T, B, I]` (time-major), `[B, T, I]` (`time_major=False`) or `[T, I]` (unbatched).
      carry: initial carry for batch shape `[B]` (or `()`); zeros when None.
      gradient: `Gradient.FULL` / "full" (exact BPTT) or `Gradient.TRUNCATED` / "truncated"
        (truncation through the gates, `modes`). Forward values are the same in both.
      window: windowed truncated BPTT: the gradient through the carry is cut every `window`
        steps of each sequence (`modes.cut_window`); the forward state flows on.
        Combines with either `gradient`.
      lengths: `[B]` ints (a scalar for unbatched xs): steps at or past a sequence's length
        leave its carry unchanged and output zeros, so the final carry is the carry after
        its last valid step. Concrete lengths outside `[0, T]` are a ValueError; traced ones
        (under `jax.jit`, where no value can be checked) are clamped to `[0, T]`.
      resets: `[T, B]` bools (laid out like `xs` without its last axis): where true, the carry
        is set to zeros before that step, as at the start of a new sequence (e.g. the external
        reset at string boundaries of Gers et al. 2000). No gradient crosses a reset.
      reverse: process each sequence from its last valid step back to its first; outputs stay
        in input order (`ys[t]` belongs to `xs[t]`).
      time_major: layout of `xs` and `ys` (a bool).
      scan_unroll: steps per scan iteration, a positive int (`lax.scan(unroll=...)`, scan path
        only).
      remat: recompute in the backward pass instead of storing: on the scan path each step
        (`jax.checkpoint`; the scan then stores only the carries), on the fused path segments
        of ⌈√T⌉ steps (only the carry entering each segment is stored).
      impl: an `Impl` or its name: "scan", "fused", "parallel" or "auto" (the default). Pass
        "scan" for `jax.jvp`/`jax.jacfwd` and higher derivatives.

    Returns:
      `(final_carry, ys)` with `ys` laid out like `xs`, last axis `H`.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> cell = lstm_jax.lstm()
    >>> params = cell.init(jax.random.key(0), 3, 8)
    >>> final, ys = lstm_jax.unroll(cell, params, jnp.ones((10, 4, 3)), gradient="truncated")
    >>> ys.shape, final.c.shape
    ((10, 4, 8), (4, 8))
    """
    mode = resolve_gradient(gradient)
    checks.check_options(cell, window, scan_unroll, time_major, reverse, remat)
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
    resolved = resolve_impl(
        impl,
        cell,
        lengths=lengths,
        window=window,
        resets=resets,
        remat=remat,
        gradient=mode,
        reverse=reverse,
    )
    if resolved is Impl.PARALLEL:
        if reverse:
            carry, ys = _parallel(cell.parallel, params, xs[::-1], carry, None)
            ys = ys[::-1]
        else:
            valid = None if lengths is None else _valid_steps(lengths, xs.shape[0])
            carry, ys = _parallel(cell.parallel, params, xs, carry, valid)
    elif resolved is Impl.FUSED:
        carry, ys = _fused(cell, params, xs, carry, mode, bool(remat), bool(reverse))
    else:
        step = cell.step_for(mode)
        args = (lengths, window, bool(reverse), int(scan_unroll), bool(remat), resets)
        carry, ys = scan_steps(step, params, xs, carry, *args)
    if not time_major and ys.ndim == 3:
        ys = jnp.swapaxes(ys, 0, 1)
    return carry, ys


def _fused(
    cell: Cell, params: Params, xs: Array, carry: Carry, mode: Gradient, remat: bool, reverse: bool
) -> tuple[Carry, Array]:
    """`fused.fused_unroll`, its forward-mode error restated with the way out."""
    try:
        return fused.fused_unroll(cell, params, xs, carry, mode, remat, reverse)
    except TypeError as err:  # jax.jvp / jacfwd reach the custom_vjp (not hessian: jacfwd∘jacrev)
        if "forward-mode" not in str(err):
            raise
        raise TypeError(
            "forward-mode autodiff (jax.jvp, jax.jacfwd, jax.linearize) cannot go through "
            f"impl='fused' (a custom_vjp, reverse mode only); pass impl='scan' ({err})"
        ) from None


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 7, 8))
def scan_steps(
    step: StepFn,
    params: Params,
    xs: Array,
    carry: Carry,
    lengths: Array | None,
    window: int | None,
    reverse: bool,
    scan_unroll: int,
    remat: bool,
    resets: Array | None = None,
) -> tuple[Carry, Array]:
    """The scan itself, without validation (`unroll` validates first).

    `xs` is time-major; it may be a pytree of `[T, ...]` arrays when `step` takes one (the
    diagnostics pass `(x_t, probe_t)` pairs). Returns `(final_carry, ys)`.
    """
    num_steps = jax.tree.leaves(xs)[0].shape[0]
    if lengths is not None:
        # `unroll` refuses concrete lengths outside [0, T]; traced ones are clamped, so that
        # `window` counts a sequence's steps from min(length, T) as documented.
        lengths = jnp.clip(lengths, 0, num_steps)
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
    return jax.lax.scan(body, carry, (ts, xs, resets), reverse=reverse, unroll=scan_unroll)


@functools.partial(jax.jit, static_argnums=0)
def _parallel(parallel, params: Params, xs: Array, carry: Carry, valid: Array | None):
    """`cell.parallel`, jitted once per cell like `scan_steps`."""
    return parallel(params, xs, carry, valid)


def _valid_steps(lengths: Array, num_steps: int) -> Array:
    """`[T, *batch]`: step t < the sequence's length."""
    return jnp.arange(num_steps).reshape(-1, *([1] * lengths.ndim)) < lengths


def _expand(mask: Array, like: Array) -> Array:
    """`[*batch]` mask broadcastable against a `[*batch, ...]` array."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))
