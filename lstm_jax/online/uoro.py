"""Unbiased Online Recurrent Optimization (Tallec & Ollivier 2018) for any cell.

UORO replaces RTRL's influence matrix `M_t = ds_t/dθ` (`online.rtrl`) by a rank-one
estimate `s̃_t θ̃_tᵀ`, updated with fresh random signs `ν ∈ {±1}^S` at every step::

    s̃_t = ρ₀ J_t s̃_{t-1} + ρ₁ ν,        θ̃_t = θ̃_{t-1} / ρ₀ + (νᵀ M̄_t) / ρ₁
    ρ₀ = √((‖θ̃_{t-1}‖ + ε) / (‖J_t s̃_{t-1}‖ + ε)),   ρ₁ = √((‖νᵀ M̄_t‖ + ε) / (‖ν‖ + ε))
    dℓ_t/dθ ≈ (∂ℓ_t/∂s_t · s̃_t) θ̃_t

`J_t s̃` is one forward-mode product and `νᵀ M̄_t` one reverse-mode product of the cell's
step, so a step costs a few forward passes and memory is O(S + P): no Jacobian is formed.
Unbiased: if `E[s̃_{t-1} θ̃_{t-1}ᵀ] = M_{t-1}`, then `E[s̃_t θ̃_tᵀ] = J_t M_{t-1} + E[ν νᵀ] M̄_t
= M_t`, because `E[ν νᵀ] = I` and the cross terms are odd in ν (ρ₁ is even in ν). The ρ's
balance the two factors' norms, which is what keeps the variance bounded (their §3). ε is
their numerical stabiliser (`EPSILON`): at the start `s̃ = θ̃ = 0`, and without it `ρ₀` would
be 0/0. Each sequence of a batch draws its own ν; the key lives in the state, shared by the
sequences (a reset of some of them keeps it running).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells.protocol import Carry, Cell, Params
from lstm_jax.online.protocol import OnlineAlgorithm, OnlineStep, StepLoss, reset_fields
from lstm_jax.online.rtrl import flatten

Array = jax.Array
EPSILON = 1e-7  # Tallec & Ollivier's ε in the ρ's (module docstring)


class UOROState(NamedTuple):
    carry: Carry  # the cell's carry, [*batch, ...] leaves
    s_tilde: Array  # [*batch, S]
    theta_tilde: Array  # [*batch, P]
    key: Array  # [2] uint32, the raw data of the PRNG key of the next step's signs


def uoro(cell: Cell, key: Array) -> OnlineAlgorithm:
    """UORO for `cell` (module docstring): an unbiased estimate of the full gradient, its signs
    drawn from `key`.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> from lstm_jax.online.protocol import accumulate
    >>> cell = lstm_jax.rnn()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> xs, targets = jnp.ones((6, 2, 3)), jnp.zeros((6, 2, 4))
    >>> out = accumulate(uoro(cell, jax.random.key(1)), params, xs, targets,
    ...                  lambda y, t: jnp.sum((y - t) ** 2), cell.initial_carry((2,), 4))
    >>> out.grads.w.shape, out.state.theta_tilde.shape  # P = 3·4 + 4·4 + 4
    ((3, 4), (2, 32))
    """
    step_fn = cell.step  # FULL: UORO estimates the exact gradient

    def init(params: Params, carry: Carry) -> UOROState:
        flat = flatten(cell, step_fn, params, carry)
        s_tilde = jnp.zeros(flat.states.shape, flat.theta.dtype)
        theta_tilde = jnp.zeros((flat.states.shape[0], flat.theta.size), flat.theta.dtype)
        # raw key data: a plain array, so the state serialises into checkpoints
        data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        return UOROState(carry, flat.batched(s_tilde), flat.batched(theta_tilde), data)

    def step(
        params: Params, state: UOROState, x: Array, loss: StepLoss
    ) -> tuple[UOROState, OnlineStep]:
        flat = flatten(cell, step_fn, params, state.carry)
        key, draw = jax.random.split(jax.random.wrap_key_data(state.key))
        count, size = flat.states.shape
        signs = jax.random.rademacher(draw, (count, size), flat.theta.dtype)

        def advance(s, s_tilde, theta_tilde, x, nu):
            new, j_s = jax.jvp(lambda s: flat.next_state(s, flat.theta, x), (s,), (s_tilde,))
            nu_m = jax.vjp(lambda th: flat.next_state(s, th, x), flat.theta)[1](nu)[0]
            rho0 = jnp.sqrt(
                (jnp.linalg.norm(theta_tilde) + EPSILON) / (jnp.linalg.norm(j_s) + EPSILON)
            )
            rho1 = jnp.sqrt((jnp.linalg.norm(nu_m) + EPSILON) / (jnp.linalg.norm(nu) + EPSILON))
            return new, rho0 * j_s + rho1 * nu, theta_tilde / rho0 + nu_m / rho1

        s_tilde = state.s_tilde.reshape(count, size)
        theta_tilde = state.theta_tilde.reshape(count, -1)
        states, s_tilde, theta_tilde = jax.vmap(advance)(
            flat.states, s_tilde, theta_tilde, flat.inputs(x), signs
        )
        value, output, ds = flat.loss_grad(cell, states, loss)
        grads = flat.unravel_params(jnp.einsum("n,np->p", jnp.sum(ds * s_tilde, -1), theta_tilde))
        new = UOROState(
            flat.carry(states),
            flat.batched(s_tilde),
            flat.batched(theta_tilde),
            jax.random.key_data(key),
        )
        return new, OnlineStep(value, output, grads)

    reset = reset_fields("carry", "s_tilde", "theta_tilde")  # the key runs on
    return OnlineAlgorithm(init, step, lambda state: state.carry, reset)
