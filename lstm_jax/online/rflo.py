"""Random-feedback local online learning (Murray 2019), derived for the leaky Elman RNN
`h_t = (1 - α) h_{t-1} + α φ(a_t)` (`rnn(alpha=...)`): one trace per weight, no recurrent
Jacobian (Murray eq. 14-16)::

    P_t = (1 - α) P_{t-1} + α φ'(a_t) ⊗ [x_t, h_{t-1}, 1],    dℓ_t/dW_jk ≈ L_t^j P_t^jk

The learning signal `L_t = ∂ℓ_t/∂h_t` is whatever the loss sends back: the exact one through the
readout's transpose, or a fixed random matrix through `online.eligibility.feedback_readout`
(RFLO as Murray states it). RFLO keeps only each unit's own dynamics, the leak, so it is e-prop
on this cell (`online.eligibility`) by a separate derivation, and the exact truncated gradient.
Derived for one cell family, it reaches the cell's options through `cells.elman.options_of`
(`cells.elman.FAMILY`, the family the registry declares for it).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import elman
from lstm_jax.cells.protocol import Cell
from lstm_jax.online.protocol import OnlineAlgorithm, OnlineStep, StepLoss, reset_fields

Array = jax.Array


class RFLOState(NamedTuple):
    carry: Array  # [*batch, H] h_t
    traces: Array  # [*batch, H, D] P_t, D = I + H + 1 (input, recurrent and bias weights)


def rflo(cell: Cell) -> OnlineAlgorithm:
    """RFLO (module docstring) for an Elman RNN with leak α (α = 1: the one-step gradient);
    `P_t` has one entry per weight, memory O(H·(I + H)) per sequence and time the same per
    step; `grads` is `L_t^j P_t^jk` as `ElmanParams`. A TypeError for any other cell.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> from lstm_jax.online.protocol import accumulate
    >>> cell = lstm_jax.rnn(alpha=0.5)
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> xs, targets = jnp.ones((6, 2, 3)), jnp.zeros((6, 2, 4))
    >>> out = accumulate(rflo(cell), params, xs, targets, lambda y, t: jnp.sum((y - t) ** 2),
    ...                  cell.initial_carry((2,), 4))
    >>> out.grads.r.shape, out.state.traces.shape
    ((4, 4), (2, 4, 8))
    """
    options = elman.options_of(cell, "RFLO (Murray 2019, derived for the leaky RNN)")
    alpha = options.alpha

    def init(params: elman.ElmanParams, carry: Array) -> RFLOState:
        width = params.w.shape[0] + params.r.shape[0] + 1
        return RFLOState(carry, jnp.zeros((*carry.shape, width), carry.dtype))

    def step(
        params: elman.ElmanParams, state: RFLOState, x: Array, loss: StepLoss
    ) -> tuple[RFLOState, OnlineStep]:
        h_prev = state.carry
        ones = jnp.ones((*h_prev.shape[:-1], 1), h_prev.dtype)
        in_t = jnp.concatenate([x, h_prev, ones], axis=-1)  # [*batch, D]
        h, a, _ = elman.forward(options, params, h_prev, x @ params.w)  # h_t and a_t = φ(·)
        local = alpha * elman.unit_activation(options).grad_out(a)  # ∂h_t/∂(pre-activation)
        traces = (1.0 - alpha) * state.traces + local[..., None] * in_t[..., None, :]
        value, dh = jax.value_and_grad(loss)(h)
        per_weight = jnp.einsum("...h,...hd->hd", dh, traces)  # [H, D]
        inputs = params.w.shape[0]
        grads = elman.ElmanParams(
            w=per_weight[:, :inputs].T,
            r=per_weight[:, inputs:-1].T,
            b=per_weight[:, -1],
        )
        return RFLOState(h, traces), OnlineStep(value, h, grads)

    return OnlineAlgorithm(init, step, lambda state: state.carry, reset_fields("carry", "traces"))
