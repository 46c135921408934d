"""lstm_jax: recurrent networks in JAX, and the gradients that flow through them.

Cells are NamedTuples of pure functions (`Cell`) that carry their own derivation, unrolled by one
`lax.scan` driver (`unroll`), with full BPTT, the original truncated LSTM gradient, and windowed
truncated BPTT. The layers, bottom up: `gradients.modes` → `cells` → `gradients.analytic` /
`gradients.fused` → `driver` → `gradients.online`, `diagnostics`, `nn` → `training`.
"""

from lstm_jax import diagnostics
from lstm_jax.cells import (
    GRU_GATE_ORDER,
    LSTM_GATE_ORDER,
    LSTM_VARIANTS,
    Cell,
    Derivation,
    ElmanOptions,
    ElmanParams,
    GRUOptions,
    GRUParams,
    LSTMCarry,
    LSTMOptions,
    LSTMParams,
    gru,
    lstm_options,
    mingru,
    minlstm,
    register_cell,
    rnn,
)
from lstm_jax.cells.lstm import lstm
from lstm_jax.cells.mlstm import mlstm
from lstm_jax.cells.slstm import slstm
from lstm_jax.driver import Impl, Readout, bidirectional, init_stacked, stacked, unroll
from lstm_jax.gradients import Gradient, analytic, cut_gate_recurrence, cut_window, fused, online

__all__ = [
    "GRU_GATE_ORDER",
    "LSTM_GATE_ORDER",
    "LSTM_VARIANTS",
    "Cell",
    "Derivation",
    "ElmanOptions",
    "ElmanParams",
    "GRUOptions",
    "GRUParams",
    "Gradient",
    "Impl",
    "LSTMCarry",
    "LSTMOptions",
    "LSTMParams",
    "Readout",
    "analytic",
    "bidirectional",
    "cut_gate_recurrence",
    "cut_window",
    "diagnostics",
    "fused",
    "gru",
    "init_stacked",
    "lstm",
    "lstm_options",
    "mingru",
    "minlstm",
    "mlstm",
    "online",
    "register_cell",
    "rnn",
    "slstm",
    "stacked",
    "unroll",
]
