"""Cells: the protocol (`protocol.Cell`, `protocol.Derivation`) and one module per cell family,
each stating its equations and carrying its own derivation; `registry` names them for configs.
The builders are `elman.rnn`, `gru.gru` and `lstm.lstm` (the `lstm` package keeps its name
here, so its modules stay reachable as `cells.lstm.step` and `cells.lstm.derivation`)."""

from lstm_jax.cells.elman import ElmanOptions, ElmanParams, rnn
from lstm_jax.cells.gru import GRU_GATE_ORDER, GRUOptions, GRUParams, gru
from lstm_jax.cells.lstm import (
    LSTM_GATE_ORDER,
    LSTM_VARIANTS,
    LSTMCarry,
    LSTMOptions,
    LSTMParams,
    lstm_options,
)
from lstm_jax.cells.protocol import Cell, Derivation, cell_from_step, zero_state
from lstm_jax.cells.registry import CELLS, build_cell, register_cell

__all__ = [
    "CELLS",
    "GRU_GATE_ORDER",
    "LSTM_GATE_ORDER",
    "LSTM_VARIANTS",
    "Cell",
    "Derivation",
    "ElmanOptions",
    "ElmanParams",
    "GRUOptions",
    "GRUParams",
    "LSTMCarry",
    "LSTMOptions",
    "LSTMParams",
    "build_cell",
    "cell_from_step",
    "gru",
    "lstm_options",
    "register_cell",
    "rnn",
    "zero_state",
]
