"""The Elman RNN: `h_t = tanh(W x_t + R h_{t-1} + b)` (SPEC §2)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import initializers
from lstm_jax.cell import Cell, make_cell, zero_state
from lstm_jax.gradients import keep

Array = jax.Array


class ElmanParams(NamedTuple):
    """Kernels are `in → out`: the SPEC's `W` is `wᵀ` and `R` is `rᵀ`."""

    w: Array  # [I, H]
    r: Array  # [H, H]
    b: Array  # [H]


@dataclasses.dataclass(frozen=True)
class ElmanOptions:
    """recurrent_scale: `R` is initialised as `recurrent_scale` × an orthogonal matrix, so all its
    singular values equal the scale: above 1 the gradient can explode, below 1 it vanishes at
    least geometrically (Pascanu et al. 2013, SPEC §4.5)."""

    recurrent_scale: float = 1.0


def rnn(*, recurrent_scale: float = 1.0) -> Cell:
    """An Elman RNN `Cell` with tanh units. The carry is `h: [*batch, H]`; `y_t = h_t`.

    Under `Gradient.TRUNCATED` nothing survives the cut (`h_{t-1}` only enters the nonlinear
    pre-activation), so each step's error stays in that step: the one-step gradient.
    """
    if not recurrent_scale > 0:
        raise ValueError(f"recurrent_scale must be > 0, got {recurrent_scale!r}")
    return _rnn_cell(ElmanOptions(recurrent_scale=float(recurrent_scale)))


@functools.cache
def _rnn_cell(options: ElmanOptions) -> Cell:
    return make_cell(options, functools.partial(init, options), zero_state, step)


def init(
    options: ElmanOptions,
    key: Array,
    input_size: int,
    hidden_size: int,
    dtype: Any = jnp.float32,
) -> ElmanParams:
    """LeCun-normal `w`, `recurrent_scale` × orthogonal `r`, zero `b`."""
    k_w, k_r = jax.random.split(key)
    r = options.recurrent_scale * initializers.recurrent_kernel(k_r, hidden_size, 1, dtype)
    return ElmanParams(
        w=initializers.input_kernel(k_w, input_size, hidden_size, dtype),
        r=r.astype(dtype),
        b=jnp.zeros((hidden_size,), dtype),
    )


def step(
    params: ElmanParams,
    carry: Array,
    x: Array | None,
    cut: Callable[[Any], Any] = keep,
    x_proj: Array | None = None,
) -> tuple[Array, Array]:
    """`h_t = tanh(x_t @ w + b + h_{t-1} @ r)`; returns `(h_t, h_t)`. `x_proj = x @ w + b`,
    when given, replaces `x` (the fused unroll computes it for all steps in one matmul)."""
    if x_proj is None:
        x_proj = x @ params.w + params.b
    h = jnp.tanh(x_proj + cut(carry) @ params.r)
    return h, h
