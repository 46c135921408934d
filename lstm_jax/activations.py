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
    """fn(x) and its derivative d fn / dx, both elementwise on the pre-activation x."""

    fn: Callable[[Array], Array]
    grad: Callable[[Array], Array]


def _sigmoid_grad(x: Array) -> Array:
    s = jax.nn.sigmoid(x)
    return s * (1 - s)


def _tanh_grad(x: Array) -> Array:
    return 1 - jnp.tanh(x) ** 2


sigmoid = Activation(jax.nn.sigmoid, _sigmoid_grad)

ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(jnp.tanh, _tanh_grad),
    "identity": Activation(lambda x: x, jnp.ones_like),
    # Hochreiter & Schmidhuber 1997: cell input g(x) = 4σ(x) - 2 ∈ [-2, 2] ...
    "sigmoid_pm2": Activation(lambda x: 4 * jax.nn.sigmoid(x) - 2, lambda x: 4 * _sigmoid_grad(x)),
    # ... and cell output h(x) = 2σ(x) - 1 ∈ [-1, 1].
    "sigmoid_pm1": Activation(lambda x: 2 * jax.nn.sigmoid(x) - 1, lambda x: 2 * _sigmoid_grad(x)),
}


def activation(name: str, argument: str) -> Activation:
    """Looks up an activation by name; the error names the argument and the valid choices."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"{argument} must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None
