"""Weight initialisers shared by the cells.

Kernels are stored `in → out` (`x @ w`, as flax and optax users expect), so the equations' matrices
are their transposes: `W_* = w[:, block]ᵀ`, `R_* = r[:, block]ᵀ`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def check_sizes(input_size: Any, hidden_size: Any) -> None:
    """A cell's `init` sizes must be positive ints: a ValueError naming the bad one."""
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def input_kernel(key: Array, input_size: int, out: int, dtype: Any) -> Array:
    """LeCun normal `[I, out]` (variance 1/I), flax's default for the input kernel."""
    return jax.random.normal(key, (input_size, out), dtype) / jnp.sqrt(max(input_size, 1))


def recurrent_kernel(
    key: Array,
    hidden_size: int,
    blocks: int,
    dtype: Any,
    widths: tuple[int, ...] | None = None,
) -> Array:
    """`[H, blocks·H]`: one orthogonal `H × H` matrix per gate block (flax's default); with
    `widths`, blocks `H × width` with orthonormal columns (an LSTM's memory-block gates).

    Orthogonal recurrent matrices have all singular values 1, so at initialisation the Elman
    RNN's gradient neither explodes nor vanishes through `R` alone (Saxe et al. 2014).
    """
    init = jax.nn.initializers.orthogonal()
    keys = jax.random.split(key, blocks)
    widths = widths or (hidden_size,) * blocks
    # LAPACK's QR has no bfloat16/float16 kernels: factor in float32 (float64 stays), then cast.
    qr_dtype = jnp.float64 if jnp.dtype(dtype) == jnp.float64 else jnp.float32
    return jnp.concatenate(
        [init(k, (hidden_size, n), qr_dtype) for k, n in zip(keys, widths, strict=True)], axis=1
    ).astype(dtype)


def uniform(key: Array, shape: tuple[int, ...], scale: float, dtype: Any) -> Array:
    """U(-scale, scale)."""
    return jax.random.uniform(key, shape, dtype, -scale, scale)


def chrono_forget_bias(key: Array, hidden_size: int, t_max: int, dtype: Any) -> Array:
    """Chrono initialisation (Tallec & Ollivier 2018): `b_f ~ log U(1, T_max - 1)`.

    The forget gate then starts with characteristic memory times spread over `[1, T_max]`;
    the caller sets `b_i = -b_f`.
    """
    if t_max < 3:
        raise ValueError(
            f"chrono needs T_max >= 3 (U(1, T_max - 1) must be non-empty), got {t_max}"
        )
    return jnp.log(jax.random.uniform(key, (hidden_size,), dtype, 1.0, t_max - 1.0))


def sparse_recurrent(
    key: Array, hidden_size: int, connections: int, radius: float, dtype: Any
) -> Array:
    """`[H, H]` with `min(connections, H)` nonzero N(0, 1) incoming weights per unit (column),
    rescaled to spectral radius `radius` (Sutskever et al. 2013; Pascanu et al. 2013's "smart
    tanh": 15 connections, radius 0.95). The eigenvalues come from LAPACK: a CPU computation."""
    k_pick, k_val = jax.random.split(key)
    n = min(connections, hidden_size)
    # per column, n distinct rows: the first n of a random permutation
    order = jnp.argsort(jax.random.uniform(k_pick, (hidden_size, hidden_size)), axis=0)
    mask = jnp.zeros((hidden_size, hidden_size), bool)
    mask = mask.at[order[:n], jnp.arange(hidden_size)[None, :]].set(True)
    r = jnp.where(mask, jax.random.normal(k_val, (hidden_size, hidden_size)), 0.0)
    spectral = jnp.max(
        jnp.abs(jnp.linalg.eigvals(r.astype(jnp.float32 if dtype != jnp.float64 else dtype)))
    )
    return (r * (radius / spectral)).astype(dtype)
