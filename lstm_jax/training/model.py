"""A sequence model for the classic tasks: a (stacked) recurrent layer, a readout at every step
(linear, or a sigmoid output unit as in the 1997 paper), and the three losses the tasks use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lstm_jax.cells.protocol import Carry, Cell
from lstm_jax.driver.layers import init_stacked, stacked
from lstm_jax.online.readout import Readout
from lstm_jax.training.schema import Config, ConfigError, Output

Array = jax.Array


class ModelParams(NamedTuple):
    rnn: tuple[Any, ...]  # one cell-params entry per layer
    readout: Readout


OUTPUTS: dict[Output, Callable[[Array], Array]] = {
    Output.IDENTITY: lambda y: y,  # a linear readout (the losses apply softmax / sigmoid)
    Output.SIGMOID: jax.nn.sigmoid,  # the 1997 output unit, y = σ(h W + b), on squared error
}


def init(
    cell: Cell,
    key: Array,
    input_size: int,
    hidden_size: int,
    output_size: int,
    num_layers: int,
    readout_range: float | None = None,
    readout_std: float | None = None,
) -> ModelParams:
    """Cell params per layer and a readout with U(±1/√H) weights and zero bias; or with weights
    and bias U(±readout_range) (the 1997 and 2000 papers: every weight and bias U(±a)); or
    with weights N(0, readout_std²) and zero bias (Pascanu et al. 2013)."""
    if readout_range is not None and readout_std is not None:
        raise ValueError("give readout_range or readout_std, not both")
    k_rnn, k_out = jax.random.split(key)
    scale = 1.0 / hidden_size**0.5 if readout_range is None else readout_range
    if readout_std is not None:
        w = readout_std * jax.random.normal(k_out, (hidden_size, output_size))
    else:
        w = jax.random.uniform(k_out, (hidden_size, output_size), minval=-scale, maxval=scale)
    b = jnp.zeros((output_size,))
    if readout_range is not None:
        k_b = jax.random.fold_in(k_out, 1)
        b = jax.random.uniform(k_b, (output_size,), minval=-scale, maxval=scale)
    return ModelParams(
        rnn=init_stacked(cell, k_rnn, input_size, hidden_size, num_layers),
        readout=Readout(w=w, b=b),
    )


def apply(
    cell: Cell,
    params: ModelParams,
    inputs: Array,
    carries: tuple[Carry, ...] | None = None,
    output: Output | str = Output.IDENTITY,
    **layer_kwargs: Any,
) -> tuple[tuple[Carry, ...], Array]:
    """`inputs [T, B, I] -> (final carries per layer, outputs [T, B, O])`, `outputs =
    OUTPUTS[output](h W + b)`; `layer_kwargs` are `driver.stacked`'s (`options`, an
    `UnrollOptions`; `lengths`, `resets`; `dropout`, `input_dropout`, `key`)."""
    finals, hs = stacked(cell, params.rnn, inputs, carries, **layer_kwargs)
    return finals, OUTPUTS[Output(output)](hs @ params.readout.w + params.readout.b)


def validate(config: Config, task: Any) -> None:
    """The output unit suits the task: the 1997 sigmoid unit is trained on squared error, and
    a task that judges outputs in [0, 1] needs it."""
    output = config.model.output
    if output is Output.SIGMOID and task.loss != "mse":
        raise ConfigError(
            f"model.output=sigmoid (the 1997 output unit) is trained on squared error; task "
            f"{config.task.name!r} uses the {task.loss!r} loss, which takes a linear readout"
        )
    if getattr(task, "outputs", None) == "sigmoid" and output is not Output.SIGMOID:
        raise ConfigError(
            f"task.options.outputs=sigmoid judges outputs in [0, 1] (at 0.5, or by max_error): "
            f"it needs model.output=sigmoid, got model.output={output.value!r}"
        )


def _masked_mean(per_step: Array, mask: Array) -> Array:
    return jnp.sum(per_step * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def mse_loss(outputs: Array, targets: Array, mask: Array) -> Array:
    """Squared error summed over outputs, averaged over the masked steps."""
    return _masked_mean(jnp.sum((outputs - targets) ** 2, axis=-1), mask)


def softmax_loss(outputs: Array, targets: Array, mask: Array) -> Array:
    """Cross-entropy of integer class targets `[T, B]`, averaged over the masked steps (nats)."""
    return _masked_mean(optax.softmax_cross_entropy_with_integer_labels(outputs, targets), mask)


def sigmoid_loss(outputs: Array, targets: Array, mask: Array) -> Array:
    """Binary cross-entropy of multi-hot targets, summed over outputs, averaged over steps."""
    per_step = jnp.sum(optax.sigmoid_binary_cross_entropy(outputs, targets), axis=-1)
    return _masked_mean(per_step, mask)


LOSSES: dict[str, Callable[[Array, Array, Array], Array]] = {
    "mse": mse_loss,
    "softmax": softmax_loss,
    "sigmoid": sigmoid_loss,
}
