"""The gradient-flow views derived for one cell family, each reaching the cell's options
through its family's `options_of` (a TypeError for a cell of another family):

- `cell_state_jacobians` / `jacobian_term_norms`: the terms A, B, C, D (and peepholes) of the
  LSTM's `∂c_t/∂c_{t-1}` (`cells.lstm.derivation.CellStateJacobian`) along a sequence.
- `cell_state_product_singular_values`: singular values of the LSTM's
  `∂c_T/∂c_k = J_T ⋯ J_{k+1}`.
- `slstm_truncated_path`: the sLSTM's truncated gradient in closed form (the product of its
  stabilised forget factors).

The views for any cell are in `diagnostics.gradient_flow`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_jax.cells import lstm as lstm_lib
from lstm_jax.cells import slstm as slstm_lib
from lstm_jax.cells.lstm.derivation import CellStateJacobian
from lstm_jax.cells.protocol import Cell
from lstm_jax.driver import checks
from lstm_jax.modes import Gradient, resolve_gradient

Array = jax.Array


def cell_state_jacobians(
    cell: Cell,
    params: lstm_lib.LSTMParams,
    xs: Array,
    carry: lstm_lib.LSTMCarry | None = None,
    *,
    gradient: Gradient | str = Gradient.FULL,
) -> CellStateJacobian:
    """The terms of an LSTM's `∂c_t/∂c_{t-1}` for t = 1..T: each leaf `[T, *batch, H, H]`
    (`cells.lstm.derivation.cell_state_jacobians`; a TypeError for other cells).

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> cell = lstm_jax.lstm()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> cell_state_jacobians(cell, params, jnp.ones((5, 2, 3))).B.shape
    (5, 2, 4, 4)
    >>> cell_state_jacobians(lstm_jax.gru(), params, jnp.ones((5, 2, 3)))
    Traceback (most recent call last):
    TypeError: cell-state Jacobians needs an LSTM cell, got GRUOptions
    """
    options = lstm_lib.options_of(cell, "cell-state Jacobians")
    xs, carry = checks.prepare(cell, params, xs, carry)
    return lstm_lib.derivation.cell_state_jacobians(
        options, params, xs, carry, resolve_gradient(gradient)
    )


def jacobian_term_norms(
    cell: Cell,
    params: lstm_lib.LSTMParams,
    xs: Array,
    carry: lstm_lib.LSTMCarry | None = None,
    *,
    gradient: Gradient | str = Gradient.FULL,
) -> CellStateJacobian:
    """Spectral norms (largest singular values) of A, B, C, D, P at every step: `[T, *batch]`.

    The spectral norm bounds how much a term can scale an error vector in one step.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> cell = lstm_jax.lstm()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> jacobian_term_norms(cell, params, jnp.ones((5, 2, 3))).A.shape
    (5, 2)
    """
    terms = cell_state_jacobians(cell, params, xs, carry, gradient=gradient)
    return jax.tree.map(lambda m: jnp.linalg.norm(m, ord=2, axis=(-2, -1)), terms)


def cell_state_product_singular_values(
    cell: Cell,
    params: lstm_lib.LSTMParams,
    xs: Array,
    carry: lstm_lib.LSTMCarry | None = None,
    *,
    gradient: Gradient | str = Gradient.FULL,
) -> Array:
    """Singular values of `∂c_T/∂c_k = J_T ⋯ J_{k+1}` for k = 0..T-1: `[T, *batch, H]`, each
    row in descending order.

    `J_t` is `cells.lstm.derivation.cell_state_jacobian` (`o_{t-1}` held fixed): the
    cell-state chain the seeds analyse. Under TRUNCATED it is exactly `diag(f_t)`, so the
    singular values are the sorted forget-gate products `|∏_{j=k+1..T} f_j|`.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> cell = lstm_jax.lstm()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> cell_state_product_singular_values(cell, params, jnp.ones((5, 2, 3))).shape
    (5, 2, 4)
    """
    jac = cell_state_jacobians(cell, params, xs, carry, gradient=gradient).total()
    eye = jnp.broadcast_to(jnp.eye(jac.shape[-1], dtype=jac.dtype), jac.shape[1:])

    def accumulate(product: Array, jac_t: Array) -> tuple[Array, Array]:
        product = product @ jac_t  # J_T ⋯ J_{t+1} J_t: the scan runs backwards in time
        return product, product

    _, products = jax.lax.scan(accumulate, eye, jac, reverse=True)
    return jnp.linalg.svd(products, compute_uv=False)


def slstm_truncated_path(
    cell: Cell, params: slstm_lib.SLSTMParams, xs: Array, carry: slstm_lib.SLSTMCarry | None = None
) -> slstm_lib.TruncatedPath:
    """The sLSTM's truncated path from `L(h_T)` to every carry, in closed form
    (`cells.slstm.truncated_path`): under TRUNCATED, `per_lag_gradients(...).c[k]` is
    `∂L/∂h_T ⊙ path.c[k]` and `.n[k]` is `∂L/∂h_T ⊙ path.n[k]` for k < T. Leaves `[T, *batch, H]`
    (a TypeError for other cells).

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> cell = lstm_jax.slstm()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> slstm_truncated_path(cell, params, jnp.ones((5, 2, 3))).c.shape
    (5, 2, 4)
    """
    options = slstm_lib.options_of(cell, "slstm_truncated_path")
    xs, carry = checks.prepare(cell, params, xs, carry)
    return slstm_lib.truncated_path(options, params, xs, carry)
