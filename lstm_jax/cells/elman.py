"""The Elman RNN and its derivation::

    h_t = tanh(W x_t + R h_{t-1} + b)                               (forward)
    ∂h_t/∂h_{t-1} = diag(1 - h_t²) R                                (one-step Jacobian)
    δh̄_t = δh_t ⊙ (1 - h_t²),   δh_{t-1} = Rᵀ δh̄_t                  (backward)
    δW = Σ_t δh̄_t ⊗ x_t,   δR = Σ_t δh̄_t ⊗ h_{t-1},   δb = Σ_t δh̄_t

Under `Gradient.TRUNCATED` nothing survives the cut (`h_{t-1}` only enters the nonlinear
pre-activation): `δh_{t-1} = 0`, the one-step gradient. Kernels are stored `in → out`, so the
equations' `W` is `wᵀ` and `R` is `rᵀ`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import initializers
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
from lstm_jax.gradients.modes import Gradient, keep, resolve_gradient

Array = jax.Array


class ElmanParams(NamedTuple):
    """Kernels are `in → out`: the equations' `W` is `wᵀ` and `R` is `rᵀ`."""

    w: Array  # [I, H]
    r: Array  # [H, H]
    b: Array  # [H]


@dataclasses.dataclass(frozen=True)
class ElmanOptions:
    """recurrent_scale: `R` is initialised as `recurrent_scale` × an orthogonal matrix, so all its
    singular values equal the scale: above 1 the gradient can explode, below 1 it vanishes at
    least geometrically (Pascanu et al. 2013)."""

    recurrent_scale: float = 1.0


def rnn(*, recurrent_scale: float = 1.0) -> Cell:
    """An Elman RNN `Cell` with tanh units. The carry is `h: [*batch, H]`; `y_t = h_t`."""
    if not recurrent_scale > 0:
        raise ValueError(f"recurrent_scale must be > 0, got {recurrent_scale!r}")
    return _rnn_cell(ElmanOptions(recurrent_scale=float(recurrent_scale)))


@functools.cache
def _rnn_cell(options: ElmanOptions) -> Cell:
    derivation = Derivation(kernel_project, forward, delta, grads, kernel_input_grad)
    return cell_from_step(
        options, functools.partial(init, options), zero_state, step, derivation=derivation
    )


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
    params: ElmanParams, carry: Array, x: Array, cut: Callable[[Any], Any] = keep
) -> tuple[Array, Array]:
    """`h_t = tanh(x_t @ w + b + cut(h_{t-1}) @ r)`; returns `(h_t, h_t)`."""
    h = jnp.tanh(x @ params.w + params.b + cut(carry) @ params.r)
    return h, h


# ----------------------------------------------------------------------------------------------
# Derivation (the module docstring's equations)


def forward(params: ElmanParams, h_prev: Array, xw: Array) -> tuple[Array, Array, None]:
    """The step from `xw = x_t @ w`: `(h_t, row = h_t, no extra)`."""
    h = jnp.tanh(xw + params.b + h_prev @ params.r)
    return h, h, None


def delta(
    params: ElmanParams,
    h_prev: Array,
    h: Array,
    row: Array,
    extra: None,
    dh: Array,
    dy: Array,
    mode: Gradient,
) -> tuple[Array, Array, None]:
    """`(δh_{t-1}, δh̄_t, None)` with `δh̄_t = (δh_t + dy_t) ⊙ (1 - h_t²)`."""
    d_pre = (dh + dy) * (1 - h**2)
    dh_prev = d_pre @ params.r.T if mode is Gradient.FULL else jnp.zeros_like(h_prev)
    return dh_prev, d_pre, None


def grads(
    params: ElmanParams, x: Array, h_prev: Array, h: Array, d_pre: Array, extra: None
) -> ElmanParams:
    """`δW = Σ x ⊗ δh̄`, `δR = Σ h_{t-1} ⊗ δh̄`, `δb = Σ δh̄` over every leading axis."""
    return ElmanParams(w=outer_sum(x, d_pre), r=outer_sum(h_prev, d_pre), b=sum_leading(d_pre))


def jacobian(params: ElmanParams, h: Array, gradient: Gradient | str = Gradient.FULL) -> Array:
    """`∂h_t/∂h_{t-1} = diag(1 - h_t²) R`, `[*batch, H, H]`, from `h = h_t`
    (`J[..., a, b] = ∂h_t[a] / ∂h_{t-1}[b]`). Zero under `Gradient.TRUNCATED`."""
    jac = (1 - h**2)[..., :, None] * params.r.T
    return jac if resolve_gradient(gradient) is Gradient.FULL else jnp.zeros_like(jac)
