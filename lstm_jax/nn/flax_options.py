"""flax's layer arguments for the linen and nnx wrappers: the initialisers `kernel_init`,
`recurrent_kernel_init`, `bias_init` (`with_inits`) and the computation `dtype` (`cast`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax.nnx.nn.dtypes import promote_dtype

from lstm_jax.cells.protocol import Cell

Array = jax.Array
Initializer = Callable[[Array, tuple[int, ...], Any], Array]  # flax's `init(key, shape, dtype)`

INIT_FIELDS: tuple[tuple[str, str], ...] = (
    ("w", "kernel_init"),
    ("r", "recurrent_kernel_init"),
    ("b", "bias_init"),
    ("b_rh", "bias_init"),
)
"""Which params leaf each flax initialiser draws, by the field names every cell's params share:
`w` the input kernel `[I, ·]`, `r` the recurrent kernel (`[H, ·]`; the sLSTM's `[4, NH, D, D]`),
`b` the bias and `b_rh` the GRU's bias inside the reset product. Other leaves (peepholes,
`r_gate`) and absent fields (the mLSTM and min-RNNs have no `r`) keep the cell's own init."""


def with_inits(
    cell: Cell,
    *,
    kernel_init: Initializer | None = None,
    recurrent_kernel_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    """`cell` whose `init` redraws the leaves `INIT_FIELDS` assigns to the given initialisers.

    None keeps the cell's default (all None: `cell` itself). Each initialiser is called as
    `init(fold_in(key, k), leaf.shape, dtype)`, `k` the field's place in `INIT_FIELDS`.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> cell = with_inits(lstm_jax.gru(), bias_init=jax.nn.initializers.ones)
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> params.b.shape, float(params.b.sum()), float(params.b_rh.sum())
    ((12,), 12.0, 4.0)
    """
    inits = {
        "kernel_init": kernel_init,
        "recurrent_kernel_init": recurrent_kernel_init,
        "bias_init": bias_init,
    }
    if all(fn is None for fn in inits.values()):
        return cell

    def init(key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32) -> Any:
        params = cell.init(key, input_size, hidden_size, dtype)
        drawn = {}
        for k, (field, name) in enumerate(INIT_FIELDS):
            leaf, fn = getattr(params, field, None), inits[name]
            if leaf is None or fn is None:
                continue
            value = jnp.asarray(fn(jax.random.fold_in(key, k), leaf.shape, dtype), dtype)
            if value.shape != leaf.shape:
                raise ValueError(
                    f"{name} gave shape {value.shape} for params.{field}, expected {leaf.shape}"
                )
            drawn[field] = value
        return params._replace(**drawn)

    return cell._replace(init=init)


def cast(dtype: Any, *trees: Any) -> tuple[Any, ...]:
    """Every leaf of `trees` cast to the computation `dtype` (flax's `promote_dtype`); with
    `dtype=None` the trees come back unchanged, and the cells compute in the promoted dtype of
    their inputs and params, as the driver does.

    >>> import jax.numpy as jnp
    >>> xs, params = cast(jnp.bfloat16, jnp.ones(2), {"w": jnp.ones(3)})
    >>> xs.dtype, params["w"].dtype
    (dtype(bfloat16), dtype(bfloat16))
    """
    if dtype is None:
        return trees
    leaves, treedef = jax.tree.flatten(trees)
    return jax.tree.unflatten(treedef, promote_dtype(tuple(leaves), dtype=dtype))
