"""Gradient-flow diagnostics (`gradient_flow`: per-lag gradient norms for any cell, the LSTM's
cell-state Jacobian terms and their products, the sLSTM's closed-form truncated path) and
the LSTM- and sLSTM-specific views of them."""

from lstm_jax.diagnostics.gradient_flow import (
    cell_state_jacobians,
    cell_state_product_singular_values,
    jacobian_term_norms,
    per_lag_gradients,
    per_lag_norms,
    slstm_truncated_path,
    summary,
)

__all__ = [
    "cell_state_jacobians",
    "cell_state_product_singular_values",
    "jacobian_term_norms",
    "per_lag_gradients",
    "per_lag_norms",
    "slstm_truncated_path",
    "summary",
]
