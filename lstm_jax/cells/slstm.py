"""The sLSTM of xLSTM (Beck et al. 2024): exponential input gate, sigmoid or exponential forget
gate, a normaliser state `n` and a stabiliser state `m`, with memory mixing inside heads::

    x̄_t = W_* x_t + R_* h_{t-1} + b_*          * ∈ {i, f, z, o}, R_* block-diagonal over heads
    z_t = tanh(z̄_t)   i_t = exp(ī_t)   f_t = σ(f̄_t) or exp(f̄_t)   o_t = σ(ō_t)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ z_t    n_t = f_t ⊙ n_{t-1} + i_t    h_t = o_t ⊙ c_t / n_t

Stabilised (the function the cell computes; it cannot overflow)::

    m_t = max(log f_t + m_{t-1}, ī_t)      (m_t = ī_t and f'_t = 0 where n_{t-1} = 0: the carry
                                            is empty; NX-AI's reference sets m_t = ī_t there)
    i'_t = exp(ī_t - m_t)   f'_t = exp(log f_t + m_{t-1} - m_t)     both ≤ 1
    c_t = f'_t ⊙ c_{t-1} + i'_t ⊙ z_t    n_t = f'_t ⊙ n_{t-1} + i'_t    h_t = o_t ⊙ c_t / n_t

The stabilised `c_t, n_t` are the plain ones times `exp(-m_t)`, so `h_t` is unchanged, and from
the first step on `n_t ≥ 1` (where `m_t = ī_t`, `i'_t = 1`; otherwise `f'_t = 1`) so `|h_t| ≤ 1`.
Any fixed `m` gives the same `h`, so the gradient of `h` is the same whether or not it flows
through `m`; the cell stops it there (`stop_gradient`), which saves the `max`'s backward pass.

Gradient modes: FULL differentiates everything. TRUNCATED (`modes.cut_gate_recurrence`) cuts
`h_{t-1}` where it enters `ī, f̄, z̄, ō` (through `R_*`); the linear carry paths survive:
`∂c_t/∂c_{t-1} = diag(f'_t)` and `∂n_t/∂n_{t-1} = diag(f'_t)`, so error reaching `c_k`, `n_k`
from step t is scaled by the product of the stabilised forget factors
`∏_{j=k+1..t} f'_j = exp(Σ_{j=k+1..t} log f_j + m_k - m_t)`.

Kernels are stored `in → out`: `w: [I, 4H]` (blocks in `SLSTM_GATE_ORDER`), and `r: [4, NH, D, D]`
(gate, head, in, out) with `D = H / NH`, so `R_*` is block-diagonal with NH blocks `r[g, k]ᵀ`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import exp_gating, initializers
from lstm_jax.cells.exp_gating import FORGET_GATES, checked_options
from lstm_jax.cells.protocol import Cell, Family, carry_h, cell_from_step
from lstm_jax.modes import cut_nothing

Array = jax.Array

SLSTM_GATE_ORDER: tuple[str, ...] = ("i", "f", "z", "o")
"""Order of the blocks along the last axis of `w` and `b` and the first axis of `r`."""


class SLSTMParams(NamedTuple):
    w: Array  # [I, 4H]  blocks i, f, z, o
    r: Array  # [4, NH, D, D]  per gate and head, in → out
    b: Array  # [4H]


class SLSTMCarry(NamedTuple):
    """The sLSTM state; `c`, `n` are the stabilised ones (the plain ones times `exp(-m)`)."""

    h: Array  # [*batch, H] hidden state / output
    c: Array  # [*batch, H] cell state
    n: Array  # [*batch, H] normaliser
    m: Array  # [*batch, H] stabiliser (log scale of c and n)


class SLSTMParts(NamedTuple):
    """Every intermediate of one step."""

    pre: Array  # [*batch, 4H] pre-activations ī, f̄, z̄, ō
    log_f: Array  # [*batch, H]
    i: Array  # i'_t
    f: Array  # f'_t
    z: Array
    o: Array
    carry: SLSTMCarry


@dataclasses.dataclass(frozen=True)
class SLSTMOptions:
    """heads: NH, the number of diagonal blocks of `R_*` (it must divide H).
    forget_gate: "sigmoid" (the xLSTM paper's default) or "exp".
    forget_bias: `(low, high)`: `b_f` starts evenly spaced over this range (xLSTM's range 3…6:
      σ(3) = 0.95, a long initial memory)."""

    heads: int = 1
    forget_gate: str = "sigmoid"
    forget_bias: tuple[float, float] = (3.0, 6.0)


def slstm(
    *, heads: int = 1, forget_gate: str = "sigmoid", forget_bias: tuple[float, float] = (3.0, 6.0)
) -> Cell:
    """An sLSTM `Cell` with `heads` heads. Carry `SLSTMCarry(h, c, n, m)`, each `[*batch, H]`;
    `y_t = h_t`.

    >>> import jax, jax.numpy as jnp
    >>> cell = slstm(heads=2)
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> carry, y = cell.step(params, cell.initial_carry((5,), 4), jnp.ones((5, 3)))
    >>> y.shape, carry.m.shape
    ((5, 4), (5, 4))
    """
    return _slstm_cell(SLSTMOptions(*checked_options(heads, forget_gate, forget_bias)))


@functools.cache
def _slstm_cell(options: SLSTMOptions) -> Cell:
    return cell_from_step(
        options,
        functools.partial(init, options),
        initial_carry,
        functools.partial(step, options),
        sizes=sizes,
        output=carry_h,
        family=FAMILY.name,
    )


FAMILY = Family("slstm", "an sLSTM cell")  # what code derived for the sLSTM checks


def options_of(cell: Cell, purpose: str) -> SLSTMOptions:
    """The `SLSTMOptions` of an sLSTM cell; a TypeError naming `purpose` for any other cell.

    >>> options_of(slstm(heads=2), "the closed-form path").heads
    2
    """
    return FAMILY.options(cell, purpose)


def sizes(params: SLSTMParams) -> tuple[int, int]:
    """`(I, H)` from `w: [I, 4H]`."""
    w = getattr(params, "w", None)
    if not isinstance(params, SLSTMParams) or getattr(w, "ndim", None) != 2:
        raise TypeError(f"params must be SLSTMParams with w: [I, 4H], got {type(params).__name__}")
    return w.shape[0], w.shape[1] // 4


def head_size(options: SLSTMOptions, hidden_size: int) -> int:
    """`D = H / NH`; a ValueError when NH does not divide H."""
    return exp_gating.head_size("sLSTM", options.heads, hidden_size, "mixes H/heads units")


def init(
    options: SLSTMOptions, key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32
) -> SLSTMParams:
    """LeCun-normal `w`; each head's `r[g, k]` N(0, 1/D) (variance-preserving within the head);
    zero biases but `b_f`, evenly spaced over `options.forget_bias`."""
    initializers.check_sizes(input_size, hidden_size)
    d = head_size(options, hidden_size)
    k_w, k_r = jax.random.split(key)
    low, high = options.forget_bias
    b_f = jnp.linspace(low, high, hidden_size, dtype=dtype)
    b = jnp.zeros((4, hidden_size), dtype).at[1].set(b_f)
    return SLSTMParams(
        w=initializers.input_kernel(k_w, input_size, 4 * hidden_size, dtype),
        r=jax.random.normal(k_r, (4, options.heads, d, d), dtype) / jnp.sqrt(d),
        b=b.reshape(-1),
    )


def initial_carry(
    batch_shape: tuple[int, ...], hidden_size: int, dtype: Any = jnp.float32
) -> SLSTMCarry:
    """All zeros (`n_0 = 0` makes the first step set `m_1 = ī_1`)."""
    zeros = jnp.zeros((*tuple(batch_shape), hidden_size), dtype)
    return SLSTMCarry(zeros, zeros, zeros, zeros)


def recurrent(params: SLSTMParams, h: Array) -> Array:
    """`[R_i h, R_f h, R_z h, R_o h]`: `[*batch, H] -> [*batch, 4H]`, block-diagonal per head."""
    _, heads, d, _ = params.r.shape
    hh = h.reshape(*h.shape[:-1], heads, d)
    out = jnp.einsum("...kd,gkde->...gke", hh, params.r)
    return out.reshape(*h.shape[:-1], 4 * heads * d)


def parts(
    options: SLSTMOptions,
    params: SLSTMParams,
    carry: SLSTMCarry,
    x: Array,
    cut: Callable[[Any], Any] = cut_nothing,
) -> SLSTMParts:
    """One stabilised step with every intermediate; `cut` wraps `h_{t-1}` where it enters the
    pre-activations (the only place it enters)."""
    pre = x @ params.w + params.b + recurrent(params, cut(carry.h))
    i_pre, f_pre, z_pre, o_pre = jnp.split(pre, 4, axis=-1)
    log_f = FORGET_GATES[options.forget_gate](f_pre)
    m_prev = jax.lax.stop_gradient(carry.m)  # any fixed m gives the same h (module docstring)
    log_f_m = log_f + m_prev
    empty = carry.n == 0  # a fresh start (the zero carry, a reset): c_{t-1} is not read
    m = jax.lax.stop_gradient(jnp.where(empty, i_pre, jnp.maximum(log_f_m, i_pre)))
    i = jnp.exp(i_pre - m)
    # exp(log f + m_{t-1} - m_t) ≤ 1 where the carry is not empty; where it is, m_t = ī_t may lie
    # far below log f + m_{t-1}, and the factor (which multiplies c = n = 0) is set to 0 so it
    # cannot overflow into inf · 0.
    f = jnp.where(empty, 0.0, jnp.exp(jnp.where(empty, 0.0, log_f_m - m)))
    z = jnp.tanh(z_pre)
    o = jax.nn.sigmoid(o_pre)
    c = f * carry.c + i * z
    n = f * carry.n + i
    h = o * c / n
    return SLSTMParts(pre, log_f, i, f, z, o, SLSTMCarry(h, c, n, m))


def step(
    options: SLSTMOptions,
    params: SLSTMParams,
    carry: SLSTMCarry,
    x: Array,
    cut: Callable[[Any], Any] = cut_nothing,
) -> tuple[SLSTMCarry, Array]:
    """`(carry_{t-1}, x_t) -> (carry_t, h_t)`; `x: [*batch, I]`, every carry field `[*batch, H]`."""
    new = parts(options, params, carry, x, cut).carry
    return new, new.h


class TruncatedPath(NamedTuple):
    """The closed-form truncated gradient from `L(h_T)` back to the carry after step k, per unit:
    `∂L/∂c_k = ∂L/∂h_T ⊙ c[k]`, `∂L/∂n_k = ∂L/∂h_T ⊙ n[k]` for k = 0..T-1."""

    c: Array  # [T, *batch, H]  o_T / n_T ⊙ ∏_{j=k+1..T} f'_j
    n: Array  # [T, *batch, H]  -o_T c_T / n_T² ⊙ ∏_{j=k+1..T} f'_j
    forget_product: Array  # [T, *batch, H]  ∏_{j=k+1..T} f'_j = exp(Σ_{j=k+1..T} log f'_j)


def truncated_path(
    options: SLSTMOptions, params: SLSTMParams, xs: Array, carry: SLSTMCarry
) -> TruncatedPath:
    """The sLSTM's truncated path in closed form over `xs: [T, *batch, I]` from `carry`.

    Under TRUNCATED, `c_k` and `n_k` reach `h_T = o_T c_T / n_T` only through
    `c_t = f'_t c_{t-1} + …` and `n_t = f'_t n_{t-1} + …` (`o_T` and the gates are cut from the
    carry), so the error is `∂h_T/∂c_T = o_T / n_T`, `∂h_T/∂n_T = -o_T c_T / n_T²`, times the
    product of the stabilised forget factors, summed here in log space (`log f'_t = log f_t +
    m_{t-1} - m_t`).
    """

    def body(carry: SLSTMCarry, x: Array) -> tuple[SLSTMCarry, tuple[Array, Array]]:
        p = parts(options, params, carry, x)
        # log f'_t = log f_t + m_{t-1} - m_t, and -inf where f'_t = 0 (an empty carry)
        log_f_stab = jnp.where(carry.n == 0, -jnp.inf, p.log_f + carry.m - p.carry.m)
        return p.carry, (log_f_stab, p.o)

    final, (log_f_stab, o) = jax.lax.scan(body, carry, xs)
    # Σ_{j=k+1..T} log f'_j: a reverse cumulative sum (array index j-1 holds step j).
    product = jnp.exp(jnp.cumsum(log_f_stab[::-1], axis=0)[::-1])
    o_t = o[-1]
    return TruncatedPath(
        c=product * (o_t / final.n),
        n=-product * (o_t * final.c / final.n**2),
        forget_product=product,
    )
