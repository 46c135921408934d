"""The LSTM with every Greff et al. (2015) variant as an option of one implementation.

`options` holds its static structure and the named variants, `step` the forward equations, and
`derivation` the hand-derived backward pass and Jacobians. `lstm(...)` builds the `Cell`.
"""

from __future__ import annotations

import functools
from typing import Any

from lstm_jax.cells.lstm import derivation, step
from lstm_jax.cells.lstm.options import LSTM_GATE_ORDER, LSTM_VARIANTS, LSTMOptions, lstm_options
from lstm_jax.cells.lstm.step import LSTMCarry, LSTMParams, LSTMParts
from lstm_jax.cells.protocol import (
    Cell,
    Derivation,
    Family,
    carry_h,
    cell_from_step,
    kernel_input_grad,
    kernel_project,
)

__all__ = [
    "FAMILY",
    "LSTM_GATE_ORDER",
    "LSTM_VARIANTS",
    "LSTMCarry",
    "LSTMOptions",
    "LSTMParams",
    "LSTMParts",
    "derivation",
    "lstm",
    "lstm_options",
    "options_of",
    "step",
    "trace_parts",
]


def lstm(variant: str = "standard", **overrides: Any) -> Cell:
    """An LSTM `Cell`.

    Args:
      variant: "standard" (no peepholes, as PyTorch/flax/cuDNN; the default), "vanilla" (Greff
        et al. 2015: with peepholes), "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR"
        (each vanilla with one change) or "1997" (no forget gate, no peepholes, scaled
        squashing functions), in any case ("cifg" is "CIFG").
      **overrides: any `LSTMOptions` field, e.g. `peepholes=True`, `forget_bias=0.0`,
        `chrono=100`, or the 1997 net's `block_size=2, init_range=0.1, input_bias=(-3, -6)`;
        a value of the wrong type, or a non-finite number, is a ValueError here.

    The carry is `LSTMCarry(h, c)` (plus the previous gate activations for FGR); `y_t = h_t`.

    >>> import jax, jax.numpy as jnp
    >>> cell = lstm("CIFG", forget_bias=2.0)
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> carry, y = cell.step(params, cell.initial_carry((2,), 4), jnp.ones((2, 3)))
    >>> y.shape, carry.c.shape, lstm("cifg") is lstm("CIFG")
    ((2, 4), (2, 4), True)
    """
    return _lstm_cell(lstm_options(variant, **overrides))


@functools.cache
def _lstm_cell(options: LSTMOptions) -> Cell:
    # Cached so that equal options give the same Cell, and jit caches keyed on it are reused.
    derived = Derivation(
        kernel_project,
        functools.partial(derivation.forward, options),
        functools.partial(derivation.delta, options),
        functools.partial(derivation.grads, options),
        kernel_input_grad,
    )
    return cell_from_step(
        options,
        functools.partial(step.init, options),
        functools.partial(step.initial_carry, options),
        functools.partial(step.step, options),
        output=carry_h,
        derivation=derived,
        family=FAMILY.name,
    )


FAMILY = Family("lstm", "an LSTM cell")  # what code derived for the LSTM checks


def options_of(cell: Cell, purpose: str) -> LSTMOptions:
    """The `LSTMOptions` of an LSTM cell; a TypeError naming `purpose` for any other cell.

    >>> options_of(lstm("CIFG"), "the 1997 traces").coupled
    True
    """
    return FAMILY.options(cell, purpose)


def trace_parts(cell: Cell, params: LSTMParams, xs: Any, carry: LSTMCarry) -> LSTMParts:
    """Every intermediate (`LSTMParts`, pre-activations included) of every step of an LSTM over
    time-major `xs: [T, *batch, I]`, each leaf stacked over time `[T, ...]`.

    >>> import jax, jax.numpy as jnp
    >>> cell = lstm()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> trace_parts(cell, params, jnp.ones((5, 2, 3)), cell.initial_carry((2,), 4)).f.shape
    (5, 2, 4)
    """
    return derivation.gate_trace(options_of(cell, "trace_parts"), params, xs, carry)[1]
