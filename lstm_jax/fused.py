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
from lstm_jax.activations import activation
from lstm_jax.cell import Carry, Params

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
    trace = analytic.trace_steps(options, params, xs, carry, hoist=True, slim=True)
    return trace.final, _outputs(trace)


def _outputs(trace: analytic.Trace) -> Array:
    """`ys`: every cell here outputs its hidden state (the Elman trace keeps `h` itself)."""
    return trace.parts if isinstance(trace.parts, jax.Array) else trace.parts.h


def _fused_fwd(options: Any, full: bool, params: Params, xs: Array, carry: Carry):
    trace = analytic.trace_steps(options, params, xs, carry, hoist=True, slim=True)
    return (trace.final, _outputs(trace)), (params, xs, trace.carries, trace.parts)


def _fused_bwd(options: Any, full: bool, saved: tuple, cotangents: tuple):
    params, xs, carries, parts = saved
    dfinal, dys = cotangents
    if isinstance(options, lstm_lib.LSTMOptions):

        def delta(dcarry, inputs):
            carry_prev, p, dy = inputs
            dcarry = dcarry._replace(h=dcarry.h + dy)
            d_all, dcarry_prev = analytic.lstm_step_delta(
                options, params, carry_prev, p, dcarry, full
            )
            return dcarry_prev, d_all

        if full:
            dcarry0, d_all = jax.lax.scan(delta, dfinal, (carries, parts, dys), reverse=True)
        else:
            dcarry0, d_all = _lstm_truncated_delta(options, params, carries, parts, dys, dfinal)
        dparams = analytic.lstm_weight_grads(options, xs, carries, parts.c, d_all)
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


def _lstm_truncated_delta(options, params, carries, parts, dys, dfinal):
    """The TRUNCATED LSTM backward pass without a sequential loop.

    With every path into the gates cut, nothing reaches `h_{t-1}` (`dh_{t-1} = 0`), so each
    step's `dh_t` is its own output's gradient (plus the final carry's at T), and the only
    recurrence left is the linear one of the cell state,

        dc_t = e_t + f_{t+1} ⊙ dc_{t+1},   e_t = dh_t ⊙ o_t ⊙ k'(c_t)   (dc_T adds ∂L/∂c_T),

    which `lax.associative_scan` solves in O(log T) parallel steps. The gate deltas then follow
    for all steps at once from `analytic.lstm_step_delta`, fed the error arriving from t+1.
    Returns `(dcarry_0, d_pre [T, *batch, G·H])`, as the sequential loop would.
    """
    k = activation(options.output_activation, "output_activation")
    dh = dys.at[-1].add(dfinal.h)
    local = dh * parts.o * k.grad_out(parts.kc)
    b = local.at[-1].add(dfinal.c)
    a = jnp.concatenate([parts.f[1:], jnp.zeros_like(parts.f[:1])])  # a_t = f_{t+1}, a_T = 0

    def compose(later, earlier):
        # maps x ↦ a x + b; `earlier ∘ later`: x_t = a_t (a_{t+1} x + b_{t+1}) + b_t
        a_l, b_l = later
        a_e, b_e = earlier
        return a_e * a_l, a_e * b_l + b_e

    _, dc_total = jax.lax.associative_scan(compose, (a, b), reverse=True)  # dc_t
    # what reaches c_t from step t+1 (from the final carry at T): f_{t+1} ⊙ dc_{t+1}
    from_next = jnp.concatenate([a[:-1] * dc_total[1:], dfinal.c[None]])
    dgates = None
    if options.gate_recurrence:
        dgates = jnp.zeros_like(carries.gates).at[-1].set(dfinal.gates)
    dcarry = lstm_lib.LSTMCarry(h=dh, c=from_next, gates=dgates)
    d_all, dcarry_prev = analytic.lstm_step_delta(options, params, carries, parts, dcarry, False)
    return jax.tree.map(lambda x: x[0], dcarry_prev), d_all


def _cast_like(tree: Any, like: Any) -> Any:
    return jax.tree.map(lambda g, ref: g.astype(ref.dtype), tree, like)


_fused.defvjp(_fused_fwd, _fused_bwd)
