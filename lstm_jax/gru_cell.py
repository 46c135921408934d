"""The GRU (Cho et al. 2014), with the reset gate applied before or after the matmul (SPEC §2)::

    u_t = σ(W_u x_t + R_u h_{t-1} + b_u)                          (update gate)
    r_t = σ(W_r x_t + R_r h_{t-1} + b_r)                          (reset gate)
    ĥ_t = tanh(W_h x_t + R_h (r_t ⊙ h_{t-1}) + b_h)               (reset before, the paper)
    ĥ_t = tanh(W_h x_t + r_t ⊙ (R_h h_{t-1} + b_rh) + b_h)   (reset after: cuDNN, PyTorch, flax)
    h_t = (1 - u_t) ⊙ h_{t-1} + u_t ⊙ ĥ_t

flax and PyTorch call `1 - u` their update gate `z` (`h' = (1 - z) ⊙ n + z ⊙ h`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import initializers
from lstm_jax.activations import sigmoid
from lstm_jax.cell import Cell, make_cell, zero_state
from lstm_jax.gradients import keep

Array = jax.Array

GRU_GATE_ORDER: tuple[str, ...] = ("r", "u", "h")
"""Order of the blocks along the last axis of `w`, `r` and `b`: reset gate, update gate,
candidate state (PyTorch's and flax's order)."""


class GRUParams(NamedTuple):
    """Kernels are `in → out`: the SPEC's `W_*` is `w[:, block]ᵀ`, `R_*` is `r[:, block]ᵀ`."""

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
    """
    return _gru_cell(GRUOptions(reset_after=bool(reset_after)))


@functools.cache
def _gru_cell(options: GRUOptions) -> Cell:
    return make_cell(
        options, functools.partial(init, options), zero_state, functools.partial(step, options)
    )


def init(
    options: GRUOptions, key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32
) -> GRUParams:
    """LeCun-normal `w`, orthogonal blocks of `r`, zero biases."""
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
    cut: Callable[[Any], Any] = keep,
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
    cut: Callable[[Any], Any] = keep,
) -> tuple[Array, Array]:
    """`(h_{t-1}, x_t) -> (h_t, h_t)`; `x: [*batch, I]`, `h: [*batch, H]`."""
    h = parts(options, params, carry, x, cut).h
    return h, h
