"""Online learning (`training.learner: online`): SGD applied while the stream runs, from any
online gradient algorithm (`training.online.algorithm`, a name of
`online.registry.ONLINE_ALGORITHMS`; default the 1997 eligibility traces, the way Hochreiter &
Schmidhuber (1997) and Gers et al. (2000) trained).

Each batch is a `[T, B, ...]` chunk of B streams (or of B sequences). At every step t the
algorithm's state moves on and the step's loss adds its `dℓ_t/dθ` to a pending sum; the
readout's own gradient is local in time and exact. Every `training.online.update_every` steps
(1: after every symbol) the pending sum is applied through the optimiser, inside the one
jit-compiled scan over the chunk. The algorithm's state, the pending sum and the feedback
matrix travel from chunk to chunk in `TrainState.learner_state` (and so into checkpoints);
memory is independent of the stream length. When the weights move during a sequence each term
is computed with the weights of its step (real-time recurrent learning's approximation).

`training.online.feedback: random` (random e-prop, RFLO as Murray states it): the error reaches
the recurrent layer through a fixed random matrix `B` (`online.eligibility.feedback_readout`)
drawn once from the seed, instead of the readout's transpose.

`training.online.reset_on_error` (Gers et al. 2000): a training stream ends at its first wrong
prediction; the net is reset (the algorithm re-initialises its per-stream state, its own
`reset`) and learning resumes where the task marks the start of a new episode (`Batch.starts`:
the next string of a Reber stream).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lstm_jax.online.eligibility import feedback_readout, random_feedback
from lstm_jax.online.protocol import OnlineAlgorithm
from lstm_jax.online.registry import online_algorithm
from lstm_jax.training import model
from lstm_jax.training.learners.protocol import Learner, Setup, StepFn, TrainState
from lstm_jax.training.schema import (
    Config,
    ConfigError,
    Feedback,
    OmegaConfig,
    Schedule,
    StopOn,
)
from lstm_jax.training.tasks import Batch

Array = jax.Array


class OnlineState(NamedTuple):
    """What online learning carries from chunk to chunk (`TrainState.learner_state`)."""

    algorithm: Any  # the algorithm's state for B streams (its carry, traces, influence...)
    pending: model.ModelParams  # dℓ/dθ summed since the last update
    count: Array  # [] int32, steps since the last update
    waiting: Array  # [B] bool: after an error, no learning until the next episode starts
    feedback: Array | None  # [O, H] the fixed random feedback matrix; None: symmetric


class _Loop(NamedTuple):
    """The scan's carry over the steps of one chunk."""

    params: model.ModelParams
    opt_state: Any
    algorithm: Any
    pending: model.ModelParams
    count: Array
    waiting: Array
    loss: Array  # the chunk's summed loss
    grads: model.ModelParams  # the chunk's summed gradient (its norm is logged)
    errors: Array  # wrong predictions among the steps that learned


def algorithm_of(setup: Setup) -> OnlineAlgorithm:
    """The configured algorithm; its key (UORO's signs) comes from the run's seed."""
    key = jax.random.fold_in(jax.random.key(setup.config.training.seed), 1)
    return online_algorithm(setup.config.training.online.algorithm, setup.cell, key)


def validate(setup: Setup) -> None:
    """One layer, no window, no dropout, one device, the test-set stopping rule, no Ω, a
    schedule that counts updates, an algorithm for this cell; `reset_on_error` on a task that
    judges each step."""
    net, training, name = setup.config.model, setup.config.training, setup.config.task.name
    if training.online.reset_on_error and not hasattr(setup.task, "step_correct"):
        raise ConfigError(
            f"training.online.reset_on_error needs a task that judges each step (the Reber "
            f"tasks); {name!r} does not"
        )
    needs = {
        "model.num_layers": (net.num_layers, 1),
        "model.window": (net.window, None),
        "model.dropout": (net.dropout, 0.0),
        "model.input_dropout": (net.input_dropout, 0.0),
        "training.stopping.rule": (training.stopping.rule.value, StopOn.TEST.value),
        "training.omega": (training.omega, OmegaConfig()),
        "devices": (jax.device_count(), 1),
    }
    for key, (value, needed) in needs.items():
        if value != needed:
            raise ConfigError(f"training.learner=online needs {key}={needed}, got {value}")
    if setup.config.optimizer.schedule is Schedule.COSINE:
        # Its horizon is training.steps updates, but online learning makes several per step.
        raise ConfigError(
            "optimizer.schedule=cosine decays over training.steps weight updates, but "
            "training.learner=online updates every training.online.update_every symbols; use "
            "'constant' or 'exponential' (decay_steps and warmup_steps count updates)"
        )
    try:
        algorithm_of(setup)
    except ValueError as err:
        raise ConfigError(f"training.online.algorithm: {err}") from None


def init(setup: Setup, params: model.ModelParams, key: Array) -> OnlineState:
    """Fresh state for B streams: the algorithm's initial state from a zero carry, nothing
    pending, and `B` drawn from `key` under random feedback."""
    (layer,), readout = params
    batch, hidden = setup.config.training.batch_size, setup.cell.sizes(layer)[1]
    carry = setup.cell.initial_carry((batch,), hidden, layer.w.dtype)
    matrix = None
    if setup.config.training.online.feedback is Feedback.RANDOM:
        matrix = random_feedback(key, hidden, readout.w.shape[1], readout.w.dtype)
    return OnlineState(
        algorithm_of(setup).init(layer, carry),
        jax.tree.map(jnp.zeros_like, params),
        jnp.zeros((), jnp.int32),
        jnp.zeros((batch,), bool),
        matrix,
    )


def step(setup: Setup) -> StepFn:
    """`train_step(state, batch) -> (state, stats)`; stats: the chunk's summed loss, the norm
    of its summed gradient, and `errors`, the wrong predictions among the steps that learned."""
    algorithm = algorithm_of(setup)
    body = _step_body(setup, algorithm)
    every = setup.config.training.online.update_every

    def train_step(state: TrainState, batch: Batch, key: Array | None = None):
        del key  # no dropout under online learning (validate)
        carried: OnlineState = state.learner_state
        zero = jax.tree.map(jnp.zeros_like, carried.pending)
        loop = _Loop(
            state.params, state.opt_state, carried.algorithm, carried.pending, carried.count,
            carried.waiting, jnp.zeros((), zero.readout.w.dtype), zero, jnp.zeros((), jnp.int32),
        )  # fmt: skip
        xs = (batch.inputs, batch.targets, batch.mask, *_resets_and_starts(setup, batch))
        (layer,), _ = state.params
        carry = setup.cell.initial_carry(
            carried.waiting.shape, setup.cell.sizes(layer)[1], layer.w.dtype
        )
        fresh = algorithm.init(layer, carry)  # the state a reset net starts from
        end, _ = jax.lax.scan(lambda lp, x: (body(lp, x, carried.feedback, fresh), None), loop, xs)
        learner_state = OnlineState(
            end.algorithm, end.pending, end.count % every, end.waiting, carried.feedback
        )
        stats = {"loss": end.loss, "grad_norm": optax.tree.norm(end.grads), "errors": end.errors}
        return TrainState(end.params, end.opt_state, learner_state), stats

    return train_step


def _resets_and_starts(setup: Setup, batch: Batch) -> tuple[Array, Array]:
    """`[T, B]` flags: where the net restarts (every sequence's first step when the task's
    sequences are independent), and where an episode starts (learning resumes after an error)."""
    none = jnp.zeros(batch.mask.shape, bool)
    resets = batch.resets if batch.resets is not None else none
    if not setup.task.stateful:  # independent sequences: every batch starts from a fresh net
        resets = resets.at[0].set(True)
    return resets, batch.starts if batch.starts is not None else none


def _step_body(setup: Setup, algorithm: OnlineAlgorithm):
    """`(loop, (x, target, mask, reset, start), feedback) -> loop`: one step of the stream."""
    squash = model.OUTPUTS[setup.config.model.output]
    every = setup.config.training.online.update_every
    step_correct = setup.task.step_correct if setup.config.training.online.reset_on_error else None

    def step_loss(readout_fn, y, target, weight):
        return setup.loss(squash(readout_fn(y))[None], target[None], weight[None])

    def body(loop: _Loop, inputs, feedback, fresh) -> _Loop:
        x, target, mask, reset, start = inputs
        restart = start & loop.waiting  # a new episode after an error: from a reset net
        waiting = loop.waiting & ~start
        (layer,), readout = loop.params
        state = algorithm.reset(fresh, loop.algorithm, reset | restart)
        weight = mask * ~waiting
        to_layer = feedback_readout(readout.w, readout.b, feedback)
        state, out = algorithm.step(
            layer, state, x, lambda y: step_loss(to_layer, y, target, weight)
        )
        y = jax.lax.stop_gradient(out.output)
        d_readout = jax.grad(lambda r: step_loss(lambda y: y @ r.w + r.b, y, target, weight))(
            readout
        )
        grads = model.ModelParams(rnn=(out.grads,), readout=d_readout)
        errors = loop.errors
        if step_correct is not None:
            wrong = (weight > 0) & ~step_correct(squash(y @ readout.w + readout.b), target)
            errors, waiting = errors + jnp.sum(wrong), waiting | wrong  # the stream ends
        count = loop.count + 1
        params, opt_state, pending = jax.lax.cond(
            count % every == 0,
            lambda a: _apply(setup.optimizer, *a),
            lambda a: a,
            (loop.params, loop.opt_state, jax.tree.map(jnp.add, loop.pending, grads)),
        )
        total = jax.tree.map(jnp.add, loop.grads, grads)
        loss = loop.loss + out.loss.astype(loop.loss.dtype)
        return _Loop(params, opt_state, state, pending, count, waiting, loss, total, errors)

    return body


def _apply(optimizer: optax.GradientTransformation, params, opt_state, pending):
    """The pending sum applied through the optimiser; nothing pending after."""
    updates, opt_state = optimizer.update(pending, opt_state, params)
    zero = jax.tree.map(jnp.zeros_like, pending)
    return optax.apply_updates(params, updates), opt_state, zero


def describe(config: Config) -> str:
    """ "online (traces_1997)", the algorithm named."""
    return f"online ({config.training.online.algorithm})"


LEARNER = Learner(validate=validate, init=init, step=step, describe=describe)
