"""Gradient-flow views for any cell: how much error reaches each step back.

- `per_lag_gradients` / `per_lag_norms`: `∂L/∂h_k` and `∂L/∂c_k` for every `k` in one backward
  pass, by adding zero probes to the carry after each step (the gradient with respect to a
  probe is the gradient with respect to that carry), for any cell and gradient mode.
- `summary`: batch means of those norms (or of `lstm_views.jacobian_term_norms`).

The views derived for one cell family (the LSTM's Jacobian terms, the sLSTM's closed-form
path) are in `diagnostics.lstm_views`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

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


def summary(norms: Any) -> dict[str, Any]:
    """Batch means of `per_lag_norms` or `jacobian_term_norms` leaves, as plain lists."""
    return {
        name: jnp.mean(value.reshape(value.shape[0], -1), axis=1).tolist()
        for name, value in norms._asdict().items()
        if value is not None
    }
