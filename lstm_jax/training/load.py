"""A finished (or checkpointed) run's trained model, ready to use: `load_run`.

The trainer keeps a run as `config.yaml` plus Orbax checkpoints of its whole training state;
`load_run` rebuilds the model the config describes (`experiment.build`), restores the newest
checkpoint into it and hands back the params with a `predict` that applies cell and readout
exactly as the trainer's evaluation does. Reading never changes the run directory.
"""

from __future__ import annotations

import functools
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
    checkpoint is readable. A run whose optimiser or learner state this code no longer
    matches still gives its params (`_restore_params`).

    >>> from lstm_jax.training import load_run
    >>> run = load_run("runs/quickstart")  # doctest: +SKIP
    >>> test = run.task.test_set(run.config.training.seed, 8)  # doctest: +SKIP
    >>> run.predict(test.inputs, test.lengths).shape  # doctest: +SKIP
    (33, 8, 1)
    """
    from lstm_jax.training.experiment import build, init_state

    path = Path(run_dir)
    config = load(path / "config.yaml")
    exp = build(config)
    params, meta = _restore_params(path, init_state(exp))
    apply = _predictor(exp.cell, config.model.output)

    def predict(inputs: Any, lengths: Any = None, resets: Any = None) -> jax.Array:
        return apply(params, inputs, lengths, resets)

    return LoadedRun(config, exp.cell, params, predict, int(meta.get("step", 0)), exp.task, path)


def _restore_params(path: Path, template: Any) -> tuple[ModelParams, dict[str, Any]]:
    """The params and meta of the newest checkpoint in `path`. The whole training state is
    restored into `template` (a fresh run's: it fixes structure and shapes); when the rest of
    the stored state no longer matches this code's (a run from before a change to the
    optimiser's or the learner's state), the stored params alone, if they match the
    template's. Else the CheckpointError of the whole state."""
    from flax import serialization

    from lstm_jax.training import checkpoint

    try:
        state, meta = checkpoint.load(path, template)
        return state.params, meta
    except checkpoint.CheckpointError as err:
        try:
            stored, meta = checkpoint.load(path, None)
            params = serialization.from_state_dict(template.params, stored["params"])
        except (checkpoint.CheckpointError, KeyError, TypeError, ValueError):
            raise err from None
        if _shapes(params) != _shapes(template.params):
            raise err from None
        return params, meta


def _shapes(tree: Any) -> list[tuple[int, ...]]:
    import jax

    return [getattr(leaf, "shape", ()) for leaf in jax.tree.leaves(tree)]


@functools.cache
def _predictor(cell: Any, output: str) -> Callable[..., jax.Array]:
    """`jit((params, inputs, lengths, resets) -> outputs)` of `cell` under the readout's
    `output` function, as the trainer evaluates; one for every run loaded with an equal cell
    and output, so that loading many nets of one setting compiles once per input shape."""
    import jax

    from lstm_jax.training import model

    # params are an argument, not a closure: jit would embed them as constants
    return jax.jit(
        lambda params, inputs, lengths, resets: model.apply(
            cell, params, inputs, None, output, lengths=lengths, resets=resets
        )[1]
    )
