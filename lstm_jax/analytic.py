"""Hand-derived derivatives, written from the formulas with no autodiff inside.

The tests hold `jax.jacfwd` / `jax.grad` to these, so that they double as a readable reference
beside the papers (SPEC §4). Matrices follow the SPEC: `R_* = r[:, block]ᵀ`, and a Jacobian
`J[..., a, b] = ∂out[a] / ∂in[b]`.

- `backward`: the whole backward pass of an unrolled cell (Elman, every LSTM variant, both GRU
  conventions) in FULL or TRUNCATED mode, as a reverse `lax.scan` over one hand-written
  vector-Jacobian product per step (`lstm_step_backward`, `gru_step_backward`,
  `elman_step_backward`).
- `elman_jacobian`, `lstm_cell_state_jacobian`: per-step Jacobians with their named terms.

Notation in the step functions: `d<name>` is ∂L/∂<name> (δ in Greff et al. 2015), `*_pre` a
pre-activation; `x` is `[*batch, I]`; weight gradients are summed over the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import elman_cell, gru_cell
from lstm_jax import lstm_cell as lstm_lib
from lstm_jax.activations import activation, sigmoid
from lstm_jax.cell import Carry, Cell, Params
from lstm_jax.elman_cell import ElmanParams
from lstm_jax.gradients import Gradient, as_gradient, keep

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


# ----------------------------------------------------------------------------------------------
# Backward passes


class Gradients(NamedTuple):
    """∂L/∂ of everything an unroll takes."""

    params: Params
    xs: Array  # [T, *batch, I]
    carry: Carry  # the initial carry


class Trace(NamedTuple):
    """What the forward pass keeps for the backward pass, stacked over time."""

    carries: Carry  # [T, ...] the carry entering each step
    parts: Any  # [T, ...] the step's intermediates (LSTMParts, GRUParts, or h_t)
    final: Carry  # the carry after the last step


def sum_batch(a: Array) -> Array:
    """Sums the leading (batch) axes of `[*batch, n]`."""
    return a.reshape(-1, a.shape[-1]).sum(0)


def _outer(a: Array, b: Array) -> Array:
    """`Σ_batch a ⊗ b`: `[*batch, m], [*batch, n] -> [m, n]` (a weight gradient), as one
    `[m, N] × [N, n]` matmul over the flattened leading axes."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def elman_step_delta(
    params: ElmanParams, h_prev: Array, h: Array, dh: Array, full: bool
) -> tuple[Array, Array]:
    """One step of `h_t = tanh(x w + h_{t-1} r + b)` backwards, recurrent half.

    `dh` is the total ∂L/∂h_t. Returns `(d_pre, dh_{t-1})` with `d_pre = dh ⊙ (1 - h_t²)` and
    `dh_{t-1} = d_pre Rᵀ`; under TRUNCATED (`full` False) `dh_{t-1} = 0`: nothing survives.
    """
    d_pre = dh * (1 - h**2)
    return d_pre, (d_pre @ params.r.T if full else jnp.zeros_like(h_prev))


def elman_weight_grads(x: Array, h_prev: Array, d_pre: Array) -> ElmanParams:
    """`δW = Σ x ⊗ d`, `δR = Σ h_{t-1} ⊗ d`, `δb = Σ d` over every leading axis."""
    return ElmanParams(w=_outer(x, d_pre), r=_outer(h_prev, d_pre), b=sum_batch(d_pre))


def elman_step_backward(
    params: ElmanParams, h_prev: Array, h: Array, x: Array, dh: Array, full: bool
) -> tuple[ElmanParams, Array, Array]:
    """One Elman step backwards: `(dparams, dx_t, dh_{t-1})`."""
    d_pre, dh_prev = elman_step_delta(params, h_prev, h, dh, full)
    return elman_weight_grads(x, h_prev, d_pre), d_pre @ params.w.T, dh_prev


def lstm_step_delta(
    options: lstm_lib.LSTMOptions,
    params: lstm_lib.LSTMParams,
    carry: lstm_lib.LSTMCarry,
    p: lstm_lib.LSTMParts,
    dcarry: lstm_lib.LSTMCarry,
    full: bool,
) -> tuple[Array, lstm_lib.LSTMCarry]:
    """The recurrent half of one LSTM step backwards (SPEC §4.4, Greff et al. 2015 appendix).

    `dcarry` is ∂L/∂(h_t, c_t, gates_t) in total: the output's gradient already added to `h`,
    and `c` holding what step t+1 sends back (`dc_{t+1} ⊙ f_{t+1}` plus its peephole terms)::

        dō_t = (dh_t ⊙ k(c_t) + dgates_o) ⊙ σ'(ō_t)
        dc_t = dcarry.c + dh_t ⊙ o_t ⊙ k'(c_t) + p_o ⊙ dō_t
        dz̄_t = dc_t ⊙ i_t ⊙ g'(z̄_t)
        dī_t = (dc_t ⊙ z_t + dgates_i) ⊙ σ'(ī_t)       (CIFG: minus dc_t ⊙ c_{t-1}, as f = 1 - i)
        df̄_t = (dc_t ⊙ c_{t-1} + dgates_f) ⊙ σ'(f̄_t)
        dh_{t-1} = Σ_* R_*ᵀ d*̄_t,   dc_{t-1} = dc_t ⊙ f_t + p_i ⊙ dī_t + p_f ⊙ df̄_t

    TRUNCATED (`full` False) drops every term that crosses a cut: `dh_{t-1}`, the three
    peephole terms and the FGR gate recurrence; `dc_t ⊙ f_t` stays.

    Returns `(d_pre, dcarry_prev)`: `d_pre [*batch, G·H]` the pre-activation gradients in gate
    order, from which every weight gradient follows (`lstm_step_backward`).
    """
    g = activation(options.input_activation, "input_activation")
    k = activation(options.output_activation, "output_activation")
    sig = options.sigmoid_gates
    d_act = {name: 0.0 for name in "ifo"}  # ∂L/∂ gate activations arriving through FGR
    if options.gate_recurrence:
        d_act.update(zip(sig, jnp.split(dcarry.gates, len(sig), axis=-1), strict=True))
    dh = dcarry.h
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
    d_all = jnp.concatenate([d_pre[name] for name in options.gates], axis=-1)  # [*batch, G·H]
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
    return d_all, lstm_lib.LSTMCarry(h=dh_prev, c=dc_prev, gates=dgates_prev)


def lstm_weight_grads(
    options: lstm_lib.LSTMOptions,
    x: Array,
    carry: lstm_lib.LSTMCarry,
    c: Array,
    d_all: Array,
) -> lstm_lib.LSTMParams:
    """`δW = Σ x ⊗ d̄`, `δR = Σ h_{t-1} ⊗ d̄`, `δb = Σ d̄`, peepholes `δp_i = Σ c_{t-1} ⊙ dī`,
    `δp_f = Σ c_{t-1} ⊙ df̄`, `δp_o = Σ c_t ⊙ dō`, FGR `δR_gate = Σ gates_{t-1} ⊗ d̄_sig`.

    Sums over every leading axis: one step's `[*batch, ·]` arrays or a whole sequence's
    `[T, *batch, ·]` (the fused unroll hoists these products out of its scan). Weight
    gradients survive the truncation: they are sums over steps, not paths through time.
    """
    blocks = dict(zip(options.gates, jnp.split(d_all, len(options.gates), axis=-1), strict=True))
    peephole_input = {"i": carry.c, "f": carry.c, "o": c}  # ī, f̄ see c_{t-1}; ō sees c_t
    d_peep = {n: sum_batch(peephole_input[n] * blocks[n]) for n in options.peephole_gates}
    r_gate = None
    if options.gate_recurrence:
        d_sig = jnp.concatenate([blocks[name] for name in options.sigmoid_gates], axis=-1)
        r_gate = _outer(carry.gates, d_sig)
    return lstm_lib.LSTMParams(
        w=_outer(x, d_all),
        r=_outer(carry.h, d_all),
        b=sum_batch(d_all),
        p_i=d_peep.get("i"),
        p_f=d_peep.get("f"),
        p_o=d_peep.get("o"),
        r_gate=r_gate,
    )


def lstm_step_backward(
    options: lstm_lib.LSTMOptions,
    params: lstm_lib.LSTMParams,
    carry: lstm_lib.LSTMCarry,
    p: lstm_lib.LSTMParts,
    x: Array,
    dcarry: lstm_lib.LSTMCarry,
    full: bool,
) -> tuple[lstm_lib.LSTMParams, Array, lstm_lib.LSTMCarry]:
    """One LSTM step backwards, every variant: `lstm_step_delta`, then the step's weight
    gradients and `dx_t = Σ_* W_*ᵀ d*̄_t`. Returns `(dparams, dx_t, dcarry_prev)`."""
    d_all, dcarry_prev = lstm_step_delta(options, params, carry, p, dcarry, full)
    dparams = lstm_weight_grads(options, x, carry, p.c, d_all)
    return dparams, d_all @ params.w.T, dcarry_prev


def gru_step_delta(
    options: gru_cell.GRUOptions,
    params: gru_cell.GRUParams,
    h_prev: Array,
    p: gru_cell.GRUParts,
    dh: Array,
    full: bool,
) -> tuple[Array, Array, Array]:
    """The recurrent half of one GRU step backwards; `dh` is the total ∂L/∂h_t::

        dĥ_t = dh_t ⊙ u_t,   dū_t = dh_t ⊙ (ĥ_t - h_{t-1}) ⊙ σ'(ū_t),   dh̄_t = dĥ_t ⊙ (1 - ĥ_t²)
        reset after:  dr̄_t = dh̄_t ⊙ (R_h h_{t-1} + b_rh) ⊙ σ'(r̄_t),  d(R_h h_{t-1}) = dh̄_t ⊙ r_t
        reset before: d(r_t ⊙ h_{t-1}) = R_hᵀ dh̄_t,  dr̄_t = d(r_t ⊙ h_{t-1}) ⊙ h_{t-1} ⊙ σ'(r̄_t)
        dh_{t-1} = dh_t ⊙ (1 - u_t) + [the paths through R_*]

    TRUNCATED (`full` False) keeps only `dh_t ⊙ (1 - u_t)`. Returns `(d_x_side, d_h_side,
    dh_prev)`: the gradients of `x_t W + b` (`[*batch, 3H]`) and of `h_{t-1} R` (all three
    blocks with reset after; `[dr̄, dū]` with reset before, whose third block multiplies
    `r_t ⊙ h_{t-1}` instead).
    """
    hidden = h_prev.shape[-1]
    d_u = dh * (p.h_cand - h_prev) * sigmoid.grad_out(p.u)
    d_hpre = dh * p.u * (1 - p.h_cand**2)
    if options.reset_after:
        d_r = d_hpre * p.rh * sigmoid.grad_out(p.r)
        d_h_side = jnp.concatenate([d_r, d_u, d_hpre * p.r], axis=-1)  # ∂L/∂(h_{t-1} r)
        dh_in = d_h_side @ params.r.T if full else 0.0
    else:
        d_rh = d_hpre @ params.r[:, 2 * hidden :].T  # ∂L/∂(r ⊙ h_{t-1})
        d_r = d_rh * h_prev * sigmoid.grad_out(p.r)
        d_h_side = jnp.concatenate([d_r, d_u], axis=-1)
        dh_in = d_h_side @ params.r[:, : 2 * hidden].T + d_rh * p.r if full else 0.0
    d_x_side = jnp.concatenate([d_r, d_u, d_hpre], axis=-1)
    return d_x_side, d_h_side, dh * (1 - p.u) + dh_in


def gru_weight_grads(
    options: gru_cell.GRUOptions,
    x: Array,
    h_prev: Array,
    p: gru_cell.GRUParts,
    d_x_side: Array,
    d_h_side: Array,
) -> gru_cell.GRUParams:
    """Weight gradients from `gru_step_delta`'s outputs, summed over every leading axis (one
    step, or a whole `[T, *batch]` sequence in the fused unroll)."""
    hidden = h_prev.shape[-1]
    if options.reset_after:
        dr = _outer(h_prev, d_h_side)
        db_rh = sum_batch(d_h_side[..., 2 * hidden :])  # b_rh sits beside R_h h_{t-1}
    else:
        dr = jnp.concatenate(
            [_outer(h_prev, d_h_side), _outer(p.rh, d_x_side[..., 2 * hidden :])], axis=-1
        )
        db_rh = None
    return gru_cell.GRUParams(w=_outer(x, d_x_side), r=dr, b=sum_batch(d_x_side), b_rh=db_rh)


def gru_step_backward(
    options: gru_cell.GRUOptions,
    params: gru_cell.GRUParams,
    h_prev: Array,
    p: gru_cell.GRUParts,
    x: Array,
    dh: Array,
    full: bool,
) -> tuple[gru_cell.GRUParams, Array, Array]:
    """One GRU step backwards: `gru_step_delta`, then the step's weight gradients and
    `dx_t = Σ_* W_*ᵀ d*̄_t`. Returns `(dparams, dx_t, dh_{t-1})`."""
    d_x_side, d_h_side, dh_prev = gru_step_delta(options, params, h_prev, p, dh, full)
    dparams = gru_weight_grads(options, x, h_prev, p, d_x_side, d_h_side)
    return dparams, d_x_side @ params.w.T, dh_prev


def forward_trace(cell: Cell, params: Params, xs: Array, carry: Carry) -> Trace:
    """Runs the cell forward and keeps, per step, the carry it entered with and its parts.

    `xs` is time-major `[T, *batch, I]`. Shared by `backward` and the diagnostics.
    """
    return trace_steps(cell.options, params, xs, carry)


def trace_steps(
    options: Any,
    params: Params,
    xs: Array,
    carry: Carry,
    *,
    hoist: bool = False,
) -> Trace:
    """`forward_trace` by options. `hoist` computes `x W` for all steps in one matmul (the
    fused Elman unroll; the fused LSTM and GRU have forward loops of their own that store less,
    `lstm_jax.fused`). The entering carries are the previous steps' outputs, rebuilt by one
    shift after the loop rather than stored per step."""

    def step_inputs(x: Array) -> tuple:
        """The step's `(x, cut, x_proj)` arguments: hoisted, `x` is the row of `X W`."""
        return (None, keep, x + params.b) if hoist else (x,)

    if isinstance(options, lstm_lib.LSTMOptions):

        def forward(carry, x):
            p = lstm_lib.parts(options, params, carry, *step_inputs(x))
            return lstm_lib.carry_from_parts(options, p), p
    elif isinstance(options, gru_cell.GRUOptions):

        def forward(carry, x):
            p = gru_cell.parts(options, params, carry, *step_inputs(x))
            return p.h, p
    elif isinstance(options, elman_cell.ElmanOptions):

        def forward(carry, x):
            h, _ = elman_cell.step(params, carry, *step_inputs(x))
            return h, h
    else:
        raise TypeError(f"no analytic derivation for cells with options {type(options).__name__}")
    if hoist:
        # One [T·B, I] × [I, G·H] matmul for all steps; the bias is added inside the loop, where
        # it joins the gate arithmetic for free, rather than in a pass of its own over [T, B, G·H].
        xs = xs @ params.w
    final, parts = jax.lax.scan(forward, carry, xs)
    if isinstance(options, lstm_lib.LSTMOptions):
        after = lstm_lib.carry_from_parts(options, parts)
    else:
        after = parts if isinstance(parts, jax.Array) else parts.h
    return Trace(carries=entering_carries(carry, after), parts=parts, final=final)


def entering_carries(carry0: Carry, after: Carry) -> Carry:
    """`[T, ...]` the carry entering each step: the one step t - 1 handed on (`after`, stacked
    over time), `carry0` at t = 0."""
    return jax.tree.map(lambda c0, seq: jnp.concatenate([c0[None], seq[:-1]]), carry0, after)


def _add_output(dcarry: Carry, dy: Array) -> Carry:
    """Every cell here outputs `y_t = h_t`: the output's gradient joins the carry's `h`."""
    if isinstance(dcarry, lstm_lib.LSTMCarry):
        return dcarry._replace(h=dcarry.h + dy)
    return dcarry + dy


def backward(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry,
    dys: Array,
    dcarry: Carry | None = None,
    gradient: Gradient | str = "full",
) -> Gradients:
    """The hand-derived backward pass of `unroll(cell, params, xs, carry, gradient=...)`.

    Args:
      xs: `[T, *batch, I]` time-major inputs; carry: the initial carry.
      dys: `[T, *batch, H]`, ∂L/∂y_t for every step.
      dcarry: ∂L/∂(final carry), zeros when None.
      gradient: "full" or "truncated".

    Returns:
      `Gradients(params, xs, carry)`, equal to `jax.vjp` of the unroll applied to
      `(dcarry, dys)` — the tests hold them to 1e-10 in float64.
    """
    full = as_gradient(gradient) is Gradient.FULL
    options = cell.options
    trace = forward_trace(cell, params, xs, carry)
    step_backward: Callable[..., tuple[Params, Array, Carry]]
    if isinstance(options, lstm_lib.LSTMOptions):
        step_backward = lambda c, p, x, d: lstm_step_backward(options, params, c, p, x, d, full)  # noqa: E731
    elif isinstance(options, gru_cell.GRUOptions):
        step_backward = lambda c, p, x, d: gru_step_backward(options, params, c, p, x, d, full)  # noqa: E731
    else:
        step_backward = lambda c, h, x, d: elman_step_backward(params, c, h, x, d, full)  # noqa: E731
    if dcarry is None:
        dcarry = jax.tree.map(jnp.zeros_like, trace.final)

    def body(acc, inputs):
        dcarry_t, dparams = acc
        carry_prev, parts, x, dy = inputs
        dparams_t, dx, dcarry_prev = step_backward(carry_prev, parts, x, _add_output(dcarry_t, dy))
        return (dcarry_prev, jax.tree.map(jnp.add, dparams, dparams_t)), dx

    zeros = jax.tree.map(jnp.zeros_like, params)
    (dcarry0, dparams), dxs = jax.lax.scan(
        body, (dcarry, zeros), (trace.carries, trace.parts, xs, dys), reverse=True
    )
    return Gradients(params=dparams, xs=dxs, carry=dcarry0)
