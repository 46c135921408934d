"""Named squashing functions with their derivatives (the analytic code needs both).

Cells store activation *names* so that their options stay hashable and printable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Activation(NamedTuple):
    """fn(x) and its derivative d fn / dx, elementwise: `grad` takes the pre-activation x,
    `grad_out` the output y = fn(x) (σ' = y(1 - y), tanh' = 1 - y²: the backward passes use
    it, so they need no transcendental function)."""

    fn: Callable[[Array], Array]
    grad: Callable[[Array], Array]
    grad_out: Callable[[Array], Array]


def _sigmoid_grad(x: Array) -> Array:
    s = jax.nn.sigmoid(x)
    return s * (1 - s)


def _tanh_grad(x: Array) -> Array:
    return 1 - jnp.tanh(x) ** 2


def _scaled_sigmoid(scale: float) -> Activation:
    """`scale · σ(x) - scale / 2`; with `s = σ(x) = y / scale + 1/2` the derivative is
    `scale · s (1 - s)`."""

    def grad_out(y: Array) -> Array:
        s = y / scale + 0.5
        return scale * s * (1 - s)

    return Activation(
        lambda x: scale * jax.nn.sigmoid(x) - scale / 2,
        lambda x: scale * _sigmoid_grad(x),
        grad_out,
    )


sigmoid = Activation(jax.nn.sigmoid, _sigmoid_grad, lambda y: y * (1 - y))

ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(jnp.tanh, _tanh_grad, lambda y: 1 - y**2),
    "identity": Activation(lambda x: x, jnp.ones_like, jnp.ones_like),
    # Hochreiter & Schmidhuber 1997: cell input g(x) = 4σ(x) - 2 ∈ [-2, 2] ...
    "sigmoid_pm2": _scaled_sigmoid(4.0),
    # ... and cell output h(x) = 2σ(x) - 1 ∈ [-1, 1].
    "sigmoid_pm1": _scaled_sigmoid(2.0),
}


def activation(name: str, argument: str) -> Activation:
    """Looks up an activation by name; the error names the argument and the valid choices."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"{argument} must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None
