"""The mLSTM of xLSTM (Beck et al. 2024): a matrix memory per head, gates from `x_t` only::

    q_t = W_q x_t + b_q   k_t = (W_k x_t + b_k)/√D   v_t = W_v x_t + b_v     [NH, D] per step
    ī_t, f̄_t = w_i x_t + b_i, w_f x_t + b_f (a scalar per head)   o_t = σ(W_o x_t + b_o)
    C_t = f_t C_{t-1} + i_t v_t k_tᵀ     n_t = f_t n_{t-1} + i_t k_t
    h_t = o_t ⊙ C_t q_t / max(|n_tᵀ q_t|, 1)          i_t = exp(ī_t), f_t = σ(f̄_t) or exp(f̄_t)

Stabilised as the sLSTM (`cells.slstm`): `m_t = max(log f_t + m_{t-1}, ī_t)`, `i'_t = exp(ī_t -
m_t)`, `f'_t = exp(log f_t + m_{t-1} - m_t)`, so `C`, `n` are the plain ones times `exp(-m_t)` and
the denominator becomes `max(|n_tᵀ q_t|, exp(-m_t))`. We follow the paper: `C` is stored `v kᵀ`
(`[D_v, D_k]`) and no ε is added to the denominator (NX-AI's kernels store `k vᵀ` and add 1e-6).
The gradient does not flow through `m` (any fixed `m` gives the same `h`, see `cells.slstm`).
Heads and forget-gate types are checked by `cells.exp_gating`, shared with the sLSTM.

Parallel form (`Cell.parallel`, `unroll(..., impl="parallel")`), per head, with the initial
state as column 0 (`log D_t0 = F_t + m_0`, `C_0`, `n_0`) and `F_t = Σ_{j≤t} log f_j`::

    log D_ts = F_t - F_s + ī_s  (1 ≤ s ≤ t),   m_t = max_s log D_ts,   D'_ts = exp(log D_ts - m_t)
    h_t = o_t ⊙ Σ_s D'_ts (q_tᵀ k_s) v_s / max(|Σ_s D'_ts q_tᵀ k_s|, exp(-m_t))   (+ column 0)

The row maximum `m_t` is exactly the recurrent `m_t` (unroll its recursion), so both forms give
the same outputs and the same final carry. It costs O(T²) time and memory per head.

Nothing recurrent enters a nonlinear pre-activation, so TRUNCATED is FULL (the cell's
`truncation_cuts` is False). Kernels are `in → out`: `w: [I, 4H + 2NH]`, blocks q, k, v, o
(H each), then ī, f̄ (NH each).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import exp_gating, initializers
from lstm_jax.cells.exp_gating import FORGET_GATES, checked_options
from lstm_jax.cells.protocol import Cell, carry_h, cell_without_cuts

Array = jax.Array


class MLSTMParams(NamedTuple):
    w: Array  # [I, 4H + 2NH]  blocks q, k, v, o, ī, f̄
    b: Array  # [4H + 2NH]


class MLSTMCarry(NamedTuple):
    """The mLSTM state; `C`, `n` are the stabilised ones (the plain ones times `exp(-m)`)."""

    C: Array  # [*batch, NH, D, D] matrix memory, v kᵀ
    n: Array  # [*batch, NH, D] normaliser
    m: Array  # [*batch, NH] stabiliser
    h: Array  # [*batch, H] output (not read by the next step)


@dataclasses.dataclass(frozen=True)
class MLSTMOptions:
    """heads: NH (it must divide H). forget_gate: "sigmoid" (the paper's) or "exp".
    forget_bias: `b_f` per head starts evenly spaced over this range (the paper's 3…6)."""

    heads: int = 1
    forget_gate: str = "sigmoid"
    forget_bias: tuple[float, float] = (3.0, 6.0)


def mlstm(
    *, heads: int = 1, forget_gate: str = "sigmoid", forget_bias: tuple[float, float] = (3.0, 6.0)
) -> Cell:
    """An mLSTM `Cell`: recurrent `step` and the quadratic `parallel` form. `y_t = h_t`.

    >>> import jax, jax.numpy as jnp
    >>> cell = mlstm(heads=2)
    >>> params = cell.init(jax.random.key(0), 3, 8)
    >>> carry, y = cell.step(params, cell.initial_carry((5,), 8), jnp.ones((5, 3)))
    >>> y.shape, carry.C.shape
    ((5, 8), (5, 2, 4, 4))
    """
    return _mlstm_cell(MLSTMOptions(*checked_options(heads, forget_gate, forget_bias)))


@functools.cache
def _mlstm_cell(options: MLSTMOptions) -> Cell:
    return cell_without_cuts(
        options,
        functools.partial(init, options),
        functools.partial(initial_carry, options),
        functools.partial(step, options),
        sizes=functools.partial(sizes, options),
        output=carry_h,
        parallel=functools.partial(parallel, options),
        family="mlstm",
    )


def sizes(options: MLSTMOptions, params: MLSTMParams) -> tuple[int, int]:
    """`(I, H)` from `w: [I, 4H + 2NH]`."""
    w = getattr(params, "w", None)
    if not isinstance(params, MLSTMParams) or getattr(w, "ndim", None) != 2:
        raise TypeError(
            f"params must be MLSTMParams with w: [I, 4H + 2NH], got {type(params).__name__}"
        )
    return w.shape[0], (w.shape[1] - 2 * options.heads) // 4


def head_size(options: MLSTMOptions, hidden_size: int) -> int:
    """`D = H / NH`; a ValueError when NH does not divide H."""
    return exp_gating.head_size(
        "mLSTM", options.heads, hidden_size, "holds an H/heads × H/heads memory"
    )


def init(
    options: MLSTMOptions, key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32
) -> MLSTMParams:
    """LeCun-normal `w`; zero biases but `b_f`, evenly spaced over `forget_bias` across heads."""
    initializers.check_sizes(input_size, hidden_size)
    head_size(options, hidden_size)
    heads = options.heads
    b_f = jnp.linspace(*options.forget_bias, heads, dtype=dtype)
    return MLSTMParams(
        w=initializers.input_kernel(key, input_size, 4 * hidden_size + 2 * heads, dtype),
        b=jnp.zeros((4 * hidden_size + 2 * heads,), dtype).at[-heads:].set(b_f),
    )


def initial_carry(
    options: MLSTMOptions, batch_shape: tuple[int, ...], hidden_size: int, dtype: Any = jnp.float32
) -> MLSTMCarry:
    """All zeros."""
    heads, d = options.heads, head_size(options, hidden_size)
    batch = tuple(batch_shape)
    return MLSTMCarry(
        C=jnp.zeros((*batch, heads, d, d), dtype),
        n=jnp.zeros((*batch, heads, d), dtype),
        m=jnp.zeros((*batch, heads), dtype),
        h=jnp.zeros((*batch, hidden_size), dtype),
    )


class Projections(NamedTuple):
    q: Array  # [..., NH, D]
    k: Array  # [..., NH, D], already divided by √D
    v: Array  # [..., NH, D]
    o: Array  # [..., H], σ(ō)
    i_pre: Array  # [..., NH]
    log_f: Array  # [..., NH]


def project(options: MLSTMOptions, params: MLSTMParams, x: Array) -> Projections:
    """Everything the step computes from `x: [..., I]` alone."""
    heads = options.heads
    hidden = (params.w.shape[1] - 2 * heads) // 4
    d = hidden // heads
    proj = x @ params.w + params.b
    q, k, v, o_pre = (
        a.reshape(*x.shape[:-1], heads, d) for a in jnp.split(proj[..., : 4 * hidden], 4, -1)
    )
    i_pre, f_pre = proj[..., 4 * hidden : 4 * hidden + heads], proj[..., 4 * hidden + heads :]
    o = jax.nn.sigmoid(o_pre.reshape(*x.shape[:-1], hidden))
    return Projections(q, k / jnp.sqrt(d), v, o, i_pre, FORGET_GATES[options.forget_gate](f_pre))


def step(
    options: MLSTMOptions, params: MLSTMParams, carry: MLSTMCarry, x: Array
) -> tuple[MLSTMCarry, Array]:
    """`(carry_{t-1}, x_t) -> (carry_t, h_t)`, the recurrent form; `x: [*batch, I]`."""
    p = project(options, params, x)
    m_prev = jax.lax.stop_gradient(carry.m)
    m = jax.lax.stop_gradient(jnp.maximum(p.log_f + m_prev, p.i_pre))  # [*batch, NH]
    i = jnp.exp(p.i_pre - m)
    f = jnp.exp(p.log_f + m_prev - m)
    C = f[..., None, None] * carry.C + i[..., None, None] * p.v[..., :, None] * p.k[..., None, :]
    n = f[..., None] * carry.n + i[..., None] * p.k
    num = jnp.einsum("...de,...e->...d", C, p.q)
    den = jnp.maximum(jnp.abs(jnp.sum(n * p.q, -1)), jnp.exp(-m))
    h = p.o * (num / den[..., None]).reshape(p.o.shape)
    return MLSTMCarry(C, n, m, h), h


def parallel(
    options: MLSTMOptions,
    params: MLSTMParams,
    xs: Array,
    carry: MLSTMCarry,
    valid: Array | None = None,
) -> tuple[MLSTMCarry, Array]:
    """The quadratic form over a whole time-major sequence: `xs: [T, *batch, I]` ->
    `(carry_T, hs: [T, *batch, H])`, equal to scanning `step` (module docstring). Where
    `valid: [T, *batch]` is false the step is the identity (`log f = 0`, `ī = -∞`: the carry
    passes unchanged) and its output 0, as the scan's `lengths`."""
    p = project(options, params, xs)  # fields [T, *batch, NH, ...]
    if valid is not None:
        mask = valid[..., None]
        p = p._replace(
            i_pre=jnp.where(mask, p.i_pre, -jnp.inf), log_f=jnp.where(mask, p.log_f, 0.0)
        )
    # Heads and batch lead, time second to last: [*batch, NH, T, ...].
    q, k, v = (jnp.moveaxis(a, 0, -2) for a in (p.q, p.k, p.v))
    i_pre, log_f = (jnp.moveaxis(a, 0, -1) for a in (p.i_pre, p.log_f))
    steps = xs.shape[0]
    big_f = jnp.cumsum(log_f, axis=-1)  # F_t, [*batch, NH, T]
    causal = jnp.tril(jnp.ones((steps, steps), bool))
    log_d = big_f[..., :, None] - big_f[..., None, :] + i_pre[..., None, :]  # [.., T(t), T(s)]
    m0 = jax.lax.stop_gradient(carry.m)
    log_d0 = big_f + m0[..., None]  # column 0: the initial state, [*batch, NH, T]
    m = jnp.maximum(jnp.max(jnp.where(causal, log_d, -jnp.inf), axis=-1), log_d0)
    m = jax.lax.stop_gradient(m)
    # exp of a masked entry is taken at 0 and then zeroed, so its gradient is 0, not NaN.
    d_w = jnp.where(causal, jnp.exp(jnp.where(causal, log_d, m[..., None]) - m[..., None]), 0.0)
    d0 = jnp.exp(log_d0 - m)  # [*batch, NH, T]
    scores = jnp.einsum("...td,...sd->...ts", q, k) * d_w
    num = jnp.einsum("...ts,...sd->...td", scores, v)
    num = num + d0[..., None] * jnp.einsum("...de,...te->...td", carry.C, q)
    den = jnp.sum(scores, -1) + d0 * jnp.einsum("...d,...td->...t", carry.n, q)
    den = jnp.maximum(jnp.abs(den), jnp.exp(-m))
    h_heads = num / den[..., None]  # [*batch, NH, T, D]
    h_heads = jnp.moveaxis(h_heads, -2, 0)  # [T, *batch, NH, D]
    hs = p.o * h_heads.reshape(p.o.shape)
    # The final carry: row T of the same weights.
    w_last, d0_last = d_w[..., -1, :], d0[..., -1]  # [*batch, NH, T], [*batch, NH]
    C = jnp.einsum("...s,...sd,...se->...de", w_last, v, k) + d0_last[..., None, None] * carry.C
    n = jnp.einsum("...s,...sd->...d", w_last, k) + d0_last[..., None] * carry.n
    if valid is None:
        return MLSTMCarry(C, n, m[..., -1], hs[-1]), hs
    # h of the last valid step (the carry's h passes through padded steps too)
    last = jnp.sum(valid, axis=0) - 1  # [*batch]; -1: no valid step, keep the carry's h
    h_last = jnp.take_along_axis(hs, jnp.maximum(last, 0)[None, ..., None], axis=0)[0]
    h_last = jnp.where((last >= 0)[..., None], h_last, carry.h)
    return MLSTMCarry(C, n, m[..., -1], h_last), jnp.where(valid[..., None], hs, 0.0)
