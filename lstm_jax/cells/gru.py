"""The GRU (Cho et al. 2014), with the reset gate applied before or after the matmul, and its
derivation::

    u_t = σ(W_u x_t + R_u h_{t-1} + b_u)                          (update gate)
    r_t = σ(W_r x_t + R_r h_{t-1} + b_r)                          (reset gate)
    ĥ_t = tanh(W_h x_t + R_h (r_t ⊙ h_{t-1}) + b_h)               (reset before, the paper)
    ĥ_t = tanh(W_h x_t + r_t ⊙ (R_h h_{t-1} + b_rh) + b_h)   (reset after: cuDNN, PyTorch, flax)
    h_t = (1 - u_t) ⊙ h_{t-1} + u_t ⊙ ĥ_t

flax and PyTorch call `1 - u` their update gate `z` (`h' = (1 - z) ⊙ n + z ⊙ h`). The backward
pass (`delta`, `grads`), with `δh_t` the total ∂L/∂h_t::

    δĥ_t = δh_t ⊙ u_t,   δū_t = δh_t ⊙ (ĥ_t - h_{t-1}) ⊙ σ'(ū_t),   δh̄_t = δĥ_t ⊙ (1 - ĥ_t²)
    reset after:  δr̄_t = δh̄_t ⊙ (R_h h_{t-1} + b_rh) ⊙ σ'(r̄_t),  δ(R_h h_{t-1}) = δh̄_t ⊙ r_t
    reset before: δ(r_t ⊙ h_{t-1}) = R_hᵀ δh̄_t,  δr̄_t = δ(r_t ⊙ h_{t-1}) ⊙ h_{t-1} ⊙ σ'(r̄_t)
    δh_{t-1} = δh_t ⊙ (1 - u_t) + [the paths through R_*]

Under `Gradient.TRUNCATED` only the linear path `δh_t ⊙ (1 - u_t)` carries error back in time.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import initializers
from lstm_jax.cells.activations import sigmoid
from lstm_jax.cells.checks import check_flag
from lstm_jax.cells.protocol import (
    Cell,
    Derivation,
    cell_from_step,
    kernel_input_grad,
    kernel_project,
    outer_sum,
    sum_leading,
    zero_state,
)
from lstm_jax.modes import Gradient, cut_nothing

Array = jax.Array

GRU_GATE_ORDER: tuple[str, ...] = ("r", "u", "h")
"""Order of the blocks along the last axis of `w`, `r` and `b`: reset gate, update gate,
candidate state (PyTorch's and flax's order)."""


class GRUParams(NamedTuple):
    """Kernels are `in → out`: the equations' `W_*` is `w[:, block]ᵀ`, `R_*` is `r[:, block]ᵀ`."""

    w: Array  # [I, 3H] blocks in GRU_GATE_ORDER
    r: Array  # [H, 3H]
    b: Array  # [3H] b_r, b_u, b_h
    b_rh: Array | None = None  # [H] bias inside the reset product (reset_after only)


class GRUParts(NamedTuple):
    """Every intermediate of one GRU step."""

    r_pre: Array  # [*batch, H]
    u_pre: Array
    h_pre: Array  # pre-activation of ĥ
    rh: Array  # R_h h_{t-1} + b_rh (reset after) or r_t ⊙ h_{t-1} (reset before)
    r: Array
    u: Array
    h_cand: Array  # ĥ_t
    h: Array  # h_t


@dataclasses.dataclass(frozen=True)
class GRUOptions:
    """reset_after: True for the cuDNN/PyTorch/flax convention (default), False for the paper's."""

    reset_after: bool = True


def gru(*, reset_after: bool = True) -> Cell:
    """A GRU `Cell`. The carry is `h: [*batch, H]`; `y_t = h_t`.

    Under `Gradient.TRUNCATED` only the linear path `(1 - u_t) ⊙ h_{t-1}` carries error back.

    >>> import jax, jax.numpy as jnp
    >>> cell = gru(reset_after=False)
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> h, y = cell.step(params, cell.initial_carry((2,), 4), jnp.ones((2, 3)))
    >>> y.shape
    (2, 4)
    """
    return _gru_cell(GRUOptions(reset_after=check_flag("reset_after", reset_after)))


@functools.cache
def _gru_cell(options: GRUOptions) -> Cell:
    derivation = Derivation(
        kernel_project,
        functools.partial(forward, options),
        functools.partial(delta, options),
        functools.partial(grads, options),
        kernel_input_grad,
        delta_keeps_saved=not options.reset_after,  # `delta` hands `rh` on to `grads`
    )
    return cell_from_step(
        options,
        functools.partial(init, options),
        zero_state,
        functools.partial(step, options),
        derivation=derivation,
        family="gru",
    )


def init(
    options: GRUOptions, key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32
) -> GRUParams:
    """LeCun-normal `w`, orthogonal blocks of `r`, zero biases."""
    initializers.check_sizes(input_size, hidden_size)
    k_w, k_r = jax.random.split(key)
    return GRUParams(
        w=initializers.input_kernel(k_w, input_size, 3 * hidden_size, dtype),
        r=initializers.recurrent_kernel(k_r, hidden_size, 3, dtype),
        b=jnp.zeros((3 * hidden_size,), dtype),
        b_rh=jnp.zeros((hidden_size,), dtype) if options.reset_after else None,
    )


def parts(
    options: GRUOptions,
    params: GRUParams,
    carry: Array,
    x: Array | None,
    cut: Callable[[Any], Any] = cut_nothing,
    x_proj: Array | None = None,
) -> GRUParts:
    """One GRU step with every intermediate; `cut` wraps `h_{t-1}` where it enters a
    pre-activation (never the linear path `(1 - u) ⊙ h_{t-1}`). `x_proj = x @ w + b`, when
    given, replaces `x` (the fused unroll computes it for all steps in one matmul)."""
    hidden = carry.shape[-1]
    h_in = cut(carry)
    if x_proj is None:
        x_proj = x @ params.w + params.b
    xr, xu, xh = jnp.split(x_proj, 3, axis=-1)
    if options.reset_after:
        hr, hu, hh = jnp.split(h_in @ params.r, 3, axis=-1)
        r = sigmoid.fn(xr + hr)
        rh = hh + params.b_rh
        h_pre = xh + r * rh
    else:
        hr, hu = jnp.split(h_in @ params.r[:, : 2 * hidden], 2, axis=-1)
        r = sigmoid.fn(xr + hr)
        rh = r * h_in
        h_pre = xh + rh @ params.r[:, 2 * hidden :]
    u = sigmoid.fn(xu + hu)
    h_cand = jnp.tanh(h_pre)
    h = (1 - u) * carry + u * h_cand
    return GRUParts(xr + hr, xu + hu, h_pre, rh, r, u, h_cand, h)


def step(
    options: GRUOptions,
    params: GRUParams,
    carry: Array,
    x: Array,
    cut: Callable[[Any], Any] = cut_nothing,
) -> tuple[Array, Array]:
    """`(h_{t-1}, x_t) -> (h_t, h_t)`; `x: [*batch, I]`, `h: [*batch, H]`."""
    h = parts(options, params, carry, x, cut).h
    return h, h


# ----------------------------------------------------------------------------------------------
# Derivation (the module docstring's equations)


def forward(
    options: GRUOptions, params: GRUParams, h_prev: Array, xw: Array
) -> tuple[Array, Array, Array]:
    """The step from `xw = x_t @ w`: `(h_t, acts = [r_t, u_t, ĥ_t], saved = rh_t)` (`rh` as in
    `GRUParts`: `R_h h_{t-1} + b_rh` with reset after, `r_t ⊙ h_{t-1}` before)."""
    p = parts(options, params, h_prev, None, cut_nothing, xw + params.b)
    return p.h, jnp.concatenate([p.r, p.u, p.h_cand], axis=-1), p.rh


def delta(
    options: GRUOptions,
    params: GRUParams,
    h_prev: Array,
    h: Array,
    acts: Array,
    rh: Array,
    dh: Array,
    dy: Array,
    mode: Gradient,
) -> tuple[Array, Array, Array]:
    """One step backwards: `(δh_{t-1}, δxw_t = [δr̄, δū, δh̄], dsaved)`. `dsaved` replaces `rh`
    for `grads`: with reset after `δh̄ ⊙ r`, the gradient of `R_h h_{t-1} + b_rh` (`rh` is dead
    once read); with reset before `rh` itself, which `δR_h` needs."""
    full = mode is Gradient.FULL
    hidden = h_prev.shape[-1]
    r, u, h_cand = jnp.split(acts, 3, axis=-1)
    dh = dh + dy
    d_u = dh * (h_cand - h_prev) * sigmoid.grad_out(u)
    d_hpre = dh * u * (1 - h_cand**2)
    if options.reset_after:
        d_r = d_hpre * rh * sigmoid.grad_out(r)
        d_rh = d_hpre * r  # ∂L/∂(R_h h_{t-1} + b_rh)
        d_h_side = jnp.concatenate([d_r, d_u, d_rh], axis=-1)  # ∂L/∂(h_{t-1} r)
        dh_in = d_h_side @ params.r.T if full else 0.0
        dsaved = d_rh
    else:
        d_in = d_hpre @ params.r[:, 2 * hidden :].T  # ∂L/∂(r ⊙ h_{t-1})
        d_r = d_in * h_prev * sigmoid.grad_out(r)
        dh_in = jnp.concatenate([d_r, d_u], axis=-1) @ params.r[:, : 2 * hidden].T + d_in * r
        dh_in = dh_in if full else 0.0
        dsaved = rh
    return dh * (1 - u) + dh_in, jnp.concatenate([d_r, d_u, d_hpre], axis=-1), dsaved


def grads(
    options: GRUOptions,
    params: GRUParams,
    x: Array,
    h_prev: Array,
    h: Array,
    d_xw: Array,
    dsaved: Array,
) -> GRUParams:
    """`δW = Σ x ⊗ δxw`, `δb = Σ δxw`; with reset after `δR = Σ h_{t-1} ⊗ [δr̄, δū, δh̄ ⊙ r]`,
    `δb_rh = Σ δh̄ ⊙ r`; with reset before `δR_{r,u} = Σ h_{t-1} ⊗ [δr̄, δū]` and
    `δR_h = Σ (r ⊙ h_{t-1}) ⊗ δh̄`. Sums over every leading axis."""
    hidden = h_prev.shape[-1]
    if options.reset_after:
        d_h_side = jnp.concatenate([d_xw[..., : 2 * hidden], dsaved], axis=-1)
        dr = outer_sum(h_prev, d_h_side)
        db_rh = sum_leading(dsaved)  # b_rh sits beside R_h h_{t-1}
    else:
        dr = jnp.concatenate(
            [
                outer_sum(h_prev, d_xw[..., : 2 * hidden]),
                outer_sum(dsaved, d_xw[..., 2 * hidden :]),
            ],
            axis=-1,
        )
        db_rh = None
    return GRUParams(w=outer_sum(x, d_xw), r=dr, b=sum_leading(d_xw), b_rh=db_rh)
