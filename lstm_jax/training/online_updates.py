"""Online learning in the trainer (`model.gradient: online`): SGD applied while the stream runs,
from any online gradient algorithm (`training.online_algorithm`, a name of
`online.registry.ONLINE_ALGORITHMS`; default the 1997 eligibility traces, the way
Hochreiter & Schmidhuber (1997) and Gers et al. (2000) trained).

Each batch is a `[T, B, ...]` chunk of B streams (or of B sequences). At every step t the
algorithm's state moves on and the step's loss adds its `dℓ_t/dθ` to a pending sum; the
readout's own gradient is local in time and exact. Every `update_every` steps (1: after every
symbol) the pending sum is applied through the optimiser, inside the one jit-compiled scan over
the chunk. The algorithm's state (carry, traces or influence matrix), the pending sum and the
feedback matrix travel from chunk to chunk in `TrainState.carries` (and so into checkpoints);
memory is independent of the stream length. When the weights move during a sequence each term
is computed with the weights of its step (real-time recurrent learning's approximation).

`training.feedback: random` (random e-prop, RFLO as Murray states it): the error reaches the
recurrent layer through a fixed random matrix `B` (`online.eligibility.feedback_readout`)
drawn once from the seed, instead of the readout's transpose.

`training.reset_on_error` (Gers et al. 2000): a training stream ends at its first wrong
prediction; the net is reset (the algorithm's per-stream state re-initialised: carry, traces,
influence; UORO's key runs on) and learning resumes where the task marks the start of a
new episode (`Batch.starts`: the next string of a Reber stream).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lstm_jax.cells.protocol import Cell
from lstm_jax.online.eligibility import feedback_readout, random_feedback
from lstm_jax.online.protocol import OnlineAlgorithm
from lstm_jax.training import model

Array = jax.Array
FEEDBACK = ("symmetric", "random")  # training.feedback


class OnlineCarries(NamedTuple):
    """What online learning carries from chunk to chunk (`TrainState.carries`)."""

    state: Any  # the algorithm's state for B streams (its carry, traces, influence...)
    pending: model.ModelParams  # dℓ/dθ summed since the last update
    count: Array  # [] int32, steps since the last update
    waiting: Array  # [B] bool: after an error, no learning until the next episode starts
    feedback: Array | None  # [O, H] the fixed random feedback matrix; None: symmetric


def init_carries(
    algorithm: OnlineAlgorithm,
    cell: Cell,
    params: model.ModelParams,
    batch_size: int,
    feedback: str,
    key: Array,
) -> OnlineCarries:
    """Fresh carries for B streams: the algorithm's initial state from a zero carry, nothing
    pending, and `B` drawn from `key` when `feedback == "random"`."""
    (layer,), readout = params
    hidden = cell.sizes(layer)[1]
    carry = cell.initial_carry((batch_size,), hidden, layer.w.dtype)
    matrix = None
    if feedback == "random":
        matrix = random_feedback(key, hidden, readout.w.shape[1], readout.w.dtype)
    return OnlineCarries(
        algorithm.init(layer, carry),
        jax.tree.map(jnp.zeros_like, params),
        jnp.zeros((), jnp.int32),
        jnp.zeros((batch_size,), bool),
        matrix,
    )


def make_train_step(
    algorithm: OnlineAlgorithm,
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
    squash = model.OUTPUTS[output]

    def step_loss(readout_fn, y, target, weight):
        return loss_fn(squash(readout_fn(y))[None], target[None], weight[None])

    def apply(params, opt_state, pending):
        updates, opt_state = optimizer.update(pending, opt_state, params)
        return (
            optax.apply_updates(params, updates),
            opt_state,
            jax.tree.map(jnp.zeros_like, pending),
        )

    def train_step(train_state, batch, key=None):
        del key  # the trainer's dropout key: online learning has no dropout (validation)
        carries: OnlineCarries = train_state.carries
        (layer,), _ = train_state.params
        hidden = cell.sizes(layer)[1]
        carry0 = cell.initial_carry(carries.waiting.shape, hidden, layer.w.dtype)
        fresh = algorithm.init(layer, carry0)
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
            (layer,), readout = params
            to_layer = feedback_readout(readout.w, readout.b, carries.feedback)
            state, out = algorithm.step(
                layer, state, x, lambda y: step_loss(to_layer, y, target, weight)
            )
            y = jax.lax.stop_gradient(out.output)
            d_readout = jax.grad(lambda r: step_loss(lambda y: y @ r.w + r.b, y, target, weight))(
                readout
            )
            grads = model.ModelParams(rnn=(out.grads,), readout=d_readout)
            pending = jax.tree.map(jnp.add, pending, grads)
            total = (
                total[0] + out.loss.astype(total[0].dtype),
                jax.tree.map(jnp.add, total[1], grads),
            )
            if step_correct is not None:
                prediction = squash(y @ readout.w + readout.b)
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

        zero = jax.tree.map(jnp.zeros_like, carries.pending)
        loop = (
            train_state.params,
            train_state.opt_state,
            carries.state,
            carries.pending,
            carries.count,
            carries.waiting,
            (jnp.zeros((), layer.w.dtype), zero),
            jnp.zeros((), jnp.int32),
        )
        xs = (batch.inputs, batch.targets, batch.mask, resets, starts)
        (params, opt_state, state, pending, count, waiting, total, errors), _ = jax.lax.scan(
            body, loop, xs, length=steps
        )
        new = train_state._replace(
            params=params,
            opt_state=opt_state,
            carries=OnlineCarries(state, pending, count % update_every, waiting, carries.feedback),
        )
        stats = {"loss": total[0], "grad_norm": optax.tree.norm(total[1]), "errors": errors}
        return new, stats

    return train_step


def _where(flags: Array, fresh: Any, state: Any) -> Any:
    """`fresh` in the streams where `flags [B]` is set, `state` elsewhere. Only the per-stream
    leaves (floating, leading axis B) are reset; the others — a SnAp mask, UORO's key — are
    shared by the streams and run on."""

    def pick(a, b):
        if not jnp.issubdtype(a.dtype, jnp.floating) or a.ndim == 0 or a.shape[0] != len(flags):
            return b
        return jnp.where(flags.reshape(flags.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, fresh, state)
