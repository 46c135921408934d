"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs all we needed?"): gates from `x_t` only, so
the state follows a linear recurrence `h_t = a_t ⊙ h_{t-1} + b_t` trainable in parallel::

    minGRU:   z_t = σ(W_z x_t + b_z)   h̃_t = g(W_h x_t + b_h)
              a_t = 1 - z_t,  b_t = z_t ⊙ h̃_t
    minLSTM:  f_t = σ(W_f x_t + b_f)   i_t = σ(W_i x_t + b_i)   h̃_t = g(W_h x_t + b_h)
              a_t = f_t / (f_t + i_t),  b_t = i_t / (f_t + i_t) ⊙ h̃_t

`g` is the paper's positive activation `g(x) = x + 0.5 (x ≥ 0), σ(x) (x < 0)` (its log-space
code's choice, default) or the identity (`candidate="linear"`, the paper's plain form). The
minLSTM's normalised gates are computed as `a_t = σ(log f_t - log i_t)`, `1 - a_t` (no division).

Parallel form (`Cell.parallel`, `unroll(..., impl="parallel")`): `jax.lax.associative_scan` over
the pairs `(a_t, b_t)` with `(a, b) ∘ (a', b') = (a a', a' b + b')` and `h_0` folded into
`b_1 ← a_1 h_0 + b_1`: O(log T) depth, O(T) work. We scan in linear space: `a_t ∈ (0, 1)`, so
the products only shrink (underflow to 0 is the exact limit), and `|h_t| ≤ max(|h_0|, max |h̃|)`;
the paper's log-space scan (Heinsen 2023) needs `h̃ > 0` and `h_0 > 0`, which linear space does not.

Nothing recurrent enters a nonlinear pre-activation, so TRUNCATED is FULL (the cell's
`truncation_cuts` is False). Kernels are `in → out`: `w: [I, 2H]` (blocks z, h̃) or `[I, 3H]`
(f, i, h̃).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import initializers
from lstm_jax.cells.protocol import Cell, cell_without_cuts, zero_state

Array = jax.Array


def g(x: Array) -> Array:
    """The paper's positive candidate activation: `x + 0.5` for `x ≥ 0`, `σ(x)` below (continuous
    with slope 1/4 → 1 at 0; `h̃ > 0`)."""
    return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


CANDIDATES: dict[str, Callable[[Array], Array]] = {"g": g, "linear": lambda x: x}
"""The activation of `h̃_t`, by name."""


class MinRNNParams(NamedTuple):
    w: Array  # [I, 2H] (minGRU: z, h̃) or [I, 3H] (minLSTM: f, i, h̃)
    b: Array  # [2H] or [3H]


@dataclasses.dataclass(frozen=True)
class MinRNNOptions:
    """kind: "mingru" or "minlstm". candidate: "g" or "linear" (`CANDIDATES`)."""

    kind: str = "mingru"
    candidate: str = "g"


BLOCKS: dict[str, int] = {"mingru": 2, "minlstm": 3}


def mingru(*, candidate: str = "g") -> Cell:
    """A minGRU `Cell`; carry `h: [*batch, H]`, `y_t = h_t`.

    >>> import jax, jax.numpy as jnp
    >>> cell = mingru()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> h, ys = cell.parallel(params, jnp.ones((6, 5, 3)), cell.initial_carry((5,), 4))
    >>> ys.shape
    (6, 5, 4)
    """
    return _cell(_options("mingru", candidate))


def minlstm(*, candidate: str = "g") -> Cell:
    """A minLSTM `Cell`; carry `h: [*batch, H]`, `y_t = h_t`."""
    return _cell(_options("minlstm", candidate))


def _options(kind: str, candidate: str) -> MinRNNOptions:
    if candidate not in CANDIDATES:
        raise ValueError(f"candidate must be one of {sorted(CANDIDATES)}, got {candidate!r}")
    return MinRNNOptions(kind, candidate)


@functools.cache
def _cell(options: MinRNNOptions) -> Cell:
    return cell_without_cuts(
        options,
        functools.partial(init, options),
        zero_state,
        functools.partial(step, options),
        sizes=functools.partial(sizes, options),
        parallel=functools.partial(parallel, options),
        family=options.kind,  # "mingru" or "minlstm"
    )


def sizes(options: MinRNNOptions, params: MinRNNParams) -> tuple[int, int]:
    """`(I, H)` from `w: [I, blocks·H]`."""
    w = getattr(params, "w", None)
    if not isinstance(params, MinRNNParams) or getattr(w, "ndim", None) != 2:
        raise TypeError(f"params must be MinRNNParams with a 2-D w, got {type(params).__name__}")
    return w.shape[0], w.shape[1] // BLOCKS[options.kind]


def init(
    options: MinRNNOptions, key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32
) -> MinRNNParams:
    """LeCun-normal `w`, zero biases."""
    initializers.check_sizes(input_size, hidden_size)
    out = BLOCKS[options.kind] * hidden_size
    return MinRNNParams(
        w=initializers.input_kernel(key, input_size, out, dtype), b=jnp.zeros((out,), dtype)
    )


def coefficients(options: MinRNNOptions, params: MinRNNParams, x: Array) -> tuple[Array, Array]:
    """`(a_t, b_t)` of `h_t = a_t ⊙ h_{t-1} + b_t` from `x: [..., I]`; each `[..., H]`."""
    pre = x @ params.w + params.b
    if options.kind == "mingru":
        z_pre, h_pre = jnp.split(pre, 2, axis=-1)
        z = jax.nn.sigmoid(z_pre)
        return 1 - z, z * CANDIDATES[options.candidate](h_pre)
    f_pre, i_pre, h_pre = jnp.split(pre, 3, axis=-1)
    # f / (f + i) = σ(log f - log i), computed without dividing
    a = jax.nn.sigmoid(jax.nn.log_sigmoid(f_pre) - jax.nn.log_sigmoid(i_pre))
    return a, (1 - a) * CANDIDATES[options.candidate](h_pre)


def step(options: MinRNNOptions, params: MinRNNParams, h: Array, x: Array) -> tuple[Array, Array]:
    """`(h_{t-1}, x_t) -> (h_t, h_t)`; `x: [*batch, I]`, `h: [*batch, H]`."""
    a, b = coefficients(options, params, x)
    h = a * h + b
    return h, h


def parallel(
    options: MinRNNOptions,
    params: MinRNNParams,
    xs: Array,
    h0: Array,
    valid: Array | None = None,
) -> tuple[Array, Array]:
    """The associative scan over a time-major sequence: `xs: [T, *batch, I]`, `h0: [*batch, H]`
    -> `(h_T, hs: [T, *batch, H])`, equal to scanning `step`. Where `valid: [T, *batch]` is
    false the step is the identity (`a = 1, b = 0`) and its output 0, as the scan's `lengths`."""
    a, b = coefficients(options, params, xs)
    if valid is not None:
        a = jnp.where(valid[..., None], a, 1.0)
        b = jnp.where(valid[..., None], b, 0.0)
    b = b.at[0].add(a[0] * h0)

    def combine(left: tuple[Array, Array], right: tuple[Array, Array]) -> tuple[Array, Array]:
        a_l, b_l = left
        a_r, b_r = right
        return a_l * a_r, a_r * b_l + b_r

    _, hs = jax.lax.associative_scan(combine, (a, b), axis=0)
    final = hs[-1]
    return final, hs if valid is None else jnp.where(valid[..., None], hs, 0.0)
