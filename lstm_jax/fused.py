"""The fast unroll: a `jax.custom_vjp` whose backward pass is the analytic reverse scan.

Autodiff of a `lax.scan` leaves every matmul inside the loop: per step `x_t W`, and in the
backward pass `dW += x_tᵀ d_t`, `dR += h_{t-1}ᵀ d_t`, `dx_t = d_t Wᵀ` besides the one
product the recurrence needs, `dh_{t-1} = d_t Rᵀ`. Here only the recurrent products stay in
the loops; everything else is one large matmul over all `T·B` rows:

    forward:   X_proj = X W + b                     (one [T·B, I] × [I, G·H] matmul)
               scan:  pre_t = X_proj[t] + h_{t-1} R, gates, c_t, h_t
    backward:  scan (reverse): d_t from the gates (`analytic.*_step_delta`), dh_{t-1} = d_t Rᵀ
               dW = Xᵀ D,  dR = H_prevᵀ D,  db = Σ D,  dX = D Wᵀ   (one matmul each)

Under TRUNCATED the backward loop drops the recurrent product `dh_{t-1} = d_t Rᵀ` (it is
cut): for the LSTM and the Elman RNN only elementwise work remains (the paper-convention GRU,
`reset_after=False`, still needs `R_hᵀ dh̄_t` inside its step for the reset gate).

The LSTM and the GRU keep one `[T, *batch, G·H]` buffer through both loops: it holds `X W`,
each forward step overwrites its row with the step's gate activations, and each backward step
overwrites them with `d_t`, all in place. Every temporary buffer costs twice on CPU (XLA fills
it, and the pages of a large one are faulted in afresh on each call), so this saves the
forward pass's gate buffers and the backward pass's zero-filled `D` (a third of the LSTM's
pass at T = 1000, a few per cent at the other benchmark shapes: `experiments/benchmarks/`).

Reverse-mode only: `jax.jvp`/`jax.jacfwd` of a custom_vjp function is an error, so forward-mode
and higher-order differentiation use `unroll(..., impl="scan")`. The gradients equal the scan
path's (tests, float32 and float64).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax import analytic, elman_cell, gru_cell
from lstm_jax import lstm_cell as lstm_lib
from lstm_jax.cell import Carry, Params
from lstm_jax.gradients import keep

Array = jax.Array

SUPPORTED = (lstm_lib.LSTMOptions, gru_cell.GRUOptions, elman_cell.ElmanOptions)


def supports(options: Any) -> bool:
    """Whether `fused_unroll` implements this cell."""
    return isinstance(options, SUPPORTED)


def fused_unroll(
    options: Any, params: Params, xs: Array, carry: Carry, full: bool
) -> tuple[Carry, Array]:
    """`(final_carry, ys)` of the cell over time-major `xs: [T, *batch, I]`, forward values
    those of `unroll(impl="scan")`, gradients by the hand-derived backward pass."""
    return _fused(options, full, params, xs, carry)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused(options: Any, full: bool, params: Params, xs: Array, carry: Carry):
    return _fused_fwd(options, full, params, xs, carry)[0]  # XLA drops the unused residuals


def _fused_fwd(options: Any, full: bool, params: Params, xs: Array, carry: Carry):
    if isinstance(options, lstm_lib.LSTMOptions):
        final, hs, (acts, cs, gates) = _lstm_forward(options, params, xs, carry)
        return (final, hs), (params, xs, carry, (acts, cs, hs, gates))
    if isinstance(options, gru_cell.GRUOptions):
        final, hs, (acts, rhs) = _gru_forward(options, params, xs, carry)
        return (final, hs), (params, xs, carry, (acts, rhs, hs))
    trace = analytic.trace_steps(options, params, xs, carry, hoist=True)  # Elman: parts = h_t
    return (trace.final, trace.parts), (params, xs, trace.carries, trace.parts)


def _fused_bwd(options: Any, full: bool, saved: tuple, cotangents: tuple):
    params, xs, carries, parts = saved
    dfinal, dys = cotangents
    if isinstance(options, lstm_lib.LSTMOptions):
        _, cs, hs, gates = parts
        dcarry0, d_all = _lstm_backward(options, params, carries, parts, dys, dfinal, full)
        entering = analytic.entering_carries(carries, lstm_lib.LSTMCarry(h=hs, c=cs, gates=gates))
        dparams = analytic.lstm_weight_grads(options, xs, entering, cs, d_all)
    elif isinstance(options, gru_cell.GRUOptions):
        _, rhs, hs = parts
        dcarry0, d_all, d_h_side = _gru_backward(options, params, carries, parts, dys, dfinal, full)
        p = gru_cell.GRUParts(None, None, None, rhs, None, None, None, None)  # rh: all it reads
        h_prev = analytic.entering_carries(carries, hs)
        dparams = analytic.gru_weight_grads(options, xs, h_prev, p, d_all, d_h_side)
    else:

        def delta(dh, inputs):
            h_prev, h, dy = inputs
            d_pre, dh_prev = analytic.elman_step_delta(params, h_prev, h, dh + dy, full)
            return dh_prev, d_pre

        dcarry0, d_all = jax.lax.scan(delta, dfinal, (carries, parts, dys), reverse=True)
        dparams = analytic.elman_weight_grads(xs, carries, d_all)
    # Cotangents take their primals' dtypes (the hoisted matmuls promote, e.g. bf16 xs).
    return (
        _cast_like(dparams, params),
        (d_all @ params.w.T).astype(xs.dtype),
        _cast_like(dcarry0, dfinal),
    )


def _lstm_forward(
    options: lstm_lib.LSTMOptions, params: lstm_lib.LSTMParams, xs: Array, carry: lstm_lib.LSTMCarry
) -> tuple[lstm_lib.LSTMCarry, Array, tuple[Array, Array, Array | None]]:
    """The forward loop. Returns `(final_carry, hs, (acts, cs, gates))`: `hs, cs [T, *batch, H]`,
    `acts [T, *batch, G·H]` each step's gate activations (`lstm_cell.activations`) and, for
    FGR only, `gates [T, *batch, S·H]` the gate carry each step hands on (else None).

    `acts` is the buffer of `X W`: step t reads its row and overwrites it with the
    activations, in place (see the module docstring).
    """
    dtype = jnp.result_type(xs, *jax.tree.leaves(params), *jax.tree.leaves(carry))
    buffer = (xs @ params.w).astype(dtype)

    def step(state, _):
        t, carry, buffer = state
        p = lstm_lib.parts(options, params, carry, None, keep, _row(buffer, t) + params.b)
        buffer = jax.lax.dynamic_update_index_in_dim(
            buffer, lstm_lib.activations(options, p).astype(dtype), t, 0
        )
        carry = lstm_lib.carry_from_parts(options, p)
        return (t + 1, carry, buffer), (p.c, p.h, carry.gates)

    (_, final, acts), (cs, hs, gates) = jax.lax.scan(step, (0, carry, buffer), length=xs.shape[0])
    return final, hs, (acts, cs, gates)


def _lstm_backward(
    options: lstm_lib.LSTMOptions,
    params: lstm_lib.LSTMParams,
    carry0: lstm_lib.LSTMCarry,
    residuals: tuple[Array, Array, Array, Array | None],
    dys: Array,
    dfinal: lstm_lib.LSTMCarry,
    full: bool,
) -> tuple[lstm_lib.LSTMCarry, Array]:
    """The reverse loop over `analytic.lstm_step_delta`. Returns `(dcarry_0, d_pre)` with
    `d_pre [T, *batch, G·H]` the pre-activation gradients, written over `acts` in place.

    Step t reads its activations and overwrites them with `d_pre_t`. XLA updates a loop's
    buffer in place only if every read of it is ordered before the write; so each step reads
    the next step's row from the *updated* buffer and carries it (a read at the start of the
    next step would make XLA copy the whole buffer, once per step).
    """
    acts, cs, hs, gates = residuals
    last = acts.shape[0] - 1

    def step(state, _):
        t, dcarry, row, buffer = state
        entering = functools.partial(_entering, t=t)
        carry = jax.tree.map(entering, lstm_lib.LSTMCarry(hs, cs, gates), carry0)
        p = lstm_lib.parts_from_activations(options, row, _row(cs, t))
        dcarry = dcarry._replace(h=dcarry.h + _row(dys, t))
        d_all, dcarry = analytic.lstm_step_delta(options, params, carry, p, dcarry, full)
        buffer = jax.lax.dynamic_update_index_in_dim(buffer, d_all.astype(buffer.dtype), t, 0)
        row = _row(buffer, jnp.maximum(t - 1, 0))  # after the write: see the docstring
        return (t - 1, dcarry, row, buffer), None

    state = (last, dfinal, _row(acts, last), acts)
    (_, dcarry0, _, d_all), _ = jax.lax.scan(step, state, length=acts.shape[0])
    return dcarry0, d_all


def _gru_forward(
    options: gru_cell.GRUOptions, params: gru_cell.GRUParams, xs: Array, h0: Array
) -> tuple[Array, Array, tuple[Array, Array]]:
    """The forward loop. Returns `(h_T, hs, (acts, rhs))`: `hs, rhs [T, *batch, H]` (`rh` as in
    `GRUParts`) and `acts [T, *batch, 3H]`, each step's `[r, u, ĥ]` written over its row of
    `X W` in place (as for the LSTM, see the module docstring)."""
    dtype = jnp.result_type(xs, h0, *jax.tree.leaves(params))
    buffer = (xs @ params.w).astype(dtype)

    def step(state, _):
        t, h, buffer = state
        p = gru_cell.parts(options, params, h, None, keep, _row(buffer, t) + params.b)
        acts = jnp.concatenate([p.r, p.u, p.h_cand], axis=-1).astype(dtype)
        return (t + 1, p.h, jax.lax.dynamic_update_index_in_dim(buffer, acts, t, 0)), (p.h, p.rh)

    (_, final, acts), (hs, rhs) = jax.lax.scan(step, (0, h0, buffer), length=xs.shape[0])
    return final, hs, (acts, rhs)


def _gru_backward(
    options: gru_cell.GRUOptions,
    params: gru_cell.GRUParams,
    h0: Array,
    residuals: tuple[Array, Array, Array],
    dys: Array,
    dfinal: Array,
    full: bool,
) -> tuple[Array, Array, Array]:
    """The reverse loop over `analytic.gru_step_delta`. Returns `(dh_0, d_x_side, d_h_side)`,
    the step deltas stacked over time: `d_x_side [T, *batch, 3H]` written over `acts` in place
    and, with reset after, the third block of `d_h_side` (`dh̄ ⊙ r`) over `rhs` (each read
    before its step writes; the rows are carried as in `_lstm_backward`)."""
    acts, rhs, hs = residuals
    hidden = hs.shape[-1]
    last = acts.shape[0] - 1
    after = options.reset_after

    def step(state, _):
        t, dh, row, rh, buffer, rh_buffer = state
        h_prev = _entering(hs, h0, t=t)
        r, u, h_cand = jnp.split(row, 3, axis=-1)
        p = gru_cell.GRUParts(None, None, None, rh, r, u, h_cand, None)
        d_x, d_h, dh = analytic.gru_step_delta(options, params, h_prev, p, dh + _row(dys, t), full)
        buffer = jax.lax.dynamic_update_index_in_dim(buffer, d_x.astype(buffer.dtype), t, 0)
        previous = jnp.maximum(t - 1, 0)
        if after:  # rh is dead once read: its row takes dh̄ ⊙ r, d_h's block beyond d_x's
            d_hr = d_h[..., 2 * hidden :].astype(rh_buffer.dtype)
            rh_buffer = jax.lax.dynamic_update_index_in_dim(rh_buffer, d_hr, t, 0)
        rh = _row(rh_buffer, previous)  # after the writes: see `_lstm_backward`
        return (t - 1, dh, _row(buffer, previous), rh, buffer, rh_buffer), None

    state = (last, dfinal, _row(acts, last), _row(rhs, last), acts, rhs)
    (_, dh0, _, _, d_x, d_hr), _ = jax.lax.scan(step, state, length=acts.shape[0])
    if after:
        d_h = jnp.concatenate([d_x[..., : 2 * hidden], d_hr], axis=-1)
    else:
        d_h = d_x[..., : 2 * hidden]
    return dh0, d_x, d_h


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
