"""Any number of leading batch axes for the framework wrappers: flax's `nn.RNN` accepts
`[*batch, T, I]`, the driver one batch axis; the wrappers flatten the batch axes around
`driver.stacked` and restore them on the outputs and final carries."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax.driver.layers import stacked

Array = jax.Array


def stacked_any_batch(
    cell: Any,
    params: Any,
    xs: Array,
    carries: Any,
    lengths: Array | None,
    *,
    time_major: bool,
    **kwargs: Any,
) -> tuple[tuple[Any, ...], Array]:
    """`driver.stacked` over `xs: [*batch, T, I]` (or `[T, *batch, I]` when `time_major`), with
    `carries` leaves `[*batch, ...]` and `lengths: [*batch]`; outputs keep the batch axes."""
    ndim = getattr(xs, "ndim", 0)  # below 2: the driver's own error names the problem
    batch = tuple(xs.shape[1:-1] if time_major else xs.shape[:-2]) if ndim >= 2 else ()
    if len(batch) <= 1:  # what the driver takes as it is
        return stacked(cell, params, xs, carries, lengths=lengths, time_major=time_major, **kwargs)
    size = math.prod(batch)
    if time_major:
        flat_xs = xs.reshape(xs.shape[0], size, xs.shape[-1])
    else:
        flat_xs = xs.reshape(size, *xs.shape[-2:])

    def flatten(leaf: Array) -> Array:
        return leaf.reshape(size, *leaf.shape[len(batch) :])

    def restore(leaf: Array) -> Array:
        return leaf.reshape(*batch, *leaf.shape[1:])

    flat_carries = None if carries is None else jax.tree.map(flatten, carries)
    flat_lengths = None if lengths is None else jnp.reshape(lengths, (size,))
    finals, ys = stacked(
        cell, params, flat_xs, flat_carries, lengths=flat_lengths, time_major=time_major, **kwargs
    )
    ys = ys.reshape(ys.shape[0], *batch, ys.shape[-1]) if time_major else restore(ys)
    return jax.tree.map(restore, finals), ys
