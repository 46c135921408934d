"""Placing a run's data on the device mesh: batches split along their batch axis, the training
state replicated (its per-sequence carries split). With one device (`exp.mesh` None) nothing
moves. With several processes every process holds the whole (identical) value, generated from
`(seed, step)`, and places only its own shards.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lstm_jax.training.tasks import Batch


def shard(exp: Any, tree: Any, batch_axis: int | None) -> Any:
    """Places `tree` on the mesh, split along `batch_axis` (or replicated when it is None)."""
    if exp.mesh is None:
        return tree

    def place(x):
        spec = [None] * np.ndim(x)
        if batch_axis is not None and np.ndim(x) > batch_axis:
            spec[batch_axis] = "data"
        # every process holds the whole (identical) value and places its own shards of it
        x = np.asarray(x)
        return jax.make_array_from_callback(
            x.shape, NamedSharding(exp.mesh, P(*spec)), lambda index: x[index]
        )

    return jax.tree.map(place, tree)


def pad_time(batch: Batch, multiple: int = 16) -> Batch:
    """Pads the time axis up to a multiple of `multiple` (mask 0, lengths unchanged), so tasks
    whose batches vary in length (Reber strings) compile a few shapes, not one per batch."""
    steps = batch.inputs.shape[0]
    extra = -steps % multiple
    if extra == 0:
        return batch

    def pad(x):
        return np.pad(x, [(0, extra)] + [(0, 0)] * (x.ndim - 1))

    return Batch(
        inputs=pad(batch.inputs),
        targets=pad(batch.targets),
        mask=pad(batch.mask),
        lengths=batch.lengths,
        resets=None if batch.resets is None else pad(batch.resets),
        starts=None if batch.starts is None else pad(batch.starts),
    )


def shard_batch(exp: Any, batch: Batch) -> Batch:
    """Time-major fields are split along axis 1, `lengths` along axis 0."""
    batch = pad_time(batch)
    return Batch(
        inputs=shard(exp, batch.inputs, 1),
        targets=shard(exp, batch.targets, 1),
        mask=shard(exp, batch.mask, 1),
        lengths=shard(exp, batch.lengths, 0),
        resets=None if batch.resets is None else shard(exp, batch.resets, 1),
        starts=None if batch.starts is None else shard(exp, batch.starts, 1),
    )


def shard_state(exp: Any, state: Any) -> Any:
    """Params and optimiser state replicated; the learner's state (a stateful task's carries)
    split along its batch axis."""
    return type(state)(
        shard(exp, state.params, None),
        shard(exp, state.opt_state, None),
        None if state.learner_state is None else shard(exp, state.learner_state, 0),
    )
