"""Hand-derived derivatives, written from the formulas with no autodiff inside.

The tests hold `jax.jacfwd` / `jax.grad` to these, so that they double as a readable reference
beside the papers (SPEC §4). Matrices follow the SPEC: `R_* = r[:, block]ᵀ`, and a Jacobian
`J[..., a, b] = ∂out[a] / ∂in[b]`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import lstm_cell as lstm_lib
from lstm_jax.activations import activation, sigmoid
from lstm_jax.cell import Cell
from lstm_jax.elman_cell import ElmanParams
from lstm_jax.gradients import Gradient, as_gradient

Array = jax.Array


def _diag_r_diag(left: Array, r_block: Array, right: Array) -> Array:
    """`diag(left) · R · diag(right)` with `R = r_blockᵀ`, batched over leading axes."""
    return left[..., :, None] * r_block.T * right[..., None, :]


def elman_jacobian(params: ElmanParams, h: Array, gradient: Gradient | str = "full") -> Array:
    """`∂h_t/∂h_{t-1} = diag(1 - h_t²) R` (SPEC §4.1), `[*batch, H, H]`, from `h = h_t`.

    Zero under `Gradient.TRUNCATED`: the Elman RNN has no linear carry path to keep.
    """
    jac = _diag_r_diag(1 - h**2, params.r, jnp.ones_like(h))
    return jac if as_gradient(gradient) is Gradient.FULL else jnp.zeros_like(jac)


class CellStateJacobian(NamedTuple):
    """The terms of `∂c_t/∂c_{t-1}` (SPEC §4.2), each `[*batch, H, H]`.

    With `dh = o_{t-1} ⊙ k'(c_{t-1})` (`h_{t-1} = o_{t-1} ⊙ k(c_{t-1})`, `o_{t-1}` held fixed):
      A = diag(c_{t-1} ⊙ σ'(f̄_t)) R_f diag(dh)     through the forget gate (CIFG, f = 1 - i:
          diag(-c_{t-1} ⊙ σ'(ī_t)) R_i diag(dh))
      B = diag(f_t)                                  the constant error carousel
      C = diag(z_t ⊙ σ'(ī_t)) R_i diag(dh)          through the input gate
      D = diag(i_t ⊙ g'(z̄_t)) R_z diag(dh)          through the cell input
      P = diag(∂c_t/∂ī_t ⊙ p_i + ∂c_t/∂f̄_t ⊙ p_f)   through the peepholes (zero without them)
    A variant without a gate has a zero term for it.
    """

    A: Array
    B: Array
    C: Array
    D: Array
    P: Array

    def total(self) -> Array:
        return self.A + self.B + self.C + self.D + self.P


def lstm_cell_state_jacobian(
    cell: Cell,
    params: lstm_lib.LSTMParams,
    carry: lstm_lib.LSTMCarry,
    x: Array,
    o_prev: Array,
    gradient: Gradient | str = "full",
) -> CellStateJacobian:
    """The terms of `∂c_t/∂c_{t-1}` for an LSTM cell at one step.

    Args:
      carry: the carry `(h_{t-1}, c_{t-1})` entering the step; `x: [*batch, I]` its input.
      o_prev: `o_{t-1}`, the output gate that produced `h_{t-1}` (`[*batch, H]`).
      gradient: under `Gradient.TRUNCATED` every term but `B = diag(f_t)` is zero (SPEC §4.2).
    """
    options = cell.options
    if not isinstance(options, lstm_lib.LSTMOptions):
        raise TypeError(
            f"lstm_cell_state_jacobian needs an LSTM cell, got {type(options).__name__}"
        )
    p = lstm_lib.parts(options, params, carry, x)
    g = activation(options.input_activation, "input_activation")
    k = activation(options.output_activation, "output_activation")
    hidden = carry.c.shape[-1]
    blocks = {name: n * hidden for n, name in enumerate(options.gates)}

    def r_of(name: str) -> Array:
        return params.r[:, blocks[name] : blocks[name] + hidden]

    dh = o_prev * k.grad(carry.c)
    zero = jnp.zeros((*carry.c.shape, hidden), carry.c.dtype)
    # ∂c_t/∂(pre-activation) of each gate; the coupled forget gate acts through ī.
    dc_di = p.z * sigmoid.grad(p.i_pre) if options.input_gate else None
    dc_df = carry.c * sigmoid.grad(p.f_pre) if p.f_pre is not None else None
    dc_di_forget = -carry.c * sigmoid.grad(p.i_pre) if options.coupled else None
    A = C = P = zero
    if dc_df is not None:
        A = _diag_r_diag(dc_df, r_of("f"), dh)
    elif dc_di_forget is not None:
        A = _diag_r_diag(dc_di_forget, r_of("i"), dh)
    if dc_di is not None:
        C = _diag_r_diag(dc_di, r_of("i"), dh)
    D = _diag_r_diag(p.i * g.grad(p.z_pre), r_of("z"), dh)
    if options.peepholes:
        diag = jnp.zeros_like(carry.c)
        if dc_di is not None:
            diag = diag + (dc_di + (0 if dc_di_forget is None else dc_di_forget)) * params.p_i
        if dc_df is not None:
            diag = diag + dc_df * params.p_f
        P = diag[..., :, None] * jnp.eye(hidden, dtype=diag.dtype)
    B = p.f[..., :, None] * jnp.eye(hidden, dtype=p.f.dtype)
    if as_gradient(gradient) is Gradient.TRUNCATED:
        A = C = D = P = zero
    return CellStateJacobian(A=A, B=B, C=C, D=D, P=P)
