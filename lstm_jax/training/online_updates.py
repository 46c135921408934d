"""Online learning in the trainer (`model.gradient: online`): SGD applied while the stream runs,
from the eligibility traces of the 1997 algorithm (`lstm_jax.gradients.online`), the way
Hochreiter & Schmidhuber (1997) and Gers et al. (2000) trained.

Each batch is a `[T, B, ...]` chunk of B streams (or of B sequences). At every step t the traces
move on and the step's loss adds its contribution to the gradient; every `update_every` steps
(1: after every symbol) the summed contribution is applied through the optimiser, inside the
one jit-compiled scan over the chunk. The LSTM carry, the traces and the partial sum travel
from chunk to chunk in `TrainState.carries` (and so into checkpoints); memory is independent
of the stream length. The gradient the traces give is the TRUNCATED one, with the weights of
the step that computed each term (real-time recurrent learning's approximation when the
weights move during the sequence).

`training.reset_on_error` (Gers et al. 2000): a training stream ends at its first wrong
prediction; the net is reset (carry and traces zeroed) and learning resumes where the task
marks the start of a new episode (`Batch.starts`: the next string of a Reber stream).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lstm_jax.cells import lstm as lstm_lib
from lstm_jax.cells.protocol import Cell
from lstm_jax.gradients import online
from lstm_jax.training import model

Array = jax.Array


class OnlineCarries(NamedTuple):
    """What online learning carries from chunk to chunk (`TrainState.carries`)."""

    state: online.OnlineState  # LSTM carry and eligibility traces, [B, ...]
    pending: dict[str, Any]  # contributions summed since the last update
    count: Array  # [] int32, steps since the last update
    waiting: Array  # [B] bool: after an error, no learning until the next episode starts


def init_carries(cell: Cell, params: model.ModelParams, batch_size: int) -> OnlineCarries:
    """Fresh carries for B streams: zero carry and traces, nothing pending."""
    options = lstm_lib.options_of(cell, "model.gradient=online")
    (layer,), readout = params
    input_size, hidden_size = cell.sizes(layer)
    carry = cell.initial_carry((batch_size,), hidden_size, layer.w.dtype)
    state = online.init_state(options, carry, input_size)
    x = jnp.zeros((batch_size, input_size), layer.w.dtype)
    shape = jax.eval_shape(
        lambda: online.step(options, layer, readout, state, x, None, lambda y, _: y.sum())[1]
    )
    pending = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shape)
    return OnlineCarries(state, pending, jnp.zeros((), jnp.int32), jnp.zeros((batch_size,), bool))


def make_train_step(
    cell: Cell,
    optimizer: optax.GradientTransformation,
    loss_fn: Callable[[Array, Array, Array], Array],
    output: str,
    update_every: int,
    stateful: bool,
    step_correct: Callable[[Array, Array], Array] | None,
) -> Callable:
    """`train_step(state, batch) -> (state, stats)` for online learning (see the module
    docstring). `step_correct(outputs [B, O], targets [B, O]) -> [B] bool` enables the
    reset on error. Stats: the chunk's summed loss, the norm of its summed gradient, and
    `errors`, the wrong predictions among the steps that learned."""
    options = lstm_lib.options_of(cell, "model.gradient=online")
    squash = model.OUTPUTS[output]

    def step_loss(prediction, target_and_weight):
        target, weight = target_and_weight
        return loss_fn(squash(prediction)[None], target[None], weight[None])

    def apply(params, opt_state, pending):
        cell_grads, readout_grads = online.to_gradients(options, params.rnn[0], pending)
        grads = model.ModelParams(rnn=(cell_grads,), readout=readout_grads)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (
            optax.apply_updates(params, updates),
            opt_state,
            jax.tree.map(jnp.zeros_like, pending),
        )

    def train_step(train_state, batch):
        carries: OnlineCarries = train_state.carries
        fresh = online.init_state(
            options,
            cell.initial_carry(carries.waiting.shape, carries.state.carry.h.shape[-1]),
            batch.inputs.shape[-1],
        )
        steps = batch.inputs.shape[0]
        resets = batch.resets if batch.resets is not None else jnp.zeros(batch.mask.shape, bool)
        if not stateful:  # independent sequences: every batch starts from a fresh net
            resets = resets.at[0].set(True)
        starts = batch.starts if batch.starts is not None else jnp.zeros(batch.mask.shape, bool)

        def body(loop, inputs):
            params, opt_state, state, pending, count, waiting, total, errors = loop
            x, target, mask, reset, start = inputs
            restart = start & waiting  # a new episode after an error: from a reset net
            waiting = waiting & ~start
            state = _where(reset | restart, fresh, state)
            weight = mask * ~waiting
            state, contribution = online.step(
                options, params.rnn[0], params.readout, state, x, (target, weight), step_loss
            )
            pending = jax.tree.map(jnp.add, pending, contribution)
            total = jax.tree.map(jnp.add, total, contribution)
            if step_correct is not None:
                prediction = squash(state.carry.h @ params.readout.w + params.readout.b)
                wrong = (weight > 0) & ~step_correct(prediction, target)
                errors = errors + jnp.sum(wrong)
                waiting = waiting | wrong  # the stream ends; the net restarts at the next start
            count = count + 1
            params, opt_state, pending = jax.lax.cond(
                count % update_every == 0,
                lambda a: apply(*a),
                lambda a: a,
                (params, opt_state, pending),
            )
            return (params, opt_state, state, pending, count, waiting, total, errors), None

        total = jax.tree.map(jnp.zeros_like, carries.pending)
        loop = (
            train_state.params,
            train_state.opt_state,
            carries.state,
            carries.pending,
            carries.count,
            carries.waiting,
            total,
            jnp.zeros((), jnp.int32),
        )
        xs = (batch.inputs, batch.targets, batch.mask, resets, starts)
        (params, opt_state, state, pending, count, waiting, total, errors), _ = jax.lax.scan(
            body, loop, xs, length=steps
        )
        cell_grads, readout_grads = online.to_gradients(options, params.rnn[0], total)
        grad_norm = optax.tree.norm(model.ModelParams(rnn=(cell_grads,), readout=readout_grads))
        new = train_state._replace(
            params=params,
            opt_state=opt_state,
            carries=OnlineCarries(state, pending, count % update_every, waiting),
        )
        return new, {"loss": total["loss"], "grad_norm": grad_norm, "errors": errors}

    return train_step


def _where(flags: Array, fresh: Any, state: Any) -> Any:
    """`fresh` in the streams where `flags [B]` is set, `state` elsewhere."""

    def pick(a, b):
        return jnp.where(flags.reshape(flags.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, fresh, state)
