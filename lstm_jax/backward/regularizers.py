"""The regulariser Ω of Pascanu, Mikolov & Bengio (2013, eq. 9) against vanishing gradients.

    Ω = Σ_t Ω_t,   Ω_t = ( ‖δ_t ∂s_t/∂s_{t-1}‖ / ‖δ_t‖ - 1 )²,   δ_t = ∂E/∂s_t

`s_t` is the carry after step t (the hidden state `h_t` of an Elman RNN or a GRU), `E` the loss,
`δ_t` its total derivative through every later step, treated as a constant when Ω is
differentiated ("we consider ∂E/∂x_{k+1} as being constant"). Ω_t is zero when the step carries
the error back to step t - 1 with its norm unchanged; adding `α Ω` to the loss pushes the
Jacobians towards norm preservation along the directions the error actually takes. Pascanu et
al. write it for their pre-activation state `x_t` (`x_t = W σ(x_{t-1}) + ...`); here it is the
carry the cells hold, so the Jacobian is `diag(φ'_t) R` rather than `R diag(φ'(x_{t-1}))`. The sum
runs over t = 1..T-1 (the steps with a previous state) and is averaged over the batch; a step
whose δ_t is zero (past a sequence's length) adds nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import jax
import jax.numpy as jnp

from lstm_jax.cells.protocol import Cell, Params
from lstm_jax.modes import Gradient

Array = jax.Array

# The released code's floor on ‖δ_t‖² (its `bound`): smaller steps are left out of the mean.
_RELEASED_BOUND = 1e-20


class OmegaForm(enum.Enum):
    """Which Ω (module docstring): eq. 9 as printed, or as Pascanu et al.'s code computes it."""

    PAPER = "paper"
    RELEASED = "released"


def resolve_omega_form(form: OmegaForm | str) -> OmegaForm:
    """`form` as an `OmegaForm`; a string must be one of the values (an error lists them)."""
    if isinstance(form, OmegaForm):
        return form
    valid = [f.value for f in OmegaForm]
    if form not in valid:
        raise ValueError(f"Ω form must be one of {valid}, got {form!r}")
    return OmegaForm(form)


def omega(
    cell: Cell,
    params: Params,
    xs: Array,
    loss_of_states: Callable[[Array], Array],
    lengths: Array | None = None,
    form: OmegaForm | str = OmegaForm.PAPER,
) -> Array:
    """Ω (module docstring) for time-major `xs: [T, B, I]` from a zero carry, where
    `loss_of_states(s: [T, B, H]) -> E` is the loss as a function of the states (the readout
    and the task loss). Needs a cell whose carry is its output array (`rnn`, `gru`), and for
    `form="released"` one with a `Derivation`."""
    form = resolve_omega_form(form)
    steps, batch = xs.shape[:2]
    carry = cell.initial_carry((batch,), cell.sizes(params)[1], xs.dtype)
    if not isinstance(carry, jax.Array):
        raise TypeError(
            f"Ω needs a cell whose carry is one array (the Elman RNN, the GRU); this cell's "
            f"carry is a {type(carry).__name__}"
        )
    hidden = carry.shape[-1]
    live = None if lengths is None else jnp.arange(steps)[:, None] < jnp.asarray(lengths)[None]

    def states_with(eps: Array) -> Array:
        """The states `s_t + ε_t` (the carry frozen and the output zero past a sequence's
        length, as `unroll` does), so that `∂E/∂ε_t = ∂E/∂s_t`."""

        def body(s, inputs):
            x, e, alive = inputs
            new = cell.step(params, s, x)[0] + e
            if alive is None:
                return new, new
            new = jnp.where(alive[:, None], new, s)
            return new, jnp.where(alive[:, None], new, 0.0)

        return jax.lax.scan(body, carry, (xs, eps, live))[1]

    zeros = jnp.zeros((steps, batch, hidden), xs.dtype)
    deltas = jax.lax.stop_gradient(jax.grad(lambda e: loss_of_states(states_with(e)))(zeros))
    states = states_with(zeros)  # [T, B, H]
    if form is OmegaForm.RELEASED:
        return _released(cell, params, xs, carry, jax.lax.stop_gradient(states), deltas)

    def carried_back(s_prev: Array, x: Array, delta: Array) -> Array:  # δ_t ∂s_t/∂s_{t-1}
        _, pullback = jax.vjp(lambda s: cell.step(params, s, x)[0], s_prev)
        return pullback(delta)[0]

    back = jax.vmap(carried_back)(states[:-1], xs[1:], deltas[1:])  # t = 1..T-1
    norm_in = jnp.linalg.norm(deltas[1:], axis=-1)
    valid = norm_in > 0
    ratio = jnp.linalg.norm(back, axis=-1) / jnp.where(valid, norm_in, 1.0)
    return jnp.sum(jnp.where(valid, (ratio - 1.0) ** 2, 0.0)) / batch


def _released(
    cell: Cell, params: Params, xs: Array, carry: Array, states: Array, deltas: Array
) -> Array:
    """`OmegaForm.RELEASED` from the fixed states `[T, B, H]` and `δ` `[T, B, H]`."""
    derivation = cell.derivation
    if derivation is None:
        raise TypeError(
            "Ω in its released form needs a cell with a Derivation (its backward step from "
            "saved activations): rnn, gru"
        )
    fixed = jax.lax.stop_gradient(params)
    previous = jnp.concatenate([carry[None], states[:-1]])  # s_{t-1}, t = 0..T-1

    def carried_back(s_prev: Array, s: Array, x: Array, delta: Array) -> Array:
        _, acts, saved = derivation.forward(fixed, s_prev, derivation.project(fixed, x))
        acts, saved = jax.lax.stop_gradient((acts, saved))
        zero = jnp.zeros_like(delta)
        return derivation.delta(params, s_prev, s, acts, saved, delta, zero, Gradient.FULL)[0]

    back = jax.vmap(carried_back)(previous, states, xs, deltas)
    norm_in = jnp.sum(deltas**2, axis=-1)  # [T, B]
    valid = norm_in >= _RELEASED_BOUND
    ratio = jnp.sum(back**2, axis=-1) / jnp.where(valid, norm_in, 1.0)
    total = jnp.sum(jnp.where(valid, (ratio - 1.0) ** 2, 0.0))
    return total / jnp.maximum(jnp.sum(valid), 1)
