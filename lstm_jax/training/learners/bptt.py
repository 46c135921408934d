"""Backpropagation through time (`training.learner: bptt`, the default): one update per batch
from the gradient of the batch's loss, full (`model.gradient: full`), through the cell state
only (`truncated`, Hochreiter & Schmidhuber 1997), or cut every `model.window` steps
(windowed truncated BPTT).

A stateful task (a stream cut into batches) hands each batch's final carries to the next as
`learner_state`, under `stop_gradient`: no error crosses a batch boundary. With
`training.omega.weight > 0` the loss carries Pascanu et al.'s (2013) Ω on the states of the one
layer, `L + α Ω` (`backward.regularizers.omega`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from lstm_jax.backward.regularizers import omega
from lstm_jax.driver.scan import resolve_impl
from lstm_jax.training import model
from lstm_jax.training.learners.protocol import Learner, Setup, StepFn, TrainState
from lstm_jax.training.schema import Config, ConfigError, Gradient, OmegaForm, OnlineConfig
from lstm_jax.training.tasks import Batch

Array = jax.Array


def validate(setup: Setup) -> None:
    """The unroll's impl applies to this cell, gradient and window; `training.online` is left
    alone (it belongs to the online learner); Ω only where it is defined."""
    net, training = setup.config.model, setup.config.training
    if training.online != OnlineConfig():
        raise ConfigError(
            "training.online applies to training.learner=online; the learner is "
            f"{training.learner!r}"
        )
    try:  # the sequence lengths are checked at run time
        resolve_impl(net.impl, setup.cell, window=net.window, gradient=net.gradient)
    except ValueError as err:
        raise ConfigError(f"model.impl: {err}") from None
    if training.omega.weight:
        _validate_omega(setup)


def _validate_omega(setup: Setup) -> None:
    """Ω is defined on one layer whose carry is one array, independent sequences, full BPTT;
    its released form on a cell with a Derivation."""
    net, form = setup.config.model, setup.config.training.omega.form
    needs = {
        "model.num_layers": (net.num_layers, 1),
        "model.gradient": (net.gradient.value, Gradient.FULL.value),
        "model.window": (net.window, None),
        "a task of independent sequences (stateful)": (setup.task.stateful, False),
    }
    for key, (value, needed) in needs.items():
        if value != needed:
            raise ConfigError(f"training.omega needs {key}={needed}, got {value}")
    carry = setup.cell.initial_carry((1,), 2)
    if not isinstance(carry, jax.Array):
        raise ConfigError(
            f"training.omega needs a cell whose carry is one array (rnn, gru); model.cell="
            f"{net.cell!r} carries a {type(carry).__name__}"
        )
    if form is OmegaForm.RELEASED and setup.cell.derivation is None:
        raise ConfigError(
            f"training.omega.form=released needs a cell with a Derivation; model.cell="
            f"{net.cell!r} has none"
        )


def init(setup: Setup, params: model.ModelParams, key: Array) -> Any:
    """Zero carries per layer for a stateful task's B streams; None for independent sequences."""
    del key
    if not setup.task.stateful:
        return None
    shape, hidden = (setup.config.training.batch_size,), setup.config.model.hidden_size
    return tuple(setup.cell.initial_carry(shape, hidden) for _ in params.rnn)


def loss_terms(setup: Setup, params: model.ModelParams, batch: Batch, carries: Any, key: Any):
    """`(L + α Ω, (final carries, outputs, L, Ω))` of one batch from `carries`."""
    net, weight = setup.config.model, setup.config.training.omega.weight
    finals, outputs = model.apply(
        setup.cell,
        params,
        batch.inputs,
        carries,
        net.output,
        lengths=batch.lengths,
        resets=batch.resets,
        dropout=net.dropout,
        input_dropout=net.input_dropout,
        key=key,
        options=net.unroll_options(),
    )
    loss = setup.loss(outputs, batch.targets, batch.mask)
    penalty = jnp.zeros((), loss.dtype)
    if weight:
        penalty = _omega(setup, params, batch)
    return loss + weight * penalty, (finals, outputs, loss, penalty)


def _omega(setup: Setup, params: model.ModelParams, batch: Batch) -> Array:
    """Ω on the states of the one layer, through the readout and the task's loss."""
    (layer,), readout = params
    squash = model.OUTPUTS[setup.config.model.output]

    def loss_of_states(states: Array) -> Array:
        return setup.loss(squash(states @ readout.w + readout.b), batch.targets, batch.mask)

    form = setup.config.training.omega.form
    return omega(setup.cell, layer, batch.inputs, loss_of_states, batch.lengths, form=form)


def step(setup: Setup) -> StepFn:
    """One optimiser update from the batch's gradient (see the module docstring)."""
    weighted = bool(setup.config.training.omega.weight)

    def train_step(state: TrainState, batch: Batch, key: Array | None = None):
        carries = jax.lax.stop_gradient(state.learner_state)  # no error across batches
        (_, (finals, outputs, loss, penalty)), grads = jax.value_and_grad(
            lambda p: loss_terms(setup, p, batch, carries, key), has_aux=True
        )(state.params)
        updates, opt_state = setup.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = TrainState(params, opt_state, finals if setup.task.stateful else None)
        stats = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        if weighted:  # Pascanu et al.'s regulariser, before its weight
            stats["omega"] = penalty
        if setup.keep_outputs:
            stats["outputs"] = outputs
        return new, stats

    return train_step


def describe(config: Config) -> str:
    """ "full", "truncated", "full, window 10"."""
    net = config.model
    return net.gradient.value + (f", window {net.window}" if net.window else "")


LEARNER = Learner(validate=validate, init=init, step=step, describe=describe)
