"""lstm_jax: recurrent networks in JAX, and the gradients that flow through them.

Cells are NamedTuples of pure functions (`Cell`), unrolled by one `lax.scan` driver (`unroll`),
with full BPTT, the original truncated LSTM gradient, and windowed truncated BPTT.
"""

from lstm_jax import analytic, diagnostics, online
from lstm_jax.cell import Cell
from lstm_jax.elman_cell import ElmanOptions, ElmanParams, rnn
from lstm_jax.gradients import Gradient, cut_gate_recurrence, cut_window
from lstm_jax.gru_cell import GRU_GATE_ORDER, GRUOptions, GRUParams, gru
from lstm_jax.lstm_cell import (
    LSTM_GATE_ORDER,
    LSTM_VARIANTS,
    LSTMCarry,
    LSTMOptions,
    LSTMParams,
    lstm,
    lstm_options,
)
from lstm_jax.scan import bidirectional, init_stacked, stacked, unroll

__all__ = [
    "GRU_GATE_ORDER",
    "LSTM_GATE_ORDER",
    "LSTM_VARIANTS",
    "Cell",
    "ElmanOptions",
    "ElmanParams",
    "GRUOptions",
    "GRUParams",
    "Gradient",
    "LSTMCarry",
    "LSTMOptions",
    "LSTMParams",
    "analytic",
    "bidirectional",
    "cut_gate_recurrence",
    "cut_window",
    "diagnostics",
    "gru",
    "init_stacked",
    "lstm",
    "lstm_options",
    "online",
    "rnn",
    "stacked",
    "unroll",
]
