"""The linear readout put on top of a cell: the online algorithms take its gradient locally in
time, and the trained sequence model (`training.model`) ends with it."""

from __future__ import annotations

from typing import NamedTuple

import jax

Array = jax.Array


class Readout(NamedTuple):
    """A linear readout `prediction_t = y_t @ w + b`.

    >>> import jax.numpy as jnp
    >>> Readout(w=jnp.ones((3, 2)), b=jnp.zeros(2)).w.shape
    (3, 2)
    """

    w: Array  # [H, O]
    b: Array  # [O]
