"""Eligibility-trace algorithms that keep only each unit's own dynamics: e-prop (Bellec et al.
2020) for any cell, RFLO (Murray 2019; `online.rflo`, derived for the leaky Elman RNN), and the
random feedback both may use.

Both drop from RTRL's Jacobian `J_t = ∂s_t/∂s_{t-1}` (`online.rtrl`) every path through the
recurrent weights — the other units' outputs `h_{t-1}` are treated as inputs — and keep the
unit's own, linear state dynamics. That is the Jacobian of the cell's `truncated_step`
(`modes`): `diag(f_t)` on the LSTM cell state (the constant error carousel), the leak
`(1 - α) I` of a leaky RNN, `diag(1 - u_t)` for the GRU, nothing for a plain Elman RNN. It is
block-diagonal per unit, so the influence matrix keeps the sparsity of the immediate influence
`M̄_t` (SnAp-1's pattern) and the traces are one per weight::

    e-prop   ε_t = J_t^unit ε_{t-1} + M̄_t,        dℓ_t/dθ ≈ L_t ε_t,   L_t = ∂ℓ_t/∂s_t
    RFLO     P_t = (1 - α) P_{t-1} + α φ'(a_t) ⊗ [x_t, h_{t-1}, 1]        (leaky RNN)

(Bellec et al. eq. 13-14: for the LSTM `ε_t = f_t ε_{t-1} + ∂c_t/∂θ|local`, the 1997 trace of
`online.traces.traces_1997`; Murray eq. 14-16.) e-prop here is the generic form, for any
cell: SnAp-1 on the truncated Jacobian, which this structure makes exact (tests pin e-prop =
truncated RTRL for every cell, and = the 1997 traces for the LSTM without peepholes — with
peepholes the truncation also cuts the unit's own `c_{t-1} → ī_t, f̄_t` paths, which Bellec et
al.'s peephole-free LSTM does not meet). RFLO (`online.rflo`) is the dedicated O(H·(I + H))
form for the leaky Elman RNN; it equals e-prop there, by a separate derivation.

The learning signal `L_t = Σ_k B_jk (ŷ_t^k − y*_t^k)` uses `B` = the readout's transpose
(symmetric feedback, the exact `∂ℓ_t/∂h_t`) or a fixed random matrix (random e-prop; RFLO as
Murray states it; Lillicrap et al. 2016's feedback alignment). That is a property of the
readout, not of the trace: `feedback_readout` builds a readout whose backward pass sends the
error through `B`, and the algorithms take the loss as any other.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_jax.cells.protocol import Cell, sum_leading
from lstm_jax.modes import Gradient
from lstm_jax.online.protocol import OnlineAlgorithm
from lstm_jax.online.rtrl import snap

Array = jax.Array


def eprop(cell: Cell) -> OnlineAlgorithm:
    """e-prop (Bellec et al. 2020) for any cell (module docstring): SnAp-1 on the Jacobian of
    the cell's `truncated_step`. Pair it with `feedback_readout` for random e-prop.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> from lstm_jax.online.protocol import accumulate
    >>> cell = lstm_jax.gru()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> xs, targets = jnp.ones((6, 2, 3)), jnp.zeros((6, 2, 4))
    >>> out = accumulate(eprop(cell), params, xs, targets, lambda y, t: jnp.sum((y - t) ** 2),
    ...                  cell.initial_carry((2,), 4))
    >>> out.grads.r.shape
    (4, 12)
    """
    return snap(cell, 1, Gradient.TRUNCATED)


def feedback_readout(w: Array, b: Array, feedback: Array | None):
    """The readout `y ↦ y @ w + b` (`w: [H, O]`, `b: [O]`) whose backward pass sends the error
    to `y` through `feedback: [O, H]` instead of `wᵀ` (None: the exact transpose, symmetric
    feedback). The gradients of `w` and `b` are exact either way."""
    if feedback is None:
        return lambda y: y @ w + b
    if feedback.shape != (w.shape[1], w.shape[0]):
        raise ValueError(
            f"feedback must have shape [O, H] = {(w.shape[1], w.shape[0])} for a readout "
            f"w: [H, O] = {tuple(w.shape)}, got {tuple(feedback.shape)}"
        )

    return lambda y: _feedback_readout(y, w, b, feedback)


@jax.custom_vjp
def _feedback_readout(y: Array, w: Array, b: Array, feedback: Array) -> Array:
    return y @ w + b


def _feedback_forward(y, w, b, feedback):
    return y @ w + b, (y, w, b, feedback)


def _feedback_backward(residual, d_out):
    y, w, b, feedback = residual
    d_w = y.reshape(-1, y.shape[-1]).T @ d_out.reshape(-1, d_out.shape[-1])
    # B is fixed: it receives no gradient (feedback alignment does not learn it)
    return (
        (d_out @ feedback).astype(y.dtype),
        d_w.astype(w.dtype),
        sum_leading(d_out).astype(b.dtype),
        jnp.zeros_like(feedback),
    )


_feedback_readout.defvjp(_feedback_forward, _feedback_backward)


def random_feedback(key: Array, hidden_size: int, output_size: int, dtype=jnp.float32) -> Array:
    """A fixed random feedback matrix `B: [O, H]`, entries N(0, 1/H): the scale of a readout's
    transpose at LeCun initialisation (Lillicrap et al. 2016 and Murray 2019 draw B like the
    forward weights)."""
    return jax.random.normal(key, (output_size, hidden_size), dtype) / jnp.sqrt(hidden_size)
