"""What a run builds from its config: the task, the cell, the optimiser, the learner and the
jit-compiled step and prediction functions (`build`), the state of a fresh run (`init_state`)
and the test metrics of a set of params (`score`).

Every check that needs the built task or cell runs here, in the component that owns the
section (`model.validate`, `stopping.validate`, the learner's `validate`), before anything is
traced. With several devices the batch axis is sharded over a `jax.sharding.Mesh` and the
params replicated: JAX's own SPMD partitioner inserts the gradient all-reduce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lstm_jax.cells.registry import build_cell
from lstm_jax.training import model, stopping
from lstm_jax.training.learners import Learner, Setup, StepFn, TrainState, get_learner
from lstm_jax.training.optimizers import make_optimizer
from lstm_jax.training.run_log import check_tensorboard
from lstm_jax.training.schema import Config, ConfigError
from lstm_jax.training.sharding import shard_batch
from lstm_jax.training.tasks import Batch, make_task


class Experiment(NamedTuple):
    """Everything a run derives from its config."""

    config: Config
    setup: Setup
    learner: Learner
    train_step: StepFn  # jit-compiled
    predict: Callable[[model.ModelParams, Batch], jax.Array]  # jit: outputs [T, B, O]
    mesh: Mesh | None

    @property
    def task(self) -> Any:
        return self.setup.task

    @property
    def cell(self) -> Any:
        return self.setup.cell

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return self.setup.optimizer


def build(config: Config) -> Experiment:
    """Builds task, cell, optimiser and learner, checks the config against them, and compiles
    nothing yet: the step and prediction functions are `jax.jit`-wrapped.

    >>> from lstm_jax.training.cli import resolve_config
    >>> from lstm_jax.training.config import load
    >>> build(load(resolve_config("quickstart"), "tiny")).learner is get_learner("bptt")
    True
    """
    learner = get_learner(config.training.learner)
    setup = _setup(config)
    model.validate(config, setup.task)
    stopping.validate(config, setup.task)
    check_tensorboard(config.training.tensorboard)
    learner.validate(setup)
    mesh = _mesh(config)
    everywhere = None if mesh is None else NamedSharding(mesh, P())
    step = _replicated(learner.step(setup), everywhere)

    def predict(params: model.ModelParams, batch: Batch) -> jax.Array:
        # `impl` left at "auto": with no gradient to take, the scan's O(T) memory beats a
        # parallel form's O(T²) on long test sequences (the mLSTM at T = 256, B = 1024).
        _, outputs = model.apply(
            setup.cell,
            params,
            batch.inputs,
            None,
            config.model.output,
            lengths=batch.lengths,
            resets=batch.resets,
        )
        return outputs if mesh is None else jax.lax.with_sharding_constraint(outputs, everywhere)

    return Experiment(config, setup, learner, jax.jit(step), jax.jit(predict), mesh)


def _setup(config: Config) -> Setup:
    """The task and cell (their own options checked by their builders), the optimiser, the
    loss, and whether the stopping rule scores training outputs."""
    try:
        task = make_task(config.task.name, **dict(config.task.options))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"task: {err}") from err
    net = config.model
    try:
        cell = build_cell(net.cell, net.variant, net.options)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from err
    keep_outputs = stopping.rule_for(config) is not None
    return Setup(config, task, cell, make_optimizer(config), model.LOSSES[task.loss], keep_outputs)


def _mesh(config: Config) -> Mesh | None:
    """A mesh over every process's devices when there are several; None with one."""
    if jax.device_count() == 1:
        return None
    for key in ("batch_size", "eval_size"):
        if getattr(config.training, key) % jax.device_count():
            raise ConfigError(
                f"training.{key}={getattr(config.training, key)} must be divisible by the "
                f"{jax.device_count()} devices the batch is sharded over"
            )
    return Mesh(np.array(jax.devices()), ("data",))


def _replicated(step: StepFn, everywhere: NamedSharding | None) -> StepFn:
    """`step` with its statistics gathered onto every device: the host reads them, and with
    several processes only a fully replicated array is readable by each."""
    if everywhere is None:
        return step

    def gathered(state: TrainState, batch: Batch, key: jax.Array | None = None):
        state, stats = step(state, batch, key)
        return state, jax.lax.with_sharding_constraint(stats, everywhere)

    return gathered


def dropout_key(seed: int, step: int) -> jax.Array:
    """The dropout masks' key of training step `step` (1-based): a function of `(seed, step)`
    like the data, so a resumed run draws the masks an uninterrupted one would.

    >>> dropout_key(0, 1).shape
    ()
    """
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 3), step)


def init_state(exp: Experiment) -> TrainState:
    """The state of a fresh run: params from the seed, the optimiser's and the learner's state."""
    config = exp.config
    params = model.init(
        exp.cell,
        jax.random.key(config.training.seed),
        exp.task.input_size,
        config.model.hidden_size,
        exp.task.output_size,
        config.model.num_layers,
        config.model.readout_range,
        config.model.readout_std,
    )
    key = jax.random.fold_in(jax.random.key(config.training.seed), 2)
    learner_state = exp.learner.init(exp.setup, params, key)
    return TrainState(params, exp.optimizer.init(params), learner_state)


def score(exp: Experiment, params: model.ModelParams, test: Batch) -> dict[str, float]:
    """The test metrics of `params`: the loss and the task's own metrics."""
    outputs = exp.predict(params, shard_batch(exp, test))[: test.inputs.shape[0]]  # unpad
    loss = model.LOSSES[exp.task.loss](outputs, test.targets, test.mask)
    return {"loss": float(loss), **exp.task.metrics(np.asarray(outputs), test)}
