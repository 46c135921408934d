"""The Elman RNN and its derivation, with `φ` = tanh (the default) or the logistic sigmoid, and
an optional leak `α` (the leaky RNN of Murray 2019 and Marschall et al. 2020; α = 1, the
default, is the plain Elman RNN)::

    a_t = φ(W x_t + R h_{t-1} + b),   h_t = (1 - α) h_{t-1} + α a_t      (forward)
    ∂h_t/∂h_{t-1} = (1 - α) I + α diag(φ'_t) R,   φ'_t = 1 - a_t² (tanh), a_t (1 - a_t) (sigmoid)
    δh̄_t = α δh_t ⊙ φ'_t,   δh_{t-1} = (1 - α) δh_t + Rᵀ δh̄_t         (backward)
    δW = Σ_t δh̄_t ⊗ x_t,   δR = Σ_t δh̄_t ⊗ h_{t-1},   δb = Σ_t δh̄_t

Initialisations of `R` (`ElmanOptions.recurrent_init`): orthogonal × scale (every singular
value = scale), Gaussian N(0, scale²) (Pascanu et al. 2013: "sigmoid" 0.01, "basic tanh" 0.1),
or sparse with a fixed number of nonzero incoming weights per unit, rescaled to spectral radius
= scale (Pascanu et al.'s "smart tanh": 0.95, after Sutskever et al. 2013).

Under `Gradient.TRUNCATED` only the leak survives the cut (`h_{t-1}` enters the nonlinear
pre-activation and the linear leak): `δh_{t-1} = (1 - α) δh_t`; with α = 1 nothing survives, the
one-step gradient. Kernels are stored `in → out`, so the
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
from lstm_jax.cells.activations import ACTIVATIONS, Activation, sigmoid
from lstm_jax.cells.checks import check_number, is_real
from lstm_jax.cells.protocol import (
    Cell,
    Derivation,
    Family,
    cell_from_step,
    kernel_input_grad,
    kernel_project,
    outer_sum,
    sum_leading,
    zero_state,
)
from lstm_jax.modes import Gradient, cut_nothing, resolve_gradient

Array = jax.Array


class ElmanParams(NamedTuple):
    """Kernels are `in → out`: the equations' `W` is `wᵀ` and `R` is `rᵀ`."""

    w: Array  # [I, H]
    r: Array  # [H, H]
    b: Array  # [H]


RECURRENT_INITS = ("orthogonal", "normal", "sparse")


@dataclasses.dataclass(frozen=True)
class ElmanOptions:
    """Static structure and initialisation of an Elman RNN.

    Attributes:
      recurrent_scale: with `recurrent_init="orthogonal"`, `R` = scale × an orthogonal matrix, so
        all its singular values equal the scale: above 1 the gradient can explode, below 1 it
        vanishes at least geometrically (Pascanu et al. 2013); with "normal", the standard
        deviation of `R`'s entries; with "sparse", `R`'s spectral radius.
      recurrent_init: "orthogonal" (default), "normal" or "sparse" (see the module docstring).
      activation: the units' `φ`, "tanh" (default) or "sigmoid" (Pascanu et al.'s sigmoid RNN).
      input_scale: None: LeCun-normal `w`; a number s: `w` ~ N(0, s²), as `R` in "normal".
      connections: "sparse": nonzero incoming recurrent weights per unit (15, Sutskever et al.).
      alpha: the leak α ∈ (0, 1] (Δt/τ of a leaky integrator); 1: no leak, the plain Elman RNN.
    """

    recurrent_scale: float = 1.0
    recurrent_init: str = "orthogonal"
    activation: str = "tanh"
    input_scale: float | None = None
    connections: int = 15
    alpha: float = 1.0

    def __post_init__(self) -> None:
        scale = check_number("recurrent_scale", self.recurrent_scale, positive=True)
        object.__setattr__(self, "recurrent_scale", scale)
        if self.input_scale is not None:
            scale = check_number("input_scale", self.input_scale, positive=True)
            object.__setattr__(self, "input_scale", scale)
        if self.recurrent_init not in RECURRENT_INITS:
            raise ValueError(
                f"recurrent_init must be one of {list(RECURRENT_INITS)}, got "
                f"{self.recurrent_init!r}"
            )
        if self.activation not in _UNITS:
            raise ValueError(f"activation must be 'tanh' or 'sigmoid', got {self.activation!r}")
        if isinstance(self.connections, bool) or not isinstance(self.connections, int):
            raise ValueError(f"connections must be a positive int, got {self.connections!r}")
        if self.connections < 1:
            raise ValueError(f"connections must be >= 1, got {self.connections}")
        if not is_real(self.alpha) or not 0 < self.alpha <= 1:  # NaN fails the comparison
            raise ValueError(f"alpha (the leak) must be in (0, 1], got {self.alpha!r}")
        object.__setattr__(self, "alpha", float(self.alpha))


def rnn(
    *,
    recurrent_scale: float = 1.0,
    recurrent_init: str = "orthogonal",
    activation: str = "tanh",
    input_scale: float | None = None,
    connections: int = 15,
    alpha: float = 1.0,
) -> Cell:
    """An Elman RNN `Cell` (`ElmanOptions` documents the keywords). The carry is
    `h: [*batch, H]`; `y_t = h_t`.

    Pascanu et al. (2013)'s three set-ups: `rnn(activation="sigmoid", recurrent_init="normal",
    recurrent_scale=0.01, input_scale=0.01)`, `rnn(recurrent_init="normal",
    recurrent_scale=0.1, input_scale=0.1)` and `rnn(recurrent_init="sparse",
    recurrent_scale=0.95)`. Murray's (2019) leaky RNN: `rnn(alpha=0.1)` (τ = 10 steps).

    >>> import jax, jax.numpy as jnp
    >>> cell = rnn(alpha=0.5)
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> h, y = cell.step(params, cell.initial_carry((2,), 4), jnp.ones((2, 3)))
    >>> y.shape
    (2, 4)
    """
    options = ElmanOptions(
        recurrent_scale, recurrent_init, activation, input_scale, connections, alpha
    )
    return _rnn_cell(options)


FAMILY = Family("elman", "an Elman RNN")  # what code derived for the Elman RNN checks


def options_of(cell: Cell, purpose: str) -> ElmanOptions:
    """The `ElmanOptions` of an Elman cell; a TypeError naming `purpose` for any other cell.

    >>> options_of(rnn(alpha=0.5), "RFLO").alpha
    0.5
    """
    return FAMILY.options(cell, purpose)


@functools.cache
def _rnn_cell(options: ElmanOptions) -> Cell:
    derivation = Derivation(
        kernel_project,
        functools.partial(forward, options),
        functools.partial(delta, options),
        grads,
        kernel_input_grad,
    )
    return cell_from_step(
        options,
        functools.partial(init, options),
        zero_state,
        functools.partial(step, options),
        derivation=derivation,
        family=FAMILY.name,
    )


_UNITS = {"tanh": ACTIVATIONS["tanh"], "sigmoid": sigmoid}


def unit_activation(options: ElmanOptions) -> Activation:
    """The units' `φ` (tanh or the logistic sigmoid), value and derivative.

    >>> float(unit_activation(ElmanOptions(activation="sigmoid")).fn(0.0))
    0.5
    """
    return _UNITS[options.activation]


def init(
    options: ElmanOptions,
    key: Array,
    input_size: int,
    hidden_size: int,
    dtype: Any = jnp.float32,
) -> ElmanParams:
    """`w` LeCun-normal (or N(0, input_scale²)), `r` by `recurrent_init`, zero `b`."""
    initializers.check_sizes(input_size, hidden_size)
    k_w, k_r = jax.random.split(key)
    scale = options.recurrent_scale
    if options.recurrent_init == "orthogonal":
        r = scale * initializers.recurrent_kernel(k_r, hidden_size, 1, dtype)
    elif options.recurrent_init == "normal":
        r = scale * jax.random.normal(k_r, (hidden_size, hidden_size), dtype)
    else:
        r = initializers.sparse_recurrent(k_r, hidden_size, options.connections, scale, dtype)
    w = initializers.input_kernel(k_w, input_size, hidden_size, dtype)
    if options.input_scale is not None:
        w = options.input_scale * jax.random.normal(k_w, (input_size, hidden_size), dtype)
    return ElmanParams(w=w, r=r.astype(dtype), b=jnp.zeros((hidden_size,), dtype))


def step(
    options: ElmanOptions,
    params: ElmanParams,
    carry: Array,
    x: Array,
    cut: Callable[[Any], Any] = cut_nothing,
) -> tuple[Array, Array]:
    """`h_t = (1 - α) h_{t-1} + α φ(x_t @ w + b + cut(h_{t-1}) @ r)`; returns `(h_t, h_t)`."""
    h, _, _ = forward(options, params, carry, x @ params.w, cut)
    return h, h


def _leak(options: ElmanOptions, h_prev: Array, a: Array) -> Array:
    """`(1 - α) h_{t-1} + α a_t`, and exactly `a_t` without a leak (no rounding added)."""
    if options.alpha == 1.0:
        return a
    return (1.0 - options.alpha) * h_prev + options.alpha * a


# ----------------------------------------------------------------------------------------------
# Derivation (the module docstring's equations)


def forward(
    options: ElmanOptions,
    params: ElmanParams,
    h_prev: Array,
    xw: Array,
    cut: Callable[[Any], Any] = cut_nothing,
) -> tuple[Array, Array, None]:
    """The step from `xw = x_t @ w`: `(h_t, acts = a_t, nothing saved)`, `cut` wrapping
    `h_{t-1}` where it enters the pre-activation (not the leak: it is linear)."""
    a = unit_activation(options).fn(xw + params.b + cut(h_prev) @ params.r)
    return _leak(options, h_prev, a), a, None


def delta(
    options: ElmanOptions,
    params: ElmanParams,
    h_prev: Array,
    h: Array,
    acts: Array,
    saved: None,
    dh: Array,
    dy: Array,
    mode: Gradient,
) -> tuple[Array, Array, None]:
    """`(δh_{t-1}, δh̄_t, None)` with `δh̄_t = α (δh_t + dy_t) ⊙ φ'_t` (`acts = a_t`)."""
    d_h = dh + dy
    d_pre = d_h * unit_activation(options).grad_out(acts)
    if options.alpha != 1.0:
        d_pre = options.alpha * d_pre
    dh_prev = d_pre @ params.r.T if mode is Gradient.FULL else jnp.zeros_like(h_prev)
    if options.alpha != 1.0:  # the leak is linear: it survives the truncation
        dh_prev = dh_prev + (1.0 - options.alpha) * d_h
    return dh_prev, d_pre, None


def grads(
    params: ElmanParams, x: Array, h_prev: Array, h: Array, d_pre: Array, saved: None
) -> ElmanParams:
    """`δW = Σ x ⊗ δh̄`, `δR = Σ h_{t-1} ⊗ δh̄`, `δb = Σ δh̄` over every leading axis."""
    return ElmanParams(w=outer_sum(x, d_pre), r=outer_sum(h_prev, d_pre), b=sum_leading(d_pre))


def jacobian(
    params: ElmanParams,
    h: Array,
    gradient: Gradient | str = Gradient.FULL,
    options: ElmanOptions = ElmanOptions(),
    h_prev: Array | None = None,
) -> Array:
    """`∂h_t/∂h_{t-1} = (1 - α) I + α diag(φ'_t) R`, `[*batch, H, H]`, from `h = h_t`
    (`J[..., a, b] = ∂h_t[a] / ∂h_{t-1}[b]`); with a leak (α < 1), `h_prev = h_{t-1}` is needed
    to recover `a_t`. Under `Gradient.TRUNCATED` only `(1 - α) I` remains (zero without a leak)."""
    alpha = options.alpha
    if alpha != 1.0 and h_prev is None:
        raise ValueError(f"jacobian of a leaky RNN (alpha={alpha}) needs h_prev = h_{{t-1}}")
    a = h if alpha == 1.0 else (h - (1.0 - alpha) * h_prev) / alpha
    jac = alpha * unit_activation(options).grad_out(a)[..., :, None] * params.r.T
    if resolve_gradient(gradient) is not Gradient.FULL:
        jac = jnp.zeros_like(jac)
    if alpha != 1.0:
        jac = jac + (1.0 - alpha) * jnp.eye(h.shape[-1], dtype=jac.dtype)
    return jac
