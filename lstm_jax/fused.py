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

The LSTM keeps one `[T, *batch, G·H]` buffer through both loops: it holds `X W`, each forward
step overwrites its row with the step's gate activations, and each backward step overwrites
them with `d_t`, all in place. Every temporary buffer costs twice on CPU (XLA fills it, and
the pages of a large one are faulted in afresh on each call), so this saves the forward
pass's gate buffers and the backward pass's zero-filled `D` (`experiments/benchmarks/`).

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


# Where `impl="auto"` picks the fused path: where it measured faster than the scan path
# (experiments/benchmarks/README.md): the Elman RNN and the LSTM. For the GRU, XLA's own autodiff
# of the scan was faster at the two larger shapes, so "auto" keeps the scan there.
PREFERRED = (lstm_lib.LSTMOptions, elman_cell.ElmanOptions)


def supports(options: Any) -> bool:
    """Whether `fused_unroll` implements this cell."""
    return isinstance(options, SUPPORTED)


def preferred(options: Any) -> bool:
    """Whether `impl="auto"` uses the fused path for this cell."""
    return isinstance(options, PREFERRED)


def fused_unroll(
    options: Any, params: Params, xs: Array, carry: Carry, full: bool
) -> tuple[Carry, Array]:
    """`(final_carry, ys)` of the cell over time-major `xs: [T, *batch, I]`, forward values
    those of `unroll(impl="scan")`, gradients by the hand-derived backward pass."""
    return _fused(options, full, params, xs, carry)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused(options: Any, full: bool, params: Params, xs: Array, carry: Carry):
    if isinstance(options, lstm_lib.LSTMOptions):
        final, hs, _ = _lstm_forward(options, params, xs, carry)
        return final, hs
    trace = analytic.trace_steps(options, params, xs, carry, hoist=True, slim=True)
    return trace.final, _outputs(trace)


def _outputs(trace: analytic.Trace) -> Array:
    """`ys`: every cell here outputs its hidden state (the Elman trace keeps `h` itself)."""
    return trace.parts if isinstance(trace.parts, jax.Array) else trace.parts.h


def _fused_fwd(options: Any, full: bool, params: Params, xs: Array, carry: Carry):
    if isinstance(options, lstm_lib.LSTMOptions):
        final, hs, (acts, cs, gates) = _lstm_forward(options, params, xs, carry)
        return (final, hs), (params, xs, carry, (acts, cs, hs, gates))
    trace = analytic.trace_steps(options, params, xs, carry, hoist=True, slim=True)
    return (trace.final, _outputs(trace)), (params, xs, trace.carries, trace.parts)


def _fused_bwd(options: Any, full: bool, saved: tuple, cotangents: tuple):
    params, xs, carries, parts = saved
    dfinal, dys = cotangents
    if isinstance(options, lstm_lib.LSTMOptions):
        _, cs, hs, gates = parts
        dcarry0, d_all = _lstm_backward(options, params, carries, parts, dys, dfinal, full)
        # The carry entering each step is the one the previous step handed on.
        after = lstm_lib.LSTMCarry(h=hs, c=cs, gates=gates)
        entering = jax.tree.map(
            lambda c0, seq: jnp.concatenate([c0[None], seq[:-1]]), carries, after
        )
        dparams = analytic.lstm_weight_grads(options, xs, entering, cs, d_all)
    elif isinstance(options, gru_cell.GRUOptions):

        def delta(dh, inputs):
            h_prev, p, dy = inputs
            d_x, d_h, dh_prev = analytic.gru_step_delta(options, params, h_prev, p, dh + dy, full)
            return dh_prev, (d_x, d_h)

        dcarry0, (d_all, d_h_side) = jax.lax.scan(
            delta, dfinal, (carries, parts, dys), reverse=True
        )
        dparams = analytic.gru_weight_grads(options, xs, carries, parts, d_all, d_h_side)
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

        def entering(seq: Array, first: Array) -> Array:  # step t - 1's, `carry0` at t = 0
            return jnp.where(t > 0, _row(seq, jnp.maximum(t - 1, 0)), first)

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


def _row(seq: Array, t: Array | int) -> Array:
    """`seq[t]` for a traced `t` (no negative-index wrap-around to compute)."""
    return jax.lax.dynamic_index_in_dim(seq, t, 0, keepdims=False)


def _cast_like(tree: Any, like: Any) -> Any:
    return jax.tree.map(lambda g, ref: g.astype(ref.dtype), tree, like)


_fused.defvjp(_fused_fwd, _fused_bwd)
