"""The fast unroll: a `jax.custom_vjp` whose backward pass is the cell's own derivation
(`cells.protocol.Derivation`), with every matmul that does not need the recurrence hoisted out
of the loops.

Autodiff of a `lax.scan` leaves every matmul inside the loop: per step `x_t W`, and in the
backward pass `dW += x_tᵀ d_t`, `dR += h_{t-1}ᵀ d_t`, `dx_t = d_t Wᵀ` besides the one product
the recurrence needs, `dh_{t-1} = d_t Rᵀ`. Here only the recurrent products stay in the loops;
everything else is one large matmul over all `T·B` rows::

    forward:   XW = project(params, X)                      one [T·B, I] × [I, G] matmul
               loop:    carry_t, acts_t, saved_t = forward(params, carry_{t-1}, XW[t])
    backward:  loop (reverse): dcarry_{t-1}, dpre_t, dsaved_t = delta(...)
               dparams = grads(params, X, carries_prev, carries, DPRE, DSAVED)
               dX = input_grad(params, DPRE)                one matmul each

Under TRUNCATED the cell's `delta` drops the recurrent product `dh_{t-1} = d_t Rᵀ` (it is cut):
for the LSTM and the Elman RNN only elementwise work remains.

One `[T, *batch, G]` buffer goes through both loops: it holds `X W`, each forward step
overwrites its row with `acts_t` and each backward step overwrites that with `dpre_t`, in place
(the `saved` residuals are overwritten by `dsaved` the same way, unless the cell's
`Derivation.delta_keeps_saved` says they are handed on unchanged). Every temporary buffer costs
twice on CPU (XLA fills it, and the pages of a large one are faulted in afresh on each call),
so this saves the forward pass's gate buffers and the backward pass's zero-filled `D`
(`experiments/benchmarks/`). XLA updates a loop's buffer in place only if every read of it is
ordered before the write: so each backward step reads the *next* step's row from the updated
buffer and carries it (a read at the start of the next step makes XLA copy the whole buffer,
once per step).

Reverse-mode only: `jax.jvp`/`jax.jacfwd` of a custom_vjp function is an error, so forward-mode
and higher-order differentiation use `unroll(..., impl="scan")`. The gradients equal the scan
path's (tests, float32 and float64).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.backward.analytic import entering_carries
from lstm_jax.cells.protocol import Carry, Cell, Params
from lstm_jax.modes import Gradient

Array = jax.Array


class Residuals(NamedTuple):
    """What the fused forward pass hands its backward pass."""

    params: Params
    xs: Array  # [T, *batch, I]
    carry0: Carry  # the initial carry
    carries: Carry  # [T, ...] the carry each step hands on
    acts: Array  # [T, *batch, G] the buffer of X W, now each step's activations
    saved: Any  # [T, ...] what else each step saved for its backward pass, or None


@functools.partial(jax.jit, static_argnames=("cell", "mode", "remat", "reverse"))
def fused_unroll(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry,
    mode: Gradient,
    remat: bool = False,
    reverse: bool = False,
) -> tuple[Carry, Array]:
    """`(final_carry, ys)` of `cell` (which must have a `derivation`) over time-major
    `xs: [T, *batch, I]`: forward values those of `unroll(impl="scan")`, gradients by the
    hand-derived backward pass in `mode`. Jitted, compiled once per `(cell, mode, remat,
    reverse)` and shapes: an eager call or `jax.grad` after the first one only runs.

    `reverse`: run from the last step back to the first; `ys` stay in input order.
    `remat`: segments of `S = ⌈√T⌉` steps, each a fused unroll under `jax.checkpoint`, scanned
    over: the forward pass keeps only the carry entering each segment, and the backward pass
    recomputes one segment's forward (its buffer and carries) just before running its backward.
    Residual memory O((T/S + S)·B·G) instead of O(T·B·G), for one more forward pass; the
    gradients are the same.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> from lstm_jax.modes import Gradient
    >>> cell = lstm_jax.rnn()
    >>> params = cell.init(jax.random.key(0), 3, 5)
    >>> h, ys = fused_unroll(cell, params, jnp.ones((7, 2, 3)), jnp.zeros((2, 5)), Gradient.FULL)
    >>> ys.shape
    (7, 2, 5)
    """
    if reverse:
        carry, ys = _segments(cell, params, xs[::-1], carry, mode, remat)
        return carry, ys[::-1]
    return _segments(cell, params, xs, carry, mode, remat)


def _segments(
    cell: Cell, params: Params, xs: Array, carry: Carry, mode: Gradient, remat: bool
) -> tuple[Carry, Array]:
    """The fused unroll, in ⌈√T⌉-step checkpointed segments under `remat`."""
    steps = xs.shape[0]
    size = math.isqrt(max(steps - 1, 0)) + 1  # ⌈√T⌉
    if not remat or steps <= size:
        return _fused(cell, mode, params, xs, carry)
    segment = jax.checkpoint(lambda p, x, c: _fused(cell, mode, p, x, c))

    def body(carry, x):
        return segment(params, x, carry)

    whole = steps // size * size  # the segments; a shorter last piece runs after them
    pieces = xs[:whole].reshape(whole // size, size, *xs.shape[1:])
    carry, ys = jax.lax.scan(body, carry, pieces)
    ys = ys.reshape(whole, *ys.shape[2:])
    if whole < steps:
        carry, rest = segment(params, xs[whole:], carry)
        ys = jnp.concatenate([ys, rest])
    return carry, ys


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused(cell: Cell, mode: Gradient, params: Params, xs: Array, carry: Carry):
    return _fused_fwd(cell, mode, params, xs, carry)[0]  # XLA drops the unused residuals


def _fused_fwd(
    cell: Cell, mode: Gradient, params: Params, xs: Array, carry0: Carry
) -> tuple[tuple[Carry, Array], Residuals]:
    d = cell.derivation
    dtype = jnp.result_type(xs, *jax.tree.leaves(params), *jax.tree.leaves(carry0))
    buffer = d.project(params, xs).astype(dtype)

    def step(state, _):
        t, carry, buffer = state
        carry, acts, saved = d.forward(params, carry, _row(buffer, t))
        buffer = jax.lax.dynamic_update_index_in_dim(buffer, acts.astype(dtype), t, 0)
        return (t + 1, carry, buffer), (carry, saved)

    (_, final, buffer), (carries, saved) = jax.lax.scan(
        step, (0, carry0, buffer), length=xs.shape[0]
    )
    ys = jax.vmap(cell.output)(carries)
    return (final, ys), Residuals(params, xs, carry0, carries, buffer, saved)


def _fused_bwd(cell: Cell, mode: Gradient, res: Residuals, cotangents: tuple[Carry, Array]):
    d = cell.derivation
    dfinal, dys = cotangents
    params = res.params
    last = res.acts.shape[0] - 1

    def step(state, _):
        t, dcarry, acts, saved, buffer, saved_buffer = state
        carry_prev = jax.tree.map(functools.partial(_entering, t=t), res.carries, res.carry0)
        carry_t = jax.tree.map(functools.partial(_row, t=t), res.carries)
        dcarry, dpre, dsaved = d.delta(
            params, carry_prev, carry_t, acts, saved, dcarry, _row(dys, t), mode
        )
        buffer = jax.lax.dynamic_update_index_in_dim(buffer, dpre.astype(buffer.dtype), t, 0)
        if not d.delta_keeps_saved:  # else `dsaved` is `saved`, already in the buffer
            saved_buffer = jax.tree.map(
                lambda buf, new: jax.lax.dynamic_update_index_in_dim(
                    buf, new.astype(buf.dtype), t, 0
                ),
                saved_buffer,
                dsaved,
            )
        previous = jnp.maximum(t - 1, 0)  # read after the writes: see the module docstring
        acts = _row(buffer, previous)
        saved = jax.tree.map(functools.partial(_row, t=previous), saved_buffer)
        return (t - 1, dcarry, acts, saved, buffer, saved_buffer), None

    first_saved = jax.tree.map(functools.partial(_row, t=last), res.saved)
    state = (last, dfinal, _row(res.acts, last), first_saved, res.acts, res.saved)
    (_, dcarry0, _, _, dpres, dsaved), _ = jax.lax.scan(step, state, length=last + 1)
    carries_prev = entering_carries(res.carry0, res.carries)
    dparams = d.grads(params, res.xs, carries_prev, res.carries, dpres, dsaved)
    # Cotangents take their primals' dtypes (the hoisted matmuls promote, e.g. bf16 xs).
    return (
        _cast_like(dparams, params),
        d.input_grad(params, dpres).astype(res.xs.dtype),
        _cast_like(dcarry0, dfinal),
    )


def _entering(seq: Array, first: Array, *, t: Array) -> Array:
    """The carry (part) entering step t: row t - 1 of the stacked outputs `seq`, `first` (the
    initial carry's) at t = 0."""
    return jnp.where(t > 0, _row(seq, jnp.maximum(t - 1, 0)), first)


def _row(seq: Array, t: Array | int) -> Array:
    """`seq[t]` for a traced `t` (no negative-index wrap-around to compute)."""
    return jax.lax.dynamic_index_in_dim(seq, t, 0, keepdims=False)


def _cast_like(tree: Any, like: Any) -> Any:
    return jax.tree.map(lambda g, ref: g.astype(ref.dtype), tree, like)


_fused.defvjp(_fused_fwd, _fused_bwd)
