"""The interface every online gradient algorithm implements, and the loop that runs one.

An online algorithm computes the gradient of `L = Σ_t ℓ_t(y_t)` forward in time, alongside the
forward pass, with a state whose size does not depend on the sequence length. Modelled on
`optax.GradientTransformation`, it is a NamedTuple of pure functions of explicit state::

    state = algorithm.init(params, carry_0)
    state, out = algorithm.step(params, state, x_t, loss_t)   # loss_t: y_t [*batch, H] -> []
    out.loss, out.output, out.grads                           # ℓ_t, y_t, this step's dℓ_t/dθ
    carry_t = algorithm.carry(state)

`grads` is the algorithm's value (exact, truncated, or an estimate) of `dℓ_t/dθ` as a pytree
shaped like the cell's params; summed over t it is the algorithm's gradient of `L`. Every
function composes with `jax.jit`, `jax.vmap` and `lax.scan` (`accumulate` runs one over a
sequence in one scan). The readout that turns `y_t` into a prediction lives inside `loss_t`:
its own gradient is local in time and the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells.protocol import Carry, Params

Array = jax.Array
StepLoss = Callable[[Array], Array]  # y_t [*batch, H] -> the step's loss, a scalar


class OnlineStep(NamedTuple):
    """What one step of an online algorithm returns beside its new state."""

    loss: Array  # [] ℓ_t
    output: Array  # [*batch, H] y_t
    grads: Params  # the algorithm's dℓ_t/dθ, shaped like the cell's params


class OnlineAlgorithm(NamedTuple):
    """An online gradient algorithm bound to one cell (module docstring).

    Attributes:
      init: `(params, carry_0) -> state`.
      step: `(params, state, x_t [*batch, I], loss_t) -> (state, OnlineStep)`.
      carry: `state -> carry_t`, the cell's carry inside the state.
    """

    init: Callable[[Params, Carry], Any]
    step: Callable[[Params, Any, Array, StepLoss], tuple[Any, OnlineStep]]
    carry: Callable[[Any], Carry]


class Accumulated(NamedTuple):
    """`accumulate`'s result: the sums over the sequence, and the final state."""

    loss: Array  # [] Σ_t ℓ_t
    grads: Params  # Σ_t dℓ_t/dθ
    state: Any  # the algorithm's state after the last step


def accumulate(
    algorithm: OnlineAlgorithm,
    params: Params,
    xs: Array,
    targets: Any,
    loss_fn: Callable[[Array, Any], Array],
    carry: Carry,
) -> Accumulated:
    """Runs `algorithm` over time-major `xs: [T, *batch, I]` from `carry` in one `lax.scan`,
    with `ℓ_t = loss_fn(y_t, target_t)`, `targets` a pytree of `[T, ...]` leaves (a weight
    inside it puts the loss at chosen steps only). Returns Σ ℓ_t, Σ dℓ_t/dθ and the state."""

    def body(loop, inputs):
        state, loss, grads = loop
        x, target = inputs
        state, out = algorithm.step(params, state, x, lambda y: loss_fn(y, target))
        return (state, loss + out.loss, jax.tree.map(jnp.add, grads, out.grads)), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    first = (algorithm.init(params, carry), jnp.zeros((), xs.dtype), zeros)
    (state, loss, grads), _ = jax.lax.scan(body, first, (xs, targets))
    return Accumulated(loss, grads, state)
