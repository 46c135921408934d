"""Gradient-flow diagnostics: per-lag gradient norms for any cell (`gradient_flow`), and the
views derived for one cell family (`lstm_views`: the LSTM's cell-state Jacobian terms and their
products, the sLSTM's closed-form truncated path)."""

from lstm_jax.diagnostics.gradient_flow import per_lag_gradients, per_lag_norms, summary
from lstm_jax.diagnostics.lstm_views import (
    cell_state_jacobians,
    cell_state_product_singular_values,
    jacobian_term_norms,
    slstm_truncated_path,
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
