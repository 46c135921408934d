"""What the xLSTM cells (`cells.slstm`, `cells.mlstm`) share about their options: the forget-gate
types of exponential gating (`log f_t` from `f̄_t`), and heads that must divide the hidden size."""

from __future__ import annotations

from collections.abc import Callable

import jax

from lstm_jax.cells.checks import check_number, shown

Array = jax.Array

FORGET_GATES: dict[str, Callable[[Array], Array]] = {
    "sigmoid": jax.nn.log_sigmoid,  # log f = log σ(f̄)
    "exp": lambda f_pre: f_pre,  # log f = f̄
}
"""`log f_t` from `f̄_t`, by forget-gate type."""


def checked_options(
    heads: int, forget_gate: str, forget_bias: tuple[float, float]
) -> tuple[int, str, tuple[float, float]]:
    """`(heads, forget_gate, (low, high))` as a builder's options, or a ValueError naming the bad
    one: heads a positive int, forget_gate a key of `FORGET_GATES`, forget_bias a pair of
    finite numbers.

    >>> checked_options(2, "exp", [3, 6])
    (2, 'exp', (3.0, 6.0))
    >>> checked_options(1, "sigmoid", 3.0)
    Traceback (most recent call last):
    ValueError: forget_bias must be a pair (low, high) of finite numbers, got float 3.0
    """
    if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
        raise ValueError(f"heads must be a positive int, got {heads!r}")
    if not isinstance(forget_gate, str) or forget_gate not in FORGET_GATES:
        raise ValueError(f"forget_gate must be one of {sorted(FORGET_GATES)}, got {forget_gate!r}")
    if not isinstance(forget_bias, tuple | list) or len(forget_bias) != 2:
        raise ValueError(
            f"forget_bias must be a pair (low, high) of finite numbers, got {shown(forget_bias)}"
        )
    low, high = (check_number(f"forget_bias[{k}]", v) for k, v in enumerate(forget_bias))
    return heads, forget_gate, (low, high)


def head_size(cell: str, heads: int, hidden_size: int, per_head: str) -> int:
    """`D = H / NH`; a ValueError naming `cell` and what a head holds when NH does not divide H."""
    if hidden_size % heads:
        raise ValueError(
            f"{cell} heads={heads} must divide hidden_size={hidden_size} (each head {per_head})"
        )
    return hidden_size // heads
