"""The learner protocol: how a training mode turns batches into updates, as three pure
functions in a NamedTuple (optax's `GradientTransformation` is the model).

A learner sees the run through a `Setup` (the config, the built task and cell, the optimiser,
the loss) and keeps whatever must travel from batch to batch in `TrainState.learner_state`:
the carries of a stateful task under BPTT, an online algorithm's state and pending gradient.
The trainer knows nothing else of it: a new training mode is one module defining a `Learner`
and one `register_learner` call (`learners.LEARNERS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from lstm_jax.cells.protocol import Cell
from lstm_jax.training.model import ModelParams
from lstm_jax.training.schema import Config
from lstm_jax.training.tasks import Batch, Task

Array = jax.Array
Loss = Callable[[Array, Array, Array], Array]  # (outputs [T, B, O], targets, mask [T, B]) -> []


class TrainState(NamedTuple):
    """What a training step reads and returns, and what a checkpoint holds."""

    params: ModelParams
    opt_state: Any  # the optimiser's state (optax)
    learner_state: Any  # the learner's own (per-layer carries, an online algorithm's state...)


class Setup(NamedTuple):
    """What a learner is built from: the run's config and what it built."""

    config: Config
    task: Task
    cell: Cell
    optimizer: optax.GradientTransformation
    loss: Loss  # the task's loss on the model's outputs
    keep_outputs: bool  # the stopping rule scores each training sequence: return `outputs`


# (state, batch, key) -> (state, stats). `key` draws dropout masks (None without dropout).
# stats: "loss" and "grad_norm" (scalars), any further scalars the learner reports (each logged
# per step under its name: "errors", "omega"), and "outputs" [T, B, O] when
# `Setup.keep_outputs`.
StepFn = Callable[[TrainState, Batch, Array | None], tuple[TrainState, dict[str, Array]]]


class Learner(NamedTuple):
    """A training mode, as pure functions of the run's `Setup`.

    validate: `(setup) -> None`; raises `ConfigError` naming the key, the value and what was
      expected when the config asks something of this mode it cannot do. Runs before
      anything is traced.
    init: `(setup, params, key) -> learner_state`, the state of a fresh run.
    step: `(setup) -> StepFn`, the update of one batch; the trainer jit-compiles it.
    describe: `(config) -> str`, how this mode takes its gradient, for `lstm-jax show`
      (default: the learner's name).

    >>> import jax.numpy as jnp
    >>> plain = Learner(validate=lambda setup: None, init=lambda setup, params, key: None,
    ...                 step=lambda setup: lambda state, batch, key: (state, {}))
    >>> plain.init(None, None, None) is None
    True
    """

    validate: Callable[[Setup], None]
    init: Callable[[Setup, ModelParams, Array], Any]
    step: Callable[[Setup], StepFn]
    describe: Callable[[Config], str] = lambda config: config.training.learner
