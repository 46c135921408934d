"""Gradient-flow views: how much error reaches each step back, and through which paths.

- `per_lag_gradients` / `per_lag_norms`: `∂L/∂h_k` and `∂L/∂c_k` for every `k` in one backward
  pass, by adding zero probes to the carry after each step (the gradient with respect to a
  probe is the gradient with respect to that carry), for any cell and gradient mode.
- `cell_state_jacobians` / `jacobian_term_norms`: the terms A, B, C, D (and peepholes) of the
  LSTM's `∂c_t/∂c_{t-1}` (`cells.lstm.derivation.CellStateJacobian`) along a sequence.
- `cell_state_product_singular_values`: singular values of `∂c_T/∂c_k = J_T ⋯ J_{k+1}`.
- `slstm_truncated_path`: the sLSTM's truncated gradient in closed form (the product of its
  stabilised forget factors).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax.cells import lstm as lstm_lib
from lstm_jax.cells import slstm as slstm_lib
from lstm_jax.cells.lstm.derivation import CellStateJacobian
from lstm_jax.cells.protocol import Carry, Cell, Params, StepFn
from lstm_jax.driver import checks
from lstm_jax.driver.scan import scan_steps
from lstm_jax.modes import Gradient, resolve_gradient

Array = jax.Array


@functools.cache  # one wrapper per step: `scan_steps` is jitted with it as a static arg
def _probed(step: StepFn) -> StepFn:
    """A step that adds `probe_t` to the carry it hands on. The probes are zero, so the
    forward pass is unchanged, and `∂L/∂probe_t = ∂L/∂carry_t` (the carry after step t, with
    everything computed at step t itself held fixed)."""

    def probed_step(params: Params, carry: Carry, inputs: tuple[Array, Carry]):
        x, probe = inputs
        carry, y = step(params, carry, x)
        return jax.tree.map(jnp.add, carry, probe), y

    return probed_step


def per_lag_gradients(
    cell: Cell,
    params: Params,
    xs: Array,
    loss_fn: Callable[[Array], Array] = jnp.sum,
    carry: Carry | None = None,
    *,
    gradient: Gradient | str = Gradient.FULL,
) -> Carry:
    """`∂L/∂carry_k` for k = 0..T with `L = loss_fn(y_T)`, in one backward pass.

    Args:
      xs: `[T, B, I]` or `[T, I]` time-major inputs.
      loss_fn: maps the last output `y_T = cell.output(carry_T)`, `[*batch, H]`, to a scalar;
        with a sum over the batch (the default, `jnp.sum`) each sequence's gradients are its
        own.
      gradient: "full" or "truncated".

    Returns:
      A carry-shaped pytree with a leading axis of T + 1: index 0 is the initial carry, index
      k the carry after step k. For an LSTM, `.h[k] = ∂L/∂h_k` and `.c[k] = ∂L/∂c_k`, each the
      partial derivative holding the other fixed: `.c[k]` is the error the cell state carries
      back to step k (under TRUNCATED with no peepholes, `∂L/∂h_T ⊙ o_T ⊙ k'(c_T) ⊙
      ∏_{j=k+1..T} f_j` for k < T), and `.c[T]` is zero since L reads only `h_T`.
    """
    xs, carry = checks.prepare(cell, params, xs, carry)
    step = cell.step_for(resolve_gradient(gradient))
    probes = jax.tree.map(lambda c: jnp.zeros((xs.shape[0], *c.shape), c.dtype), carry)

    def loss(probes: Carry, carry: Carry) -> Array:
        final, _ = scan_steps(
            _probed(step), params, (xs, probes), carry, None, None, False, 1, False
        )
        return loss_fn(cell.output(final))  # read from the probed carry: lag 0 is ∂L/∂h_T

    d_probes, d_carry = jax.grad(loss, argnums=(0, 1))(probes, carry)
    return jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), d_carry, d_probes)


def per_lag_norms(
    cell: Cell,
    params: Params,
    xs: Array,
    loss_fn: Callable[[Array], Array] = jnp.sum,
    carry: Carry | None = None,
    *,
    gradient: Gradient | str = Gradient.FULL,
) -> Carry:
    """Euclidean norms over the hidden units of `per_lag_gradients`: `[T + 1, *batch]` leaves.
    Lag `T - k` is index `k`."""
    grads = per_lag_gradients(cell, params, xs, loss_fn, carry, gradient=gradient)
    return jax.tree.map(lambda g: jnp.linalg.norm(g, axis=-1), grads)


def cell_state_jacobians(
    cell: Cell,
    params: lstm_lib.LSTMParams,
    xs: Array,
    carry: lstm_lib.LSTMCarry | None = None,
    *,
    gradient: Gradient | str = Gradient.FULL,
) -> CellStateJacobian:
    """The terms of an LSTM's `∂c_t/∂c_{t-1}` for t = 1..T: each leaf `[T, *batch, H, H]`
    (`cells.lstm.derivation.cell_state_jacobians`; a TypeError for other cells)."""
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
    (a TypeError for other cells)."""
    options = slstm_lib.options_of(cell, "slstm_truncated_path")
    xs, carry = checks.prepare(cell, params, xs, carry)
    return slstm_lib.truncated_path(options, params, xs, carry)


def summary(norms: Any) -> dict[str, Any]:
    """Batch means of `per_lag_norms` or `jacobian_term_norms` leaves, as plain lists."""
    return {
        name: jnp.mean(value.reshape(value.shape[0], -1), axis=1).tolist()
        for name, value in norms._asdict().items()
        if value is not None
    }
