"""The fast unroll: a `jax.custom_vjp` whose backward pass is the analytic reverse scan.

Autodiff of a `lax.scan` leaves every matmul inside the loop: per step `x_t W`, and in the
backward pass `dW += x_tᵀ d_t`, `dR += h_{t-1}ᵀ d_t`, `dx_t = d_t Wᵀ` besides the one
product the recurrence needs, `dh_{t-1} = d_t Rᵀ`. Here only the recurrent products stay in
the loops; everything else is one large matmul over all `T·B` rows:

    forward:   X_proj = X W + b                     (one [T·B, I] × [I, G·H] matmul)
               scan:  pre_t = X_proj[t] + h_{t-1} R, gates, c_t, h_t
    backward:  scan (reverse): d_t from the gates (`analytic.*_step_delta`), dh_{t-1} = d_t Rᵀ
               dW = Xᵀ D,  dR = H_prevᵀ D,  db = Σ D,  dX = D Wᵀ   (one matmul each)

Under TRUNCATED the backward loop has no matmul at all (`dh_{t-1}` is cut), only the
elementwise cell-state recurrence.

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

Array = jax.Array

SUPPORTED = (lstm_lib.LSTMOptions, gru_cell.GRUOptions, elman_cell.ElmanOptions)


# Where `impl="auto"` picks the fused path: only where it measured faster than the scan path at
# every benchmark shape (experiments/benchmarks/README.md). For the LSTM and GRU, XLA's own
# autodiff of the scan was as fast or faster at 3 of 4 shapes, so "auto" keeps the scan there.
PREFERRED = (elman_cell.ElmanOptions,)


def supports(options: Any) -> bool:
    """Whether `fused_unroll` implements this cell."""
    return isinstance(options, SUPPORTED)


def preferred(options: Any) -> bool:
    """Whether `impl="auto"` uses the fused path for this cell."""
    return isinstance(options, PREFERRED)


def fused_unroll(options: Any, params: Params, xs: Array, carry: Carry, full: bool):
    """`(final_carry, ys)` of the cell over time-major `xs: [T, *batch, I]`, forward values
    identical to `unroll(impl="scan")`, gradients by the hand-derived backward pass."""
    return _fused(options, full, params, xs, carry)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused(options, full, params, xs, carry):
    (final, ys), _ = _forward(options, params, xs, carry)
    return final, ys


def _forward(options, params, xs, carry):
    """Forward pass; returns `((final, ys), residuals)`."""
    if isinstance(options, lstm_lib.LSTMOptions):
        x_proj = xs @ params.w + params.b  # hoisted: one matmul for all steps

        def step(carry, xp):
            p = lstm_lib.parts(options, params, carry, None, x_proj=xp)
            return lstm_lib.carry_from_parts(options, p), (carry, p)

        final, (carries, parts) = jax.lax.scan(step, carry, x_proj)
        return (final, parts.h), (carries, parts)
    if isinstance(options, gru_cell.GRUOptions):
        x_proj = xs @ params.w + params.b

        def step(h, xp):
            p = gru_cell.parts(options, params, h, None, x_proj=xp)
            return p.h, (h, p)

        final, (carries, parts) = jax.lax.scan(step, carry, x_proj)
        return (final, parts.h), (carries, parts)
    x_proj = xs @ params.w + params.b

    def step(h, xp):
        h_new = jnp.tanh(xp + h @ params.r)
        return h_new, (h, h_new)

    final, (carries, hs) = jax.lax.scan(step, carry, x_proj)
    return (final, hs), (carries, hs)


def _fused_fwd(options, full, params, xs, carry):
    (final, ys), residuals = _forward(options, params, xs, carry)
    return (final, ys), (params, xs, residuals)


def _fused_bwd(options, full, saved, cotangents):
    params, xs, (carries, parts) = saved
    dfinal, dys = cotangents
    if isinstance(options, lstm_lib.LSTMOptions):

        def delta(dcarry, inputs):
            carry_prev, p, dy = inputs
            d_all, dcarry_prev = analytic.lstm_step_delta(
                options, params, carry_prev, p, dcarry._replace(h=dcarry.h + dy), full
            )
            return dcarry_prev, d_all

        dcarry0, d_all = jax.lax.scan(delta, dfinal, (carries, parts, dys), reverse=True)
        dparams = analytic.lstm_weight_grads(options, xs, carries, parts.c, d_all)
    elif isinstance(options, gru_cell.GRUOptions):

        def delta(dh, inputs):
            h_prev, p, dy = inputs
            d_x_side, d_h_side, dh_prev = analytic.gru_step_delta(
                options, params, h_prev, p, dh + dy, full
            )
            return dh_prev, (d_x_side, d_h_side)

        dcarry0, (d_all, d_h_side) = jax.lax.scan(
            delta, dfinal, (carries, parts, dys), reverse=True
        )
        dparams = analytic.gru_weight_grads(options, xs, carries, parts, d_all, d_h_side)
    else:

        def delta(dh, inputs):
            h_prev, h, dy = inputs
            d_pre = (dh + dy) * (1 - h**2)
            return (d_pre @ params.r.T if full else jnp.zeros_like(h_prev)), d_pre

        dcarry0, d_all = jax.lax.scan(delta, dfinal, (carries, parts, dys), reverse=True)
        dparams = elman_cell.ElmanParams(
            w=analytic._outer(xs, d_all),
            r=analytic._outer(carries, d_all),
            b=analytic._sum_batch(d_all),
        )
    return dparams, d_all @ params.w.T, dcarry0


_fused.defvjp(_fused_fwd, _fused_bwd)
