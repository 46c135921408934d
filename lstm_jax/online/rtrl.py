"""Real-time recurrent learning (Williams & Zipser 1989) for any cell, from its `step` alone,
and SnAp-n (Menick et al. 2021), RTRL with the influence matrix kept on a sparsity pattern.

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
`online.traces`, at RTRL's cost.

**SnAp-n** keeps `M_t = P_n ⊙ (J_t M_{t-1} + M̄_t)`, where the mask `P_n` holds the (state
unit, parameter) pairs through which the parameter can reach the unit within n steps: `P_1` is
the pattern of `M̄_t`, `P_{k+1} = P_k ∨ (pattern(J_t) P_k)`. The patterns are structural: they
are read once, in `init`, from `M̄` and `J` at a random point near the given params, carry and
input, where no entry vanishes by accident. SnAp-n equals RTRL when `P_n` is full (n steps
connect every unit to every parameter) or when the dropped entries of `M_t` stay zero (SnAp-1
with a diagonal Jacobian). Here the mask is applied to a dense `M_t`: the algorithm's result,
not its memory saving.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lstm_jax.cells.protocol import Carry, Cell, Params
from lstm_jax.modes import Gradient, resolve_gradient
from lstm_jax.online.protocol import OnlineAlgorithm, OnlineStep, StepLoss, reset_fields

Array = jax.Array


class RTRLState(NamedTuple):
    carry: Carry  # the cell's carry, [*batch, ...] leaves
    influence: Array  # [*batch, S, P] M_t = ds_t/dθ
    mask: Array | None  # [S, P] bool, SnAp's P_n; None for exact RTRL


def rtrl(cell: Cell, gradient: Gradient | str = Gradient.FULL) -> OnlineAlgorithm:
    """Exact RTRL for `cell` (module docstring): `FULL` gives the BPTT gradient, `TRUNCATED`
    the 1997 truncated gradient of that cell.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> from lstm_jax.online.protocol import accumulate
    >>> cell = lstm_jax.lstm()
    >>> params = cell.init(jax.random.key(0), 2, 3)
    >>> xs, targets = jnp.ones((4, 2)), jnp.zeros((4, 3))
    >>> def loss(y, target):
    ...     return jnp.sum((y - target) ** 2)
    >>> out = accumulate(rtrl(cell), params, xs, targets, loss, cell.initial_carry((), 3))
    >>> def bptt(p):
    ...     return jnp.sum((lstm_jax.unroll(cell, p, xs)[1] - targets) ** 2)
    >>> bool(jnp.allclose(out.grads.w, jax.grad(bptt)(params).w, atol=1e-5))
    True
    """
    return _influence_algorithm(cell, resolve_gradient(gradient), None)


def snap(cell: Cell, n: int, gradient: Gradient | str = Gradient.FULL) -> OnlineAlgorithm:
    """SnAp-n (Menick et al. 2021; module docstring): RTRL on the n-step sparsity pattern.

    >>> import jax, lstm_jax
    >>> cell = lstm_jax.rnn()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> state = snap(cell, 1).init(params, cell.initial_carry((2,), 4))
    >>> int(state.mask.sum())  # P_1: each of the 4 units reaches its own 3 + 4 + 1 weights
    32
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"SnAp-n needs an integer n >= 1, got {n!r}")
    return _influence_algorithm(cell, resolve_gradient(gradient), n)


class Flat(NamedTuple):
    """A cell's step on flat per-sequence vectors: `next_state(s [S], θ [P], x [I]) -> s' [S]`,
    one sequence's state after one step."""

    batch_shape: tuple[int, ...]
    states: Array  # [N, S], N = prod(batch_shape) (1 for one unbatched sequence)
    theta: Array  # [P]
    next_state: Callable[[Array, Array, Array], Array]
    unravel_params: Callable[[Array], Params]
    unravel_carry: Callable[[Array], Carry]  # one sequence's carry from its [S]

    def inputs(self, x: Array) -> Array:
        """`x [*batch, I] -> [N, I]`."""
        return x.reshape(-1, x.shape[-1])

    def carry(self, states: Array) -> Carry:
        """`[N, S] ->` the carry with `[*batch, ...]` leaves."""
        carry = jax.vmap(self.unravel_carry)(states)
        return jax.tree.map(lambda a: a.reshape(*self.batch_shape, *a.shape[1:]), carry)

    def batched(self, a: Array) -> Array:
        """`[N, ...] -> [*batch, ...]`."""
        return a.reshape(*self.batch_shape, *a.shape[1:])

    def loss_grad(self, cell: Cell, states: Array, loss: StepLoss) -> tuple[Array, Array, Array]:
        """`(ℓ_t, y_t [*batch, H], ∂ℓ_t/∂s_t [N, S])`, through `y_t = cell.output(carry_t)`."""
        output, pullback = jax.vjp(lambda s: cell.output(jax.vmap(self.unravel_carry)(s)), states)
        value, dy = jax.value_and_grad(loss)(self.batched(output))
        return value, self.batched(output), pullback(dy.reshape(output.shape))[0]


def flatten(cell: Cell, step_fn: Callable, params: Params, carry: Carry) -> Flat:
    """`step_fn` (the cell's `step` or `truncated_step`) on flat vectors (`Flat`)."""
    theta, unravel_params = ravel_pytree(params)
    batch_shape = tuple(cell.output(carry).shape[:-1])
    count, leading = math.prod(batch_shape), len(batch_shape)
    carries = jax.tree.map(lambda a: a.reshape(count, *a.shape[leading:]), carry)
    unravel_carry = ravel_pytree(jax.tree.map(lambda a: a[0], carries))[1]
    states = jax.vmap(lambda c: ravel_pytree(c)[0])(carries)

    def next_state(s: Array, theta: Array, x: Array) -> Array:
        return ravel_pytree(step_fn(unravel_params(theta), unravel_carry(s), x)[0])[0]

    return Flat(batch_shape, states, theta, next_state, unravel_params, unravel_carry)


def _influence_algorithm(cell: Cell, mode: Gradient, n: int | None) -> OnlineAlgorithm:
    step_fn = cell.step_for(mode)

    def init(params: Params, carry: Carry) -> RTRLState:
        flat = flatten(cell, step_fn, params, carry)
        shape = (*flat.batch_shape, flat.states.shape[-1], flat.theta.size)
        mask = None if n is None else _snap_mask(cell, flat, n)
        return RTRLState(carry, jnp.zeros(shape, flat.theta.dtype), mask)

    def step(
        params: Params, state: RTRLState, x: Array, loss: StepLoss
    ) -> tuple[RTRLState, OnlineStep]:
        flat = flatten(cell, step_fn, params, state.carry)

        def advance(s, influence, x):
            jac = jax.jacfwd(flat.next_state, argnums=0)(s, flat.theta, x)  # J_t [S, S]
            immediate = jax.jacrev(flat.next_state, argnums=1)(s, flat.theta, x)  # M̄_t [S, P]
            influence = jac @ influence + immediate
            if state.mask is not None:
                influence = jnp.where(state.mask, influence, 0.0)
            return flat.next_state(s, flat.theta, x), influence

        influence = state.influence.reshape(-1, *state.influence.shape[-2:])
        states, influence = jax.vmap(advance)(flat.states, influence, flat.inputs(x))
        value, output, ds = flat.loss_grad(cell, states, loss)
        grads = flat.unravel_params(jnp.einsum("ns,nsp->p", ds, influence))
        new = RTRLState(flat.carry(states), flat.batched(influence), state.mask)
        return new, OnlineStep(value, output, grads)

    # the mask is structural, shared by every sequence: a reset keeps it
    reset = reset_fields("carry", "influence")
    return OnlineAlgorithm(init, step, lambda state: state.carry, reset)


def _snap_mask(cell: Cell, flat: Flat, n: int) -> Array:
    """`P_n` [S, P] from the patterns of `M̄` and `J` at a random point (module docstring)."""
    keys = jax.random.split(jax.random.key(0), 3)
    size = cell.sizes(flat.unravel_params(flat.theta))[0]
    dtype = flat.theta.dtype
    s = flat.states[0] + 0.5 * jax.random.normal(keys[0], flat.states.shape[-1:], dtype)
    theta = flat.theta + 0.5 * jax.random.normal(keys[1], flat.theta.shape, dtype)
    x = jax.random.normal(keys[2], (size,), flat.theta.dtype)
    immediate = jax.jacrev(flat.next_state, argnums=1)(s, theta, x) != 0
    reach = (jax.jacfwd(flat.next_state, argnums=0)(s, theta, x) != 0).astype(jnp.float32)
    mask = immediate
    for _ in range(n - 1):
        mask = mask | ((reach @ mask.astype(jnp.float32)) > 0)
    return mask
