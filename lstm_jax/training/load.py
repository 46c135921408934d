"""A finished (or checkpointed) run's trained model, ready to use: `load_run`.

The trainer keeps a run as `config.yaml` plus Orbax checkpoints of its whole training state;
`load_run` rebuilds the model the config describes (`trainer.build`), restores the newest
checkpoint into it and hands back the params with a `predict` that applies cell and readout
exactly as the trainer's evaluation does. Reading never changes the run directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from lstm_jax.training.config import Config, load

if TYPE_CHECKING:
    import jax

    from lstm_jax.training.model import ModelParams
    from lstm_jax.training.tasks import Task


class LoadedRun(NamedTuple):
    """A run's trained model; `predict(inputs [T, B, I], lengths [B] | None, resets [T, B] |
    None) -> outputs [T, B, O]` (after the config's output function, as in evaluation)."""

    config: Config
    cell: Any  # the `lstm_jax.cells` cell the config names
    params: ModelParams  # `rnn` (one entry per layer) and `readout`
    predict: Callable[..., jax.Array]
    step: int  # training steps the checkpoint holds
    task: Task  # the config's task: `task.test_set(config.training.seed, n)` is its test data
    path: Path


def load_run(run_dir: str | Path) -> LoadedRun:
    """The model of the run in `run_dir` at its newest checkpoint.

    A ConfigError when `config.yaml` is missing or invalid, a CheckpointError when no
    checkpoint is readable.

    >>> from lstm_jax.training import load_run
    >>> run = load_run("runs/quickstart")  # doctest: +SKIP
    >>> test = run.task.test_set(run.config.training.seed, 8)  # doctest: +SKIP
    >>> run.predict(test.inputs, test.lengths).shape  # doctest: +SKIP
    (33, 8, 1)
    """
    import jax

    from lstm_jax.training import checkpoint, model
    from lstm_jax.training.trainer import build, init_state

    path = Path(run_dir)
    config = load(path / "config.yaml")
    exp = build(config)
    # the checkpoint holds the whole training state; its template fixes structure and shapes
    state, meta = checkpoint.load(path, init_state(exp))

    # params are an argument, not a closure: jit would embed them as constants
    apply = jax.jit(
        lambda params, inputs, lengths, resets: model.apply(
            exp.cell, params, inputs, None, config.model.output, lengths=lengths, resets=resets
        )[1]
    )

    def predict(inputs: Any, lengths: Any = None, resets: Any = None) -> jax.Array:
        return apply(state.params, inputs, lengths, resets)

    return LoadedRun(
        config, exp.cell, state.params, predict, int(meta.get("step", 0)), exp.task, path
    )
