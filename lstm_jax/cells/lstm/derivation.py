"""The LSTM's hand-derived derivatives, every variant (Greff et al. 2015 appendix; Mallya's notes),
written from the formulas with no autodiff inside; the tests hold `jax.vjp` / `jax.jacfwd` to
them in float64.

Backward pass of one step (`delta`, `grads`), `δ` meaning ∂L/∂ and `δh_t` the total (the
step's output gradient plus what step t + 1 sends back through `R_*`)::

    δō_t = δh_t ⊙ k(c_t) ⊙ σ'(ō_t)
    δc_t = δh_t ⊙ o_t ⊙ k'(c_t) + p_o ⊙ δō_t + p_i ⊙ δī_{t+1} + p_f ⊙ δf̄_{t+1} + δc_{t+1} ⊙ f_{t+1}
    δf̄_t = δc_t ⊙ c_{t-1} ⊙ σ'(f̄_t),  δī_t = δc_t ⊙ z_t ⊙ σ'(ī_t),  δz̄_t = δc_t ⊙ i_t ⊙ g'(z̄_t)
    δh_{t-1} = Σ_* R_*ᵀ δ*̄_t,   δx_t = Σ_* W_*ᵀ δ*̄_t
    δW_* = Σ_t δ*̄_t ⊗ x_t,  δR_* = Σ_t δ*̄_t ⊗ h_{t-1},  δb_* = Σ_t δ*̄_t
    δp_i = Σ_t c_{t-1} ⊙ δī_t,  δp_f = Σ_t c_{t-1} ⊙ δf̄_t,  δp_o = Σ_t c_t ⊙ δō_t

(CIFG, `f = 1 - i`: `δī_t` gains `-δc_t ⊙ c_{t-1} ⊙ σ'(ī_t)`; FGR: each sigmoid gate also
receives `∂L/∂gates_t` from step t + 1 through `R_gateᵀ`; `gate_inputs` likewise, with every
pre-activation sending `δh̄_{t+1} R_gateᵀ` back to the gates of step t.) With memory blocks a
shared gate's `δ` is the sum over its cells. `Gradient.TRUNCATED` drops every term
that crosses a cut: `δh_{t-1}`, the three peephole terms and the FGR recurrence; the constant
error carousel `δc_t ⊙ f_t` stays.

The cell-state Jacobian (`cell_state_jacobian`), with `h_{t-1} = o_{t-1} ⊙ k(c_{t-1})` and
`o_{t-1}` held fixed: `∂c_t/∂c_{t-1} = A_t + B_t + C_t + D_t (+ P_t)`, see `CellStateJacobian`;
under TRUNCATED it is exactly `diag(f_t)`. Hence the path gradient (the lecture in the seeds,
slides 37-41): with a loss only at step t, under TRUNCATED and without peepholes,

    ∂L_t/∂c_k = ∂L_t/∂h_t ⊙ o_t ⊙ k'(c_t) ⊙ ∏_{j=k+1..t} f_j         exactly;

under FULL it is one of the summed paths (`diagnostics.per_lag_gradients` measures both).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells.activations import activation, sigmoid
from lstm_jax.cells.lstm.options import LSTMOptions
from lstm_jax.cells.lstm.step import (
    LSTMCarry,
    LSTMParams,
    LSTMParts,
    activations,
    carry_from_parts,
    expand_blocks,
    parts,
    parts_from_activations,
    split_blocks,
    sum_blocks,
)
from lstm_jax.cells.protocol import outer_sum, sum_leading
from lstm_jax.modes import Gradient, cut_nothing, resolve_gradient

Array = jax.Array


def forward(
    options: LSTMOptions, params: LSTMParams, carry: LSTMCarry, xw: Array
) -> tuple[LSTMCarry, Array, None]:
    """The step from `xw = x_t @ w`: `(carry_t, acts = the gate activations, nothing saved)`."""
    p = parts(options, params, carry, None, cut_nothing, xw + params.b)
    return carry_from_parts(options, p), activations(options, p), None


def delta(
    options: LSTMOptions,
    params: LSTMParams,
    carry: LSTMCarry,
    carry_t: LSTMCarry,
    acts: Array,
    saved: None,
    dcarry: LSTMCarry,
    dy: Array,
    mode: Gradient,
) -> tuple[LSTMCarry, Array, None]:
    """One step backwards (the module docstring's equations).

    `carry` enters the step, `carry_t` leaves it, `acts` are its gate activations; `dcarry` is
    ∂L/∂(h_t, c_t, gates_t) from step t + 1 (`c` holds `δc_{t+1} ⊙ f_{t+1}` and its peephole
    terms), `dy` the gradient of the output `h_t`. Returns `(dcarry_{t-1}, δ pre-activations
    [*batch, ΣG] in gate order, None)`; a memory block's gate gets the sum over its cells.
    """
    full = mode is Gradient.FULL
    g = activation(options.input_activation, "input_activation")
    k = activation(options.output_activation, "output_activation")
    p = parts_from_activations(options, acts, carry_t.c)
    sig = options.sigmoid_gates
    d_act = {name: 0.0 for name in "ifo"}  # ∂L/∂ gate activations arriving through FGR
    if options.gate_recurrence:
        d_act.update(zip(sig, jnp.split(dcarry.gates, len(sig), axis=-1), strict=True))
    dh = dcarry.h + dy
    d_pre: dict[str, Array] = {}
    if options.output_gate:
        d_pre["o"] = (dh * p.kc + d_act["o"]) * sigmoid.grad_out(p.o)
    dc = dcarry.c + dh * p.o * k.grad_out(p.kc)
    if full and options.peepholes and options.output_gate:
        dc = dc + params.p_o * d_pre["o"]
    d_pre["z"] = dc * p.i * g.grad_out(p.z)
    d_f = dc * carry.c + d_act["f"]  # ∂L/∂f_t
    if options.input_gate:
        d_i = dc * p.z + d_act["i"] - (d_f if options.coupled else 0.0)
        d_pre["i"] = d_i * sigmoid.grad_out(p.i)
    if "f" in options.gates:
        d_pre["f"] = d_f * sigmoid.grad_out(p.f)
    # [*batch, ΣG]; a gate shared by a memory block takes the sum over its cells
    d_block = {n: d_pre[n] if n == "z" else sum_blocks(options, d_pre[n]) for n in options.gates}
    if options.gate_inputs:  # ∂L/∂(gate activations of this step), one per block, from t + 1
        s = options.block_size
        for name, d_gate in zip(sig, jnp.split(dcarry.gates, len(sig), axis=-1), strict=True):
            d_block[name] = d_block[name] + d_gate * sigmoid.grad_out(getattr(p, name)[..., ::s])
    d_all = jnp.concatenate([d_block[n] for n in options.gates], axis=-1)
    dc_prev = dc * p.f  # the constant error carousel: never cut
    dh_prev = d_all @ params.r.T if full else jnp.zeros_like(carry.h)
    if full:
        for n in options.peephole_gates:
            if n != "o":
                dc_prev = dc_prev + getattr(params, f"p_{n}") * d_pre[n]
    dgates_prev = None
    if options.gate_recurrence:
        d_sig = jnp.concatenate([d_pre[name] for name in sig], axis=-1)
        dgates_prev = d_sig @ params.r_gate.T if full else jnp.zeros_like(carry.gates)
    elif options.gate_inputs:
        dgates_prev = d_all @ params.r_gate.T if full else jnp.zeros_like(carry.gates)
    return LSTMCarry(h=dh_prev, c=dc_prev, gates=dgates_prev), d_all, None


def grads(
    options: LSTMOptions,
    params: LSTMParams,
    x: Array,
    carry: LSTMCarry,
    carry_t: LSTMCarry,
    d_all: Array,
    saved: None,
) -> LSTMParams:
    """`δW = Σ x ⊗ d̄`, `δR = Σ h_{t-1} ⊗ d̄`, `δb = Σ d̄`, peepholes `δp_i = Σ c_{t-1} ⊙ dī`,
    `δp_f = Σ c_{t-1} ⊙ df̄`, `δp_o = Σ c_t ⊙ dō`, FGR `δR_gate = Σ gates_{t-1} ⊗ d̄_sig`.

    Sums over every leading axis: one step's `[*batch, ·]` arrays or a whole sequence's
    `[T, *batch, ·]`. Weight gradients survive the truncation: they are sums over steps, not
    paths through time.
    """
    split = split_blocks(options, d_all, carry.h.shape[-1])
    blocks = dict(zip(options.gates, split, strict=True))
    peephole_input = {"i": carry.c, "f": carry.c, "o": carry_t.c}  # ī, f̄ see c_{t-1}; ō c_t
    d_peep = {n: sum_leading(peephole_input[n] * blocks[n]) for n in options.peephole_gates}
    r_gate = None
    if options.gate_recurrence:
        d_sig = jnp.concatenate([blocks[name] for name in options.sigmoid_gates], axis=-1)
        r_gate = outer_sum(carry.gates, d_sig)
    elif options.gate_inputs:
        r_gate = outer_sum(carry.gates, d_all)
    return LSTMParams(
        w=outer_sum(x, d_all),
        r=outer_sum(carry.h, d_all),
        b=sum_leading(d_all),
        p_i=d_peep.get("i"),
        p_f=d_peep.get("f"),
        p_o=d_peep.get("o"),
        r_gate=r_gate,
    )


def cell_state_influence(options: LSTMOptions, p: LSTMParts, c_prev: Array) -> dict[str, Array]:
    """`∂c_t/∂(pre-activation)` of every block that feeds the cell state (z, and i, f where
    present), each `[*batch, H]`: `i_t ⊙ g'(z̄_t)`, `z_t ⊙ σ'(ī_t)` (CIFG: `(z_t - c_{t-1}) ⊙
    σ'(ī_t)`, as `f = 1 - i`), `c_{t-1} ⊙ σ'(f̄_t)`. Needs `p` with pre-activations (`parts`)."""
    g = activation(options.input_activation, "input_activation")
    local = {"z": p.i * g.grad(p.z_pre)}
    if options.input_gate:
        local["i"] = (p.z - (c_prev if options.coupled else 0.0)) * sigmoid.grad(p.i_pre)
    if p.f_pre is not None:
        local["f"] = c_prev * sigmoid.grad(p.f_pre)
    return local


class CellStateJacobian(NamedTuple):
    """The terms of `∂c_t/∂c_{t-1}`, each `[*batch, H, H]` (`J[..., a, b] = ∂c_t[a]/∂c_{t-1}[b]`).

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


def _diag_r_diag(left: Array, r_block: Array, right: Array) -> Array:
    """`diag(left) · R · diag(right)` with `R = r_blockᵀ`, batched over leading axes."""
    return left[..., :, None] * r_block.T * right[..., None, :]


def cell_state_jacobian(
    options: LSTMOptions,
    params: LSTMParams,
    carry: LSTMCarry,
    x: Array,
    o_prev: Array,
    gradient: Gradient | str = Gradient.FULL,
) -> CellStateJacobian:
    """The terms of `∂c_t/∂c_{t-1}` at one step.

    Args:
      carry: the carry `(h_{t-1}, c_{t-1})` entering the step; `x: [*batch, I]` its input.
      o_prev: `o_{t-1}`, the output gate that produced `h_{t-1}` (`[*batch, H]`).
      gradient: under `Gradient.TRUNCATED` every term but `B = diag(f_t)` is zero.
    """
    p = parts(options, params, carry, x)
    g = activation(options.input_activation, "input_activation")
    k = activation(options.output_activation, "output_activation")
    hidden = carry.c.shape[-1]
    r_blocks = dict(zip(options.gates, split_blocks(options, params.r, hidden), strict=True))

    def r_of(name: str) -> Array:  # [H, H]: a memory block's gate column repeated per cell
        return r_blocks[name] if name == "z" else expand_blocks(options, r_blocks[name])

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
    if resolve_gradient(gradient) is Gradient.TRUNCATED:
        A = C = D = P = zero
    return CellStateJacobian(A=A, B=B, C=C, D=D, P=P)


def gate_trace(options: LSTMOptions, params: LSTMParams, xs: Array, carry: LSTMCarry) -> Any:
    """`(carries, parts)`: the carry entering each step and the step's `LSTMParts` (with
    pre-activations), each stacked over time `[T, ...]`, for time-major `xs: [T, *batch, I]`."""

    def body(carry: LSTMCarry, x: Array):
        p = parts(options, params, carry, x)
        return carry_from_parts(options, p), (carry, p)

    _, stacked = jax.lax.scan(body, carry, xs)
    return stacked


def cell_state_jacobians(
    options: LSTMOptions,
    params: LSTMParams,
    xs: Array,
    carry: LSTMCarry,
    gradient: Gradient | str = Gradient.FULL,
) -> CellStateJacobian:
    """`cell_state_jacobian` for t = 1..T along time-major `xs`: each leaf `[T, *batch, H, H]`.

    At step 1 the terms through `h_0` (A, C, D) are zero: `h_0` is given, not computed from
    `c_0`, so there is no `o_0` to hold fixed.
    """
    carries, p = gate_trace(options, params, xs, carry)
    o_prev = jnp.concatenate([jnp.zeros_like(p.o[:1]), p.o[:-1]])

    def at_step(carry_prev: LSTMCarry, x: Array, o_prev: Array) -> CellStateJacobian:
        return cell_state_jacobian(options, params, carry_prev, x, o_prev, gradient)

    return jax.vmap(at_step)(carries, xs, o_prev)
