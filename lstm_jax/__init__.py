"""lstm_jax: recurrent networks in JAX, and the gradients that flow through them.

Cells are NamedTuples of pure functions (`Cell`) that carry their own derivation, unrolled by one
`lax.scan` driver (`unroll`), with full BPTT, the original truncated LSTM gradient, and windowed
truncated BPTT. The layers, bottom up: `modes` → `cells` → `backward.analytic` /
`backward.fused` → `driver` → `online.traces`, `diagnostics`, `nn` → `training`.
"""

from lstm_jax import diagnostics, online
from lstm_jax.backward import analytic, fused
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
from lstm_jax.driver import Impl, UnrollOptions, bidirectional, init_stacked, stacked, unroll
from lstm_jax.modes import Gradient, cut_gate_recurrence, cut_window
from lstm_jax.online import Readout

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
    "UnrollOptions",
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
