"""Cells: the protocol (`protocol.Cell`, `protocol.Derivation`) and one module per cell family,
each stating its equations and carrying its own derivation; `registry` names them for configs.
The builders are `elman.rnn`, `gru.gru`, `lstm.lstm`, and the modern cells `slstm.slstm`,
`mlstm.mlstm`, `minrnn.mingru` and `minrnn.minlstm` (the `lstm`, `slstm` and `mlstm` modules
keep their names here, so they stay reachable as `cells.lstm.step`, `cells.slstm.parts`, ...;
the builders are `lstm_jax.lstm`, `lstm_jax.slstm`, `lstm_jax.mlstm`)."""

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
from lstm_jax.cells.minrnn import MinRNNOptions, MinRNNParams, mingru, minlstm
from lstm_jax.cells.mlstm import MLSTMCarry, MLSTMOptions, MLSTMParams
from lstm_jax.cells.protocol import Cell, Derivation, cell_from_step, zero_state
from lstm_jax.cells.registry import CELLS, build_cell, register_cell
from lstm_jax.cells.slstm import SLSTMCarry, SLSTMOptions, SLSTMParams

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
    "MLSTMCarry",
    "MLSTMOptions",
    "MLSTMParams",
    "MinRNNOptions",
    "MinRNNParams",
    "SLSTMCarry",
    "SLSTMOptions",
    "SLSTMParams",
    "build_cell",
    "cell_from_step",
    "gru",
    "lstm_options",
    "mingru",
    "minlstm",
    "register_cell",
    "rnn",
    "zero_state",
]
