"""The hand-derived backward pass of any cell that carries a `Derivation`, as a readable
reference: one forward scan that keeps each step's residuals, one reverse scan over the cell's
step backwards (`Derivation.delta`, then the step's weight and input gradients). No autodiff
inside; the tests hold it to `jax.vjp` of the scan path (`unroll(impl="scan")`) at 1e-10 in
float64, for every cell, variant and gradient mode.

The fused unroll (`backward.fused`) runs the same derivation with the input and weight-gradient
matmuls hoisted out of its loops; this module keeps them inside, one step at a time, as the
equations read. The equations themselves live beside each cell: `cells.elman`, `cells.gru`,
`cells.lstm.derivation`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells.protocol import Carry, Cell, Derivation, Params
from lstm_jax.modes import Gradient, resolve_gradient

Array = jax.Array


class Cotangents(NamedTuple):
    """∂L/∂ of everything an unroll takes."""

    params: Params
    xs: Array  # [T, *batch, I]
    carry: Carry  # the initial carry


class Trace(NamedTuple):
    """What the forward pass keeps for the backward pass, stacked over time."""

    carries_prev: Carry  # [T, ...] the carry entering each step
    carries: Carry  # [T, ...] the carry each step hands on
    acts: Array  # [T, *batch, G] each step's activations (`Derivation.forward`)
    saved: Any  # [T, ...] what else each step saved for its backward pass, or None
    final: Carry  # the carry after the last step


def derivation_of(cell: Cell) -> Derivation:
    """`cell.derivation`, or a TypeError saying that this cell runs through the scan only."""
    if cell.derivation is None:
        raise TypeError(
            f"no analytic derivation for cells with options {type(cell.options).__name__}: "
            "this cell has no Cell.derivation; differentiate unroll(..., impl='scan') instead"
        )
    return cell.derivation


def entering_carries(carry0: Carry, after: Carry) -> Carry:
    """`[T, ...]` the carry entering each step: the one step t - 1 handed on (`after`, stacked
    over time), `carry0` at t = 0."""
    return jax.tree.map(lambda c0, seq: jnp.concatenate([c0[None], seq[:-1]]), carry0, after)


def trace(cell: Cell, params: Params, xs: Array, carry: Carry) -> Trace:
    """Runs the cell forward over time-major `xs: [T, *batch, I]` through its derivation and
    keeps, per step, the carries and the residuals its backward pass reads."""
    d = derivation_of(cell)

    def body(carry: Carry, x: Array):
        new, acts, saved = d.forward(params, carry, d.project(params, x))
        return new, (new, acts, saved)

    final, (carries, acts, saved) = jax.lax.scan(body, carry, xs)
    return Trace(entering_carries(carry, carries), carries, acts, saved, final)


def backward(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry,
    dys: Array,
    dcarry: Carry | None = None,
    gradient: Gradient | str = Gradient.FULL,
) -> Cotangents:
    """The hand-derived backward pass of `unroll(cell, params, xs, carry, gradient=...)`.

    Args:
      xs: `[T, *batch, I]` time-major inputs; carry: the initial carry.
      dys: `[T, *batch, H]`, ∂L/∂y_t for every step.
      dcarry: ∂L/∂(final carry), zeros when None.
      gradient: "full" or "truncated" (or a `Gradient`).

    Returns:
      `Cotangents(params, xs, carry)`, equal to `jax.vjp` of the unroll applied to
      `(dcarry, dys)`.
    """
    mode = resolve_gradient(gradient)
    d = derivation_of(cell)
    tr = trace(cell, params, xs, carry)
    if dcarry is None:
        dcarry = jax.tree.map(jnp.zeros_like, tr.final)

    def body(acc, inputs):
        dcarry_t, dparams = acc
        carry_prev, carry_t, acts, saved, x, dy = inputs
        dcarry_prev, dpre, dsaved = d.delta(
            params, carry_prev, carry_t, acts, saved, dcarry_t, dy, mode
        )
        dparams_t = d.grads(params, x, carry_prev, carry_t, dpre, dsaved)
        return (dcarry_prev, jax.tree.map(jnp.add, dparams, dparams_t)), d.input_grad(params, dpre)

    zeros = jax.tree.map(jnp.zeros_like, params)
    inputs = (tr.carries_prev, tr.carries, tr.acts, tr.saved, xs, dys)
    (dcarry0, dparams), dxs = jax.lax.scan(body, (dcarry, zeros), inputs, reverse=True)
    return Cotangents(params=dparams, xs=dxs, carry=dcarry0)
