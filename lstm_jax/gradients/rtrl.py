"""Real-time recurrent learning (Williams & Zipser 1989) for any cell, from its `step` alone.

With the carry flattened to a state `s_t` of size S (every leaf of the carry, per sequence) and
the params to `θ` of size P, RTRL carries the influence matrix `M_t = ds_t/dθ` forward::

    J_t = ∂s_t/∂s_{t-1}          (S × S, the step's Jacobian)
    M̄_t = ∂s_t/∂θ                (S × P, the immediate influence, s_{t-1} held fixed)
    M_t = J_t M_{t-1} + M̄_t,      M_0 = 0 (the initial carry does not depend on θ)
    dℓ_t/dθ = (∂ℓ_t/∂s_t) M_t,    ∂ℓ_t/∂s_t = (∂ℓ_t/∂y_t)(∂y_t/∂s_t)

Summed over t this is the full BPTT gradient, exactly, computed forward in time: memory
O(S·P) per sequence and time O(S²·P) per step, independent of T. `J_t` and `M̄_t` come from
`jax.jacfwd` / `jax.jacrev` of the cell's `step`, so every cell (Elman, GRU, every LSTM
variant, memory blocks, a user's cell) gets it with nothing cell-specific.

`gradient=Gradient.TRUNCATED` differentiates `truncated_step` instead: the Jacobian then keeps
only the paths the truncation keeps (for the LSTM `J_t` reduces to `diag(f_t)` on the cell
state and zero elsewhere), and the result is the truncated gradient of Hochreiter &
Schmidhuber (1997) for any cell — the general form of the eligibility traces of
`gradients.online`, at RTRL's cost.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lstm_jax.cells.protocol import Carry, Cell, Params
from lstm_jax.gradients.modes import Gradient, resolve_gradient
from lstm_jax.gradients.online_protocol import OnlineAlgorithm, OnlineStep, StepLoss

Array = jax.Array


class RTRLState(NamedTuple):
    carry: Carry  # the cell's carry, [*batch, ...] leaves
    influence: Array  # [*batch, S, P] M_t = ds_t/dθ


def rtrl(cell: Cell, gradient: Gradient | str = Gradient.FULL) -> OnlineAlgorithm:
    """Exact RTRL for `cell` (module docstring): `FULL` gives the BPTT gradient, `TRUNCATED`
    the 1997 truncated gradient of that cell."""
    step_fn = cell.step_for(resolve_gradient(gradient))

    def init(params: Params, carry: Carry) -> RTRLState:
        batch_shape = _batch_shape(cell, carry)
        state_size = ravel_pytree(_first_example(carry, batch_shape))[0].size
        param_size = ravel_pytree(params)[0].size
        dtype = ravel_pytree(params)[0].dtype
        influence = jnp.zeros((*batch_shape, state_size, param_size), dtype)
        return RTRLState(carry, influence)

    def step(
        params: Params, state: RTRLState, x: Array, loss: StepLoss
    ) -> tuple[RTRLState, OnlineStep]:
        theta, unravel_params = ravel_pytree(params)
        batch_shape = _batch_shape(cell, state.carry)
        count = math.prod(batch_shape)
        carries = jax.tree.map(
            lambda a: a.reshape(count, *a.shape[len(batch_shape) :]), state.carry
        )
        unravel_carry = ravel_pytree(_first_example(carries, (count,)))[1]

        def one(s: Array, theta: Array, x: Array) -> Array:  # s_t of one sequence, flat
            return ravel_pytree(step_fn(unravel_params(theta), unravel_carry(s), x)[0])[0]

        def advance(s, influence, x):
            jac = jax.jacfwd(one, argnums=0)(s, theta, x)  # J_t [S, S]
            immediate = jax.jacrev(one, argnums=1)(s, theta, x)  # M̄_t [S, P]
            return one(s, theta, x), jac @ influence + immediate

        flat = jax.vmap(lambda c: ravel_pytree(c)[0])(carries)  # [N, S]
        influence = state.influence.reshape(count, *state.influence.shape[-2:])
        xs = x.reshape(count, x.shape[-1])
        flat, influence = jax.vmap(advance)(flat, influence, xs)
        carry = jax.tree.map(
            lambda a: a.reshape(*batch_shape, *a.shape[1:]), jax.vmap(unravel_carry)(flat)
        )

        # ∂ℓ_t/∂s_t through y_t = output(carry_t), one sequence at a time
        def output_of(flat_s):
            return cell.output(jax.vmap(unravel_carry)(flat_s))

        output, pullback = jax.vjp(output_of, flat)
        value, dy = jax.value_and_grad(loss)(output.reshape(*batch_shape, output.shape[-1]))
        (ds,) = pullback(dy.reshape(output.shape))  # [N, S]
        grads = unravel_params(jnp.einsum("ns,nsp->p", ds, influence))
        new = RTRLState(carry, influence.reshape(state.influence.shape))
        return new, OnlineStep(value, output.reshape(*batch_shape, -1), grads)

    return OnlineAlgorithm(init, step, lambda state: state.carry)


def _batch_shape(cell: Cell, carry: Carry) -> tuple[int, ...]:
    """The carry's leading (batch) shape: the output `[*batch, H]` minus its last axis."""
    return tuple(cell.output(carry).shape[:-1])


def _first_example(carry: Carry, batch_shape: tuple[int, ...]) -> Any:
    """One sequence's carry (the leaves without their batch axes), for its flat layout."""
    return jax.tree.map(lambda a: a[(0,) * len(batch_shape)] if batch_shape else a, carry)
