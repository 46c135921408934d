"""Gradient modes and the named cuts that implement them.

Each cut is the identity in the forward pass; its docstring says which backward paths it removes.
Forward values never depend on the gradient mode.

- **Full BPTT** (`Gradient.FULL`): autodiff through the `lax.scan`, the exact gradient (Graves &
  Schmidhuber 2005 brought it to LSTM training).
- **Truncated through the gates** (`Gradient.TRUNCATED`; Hochreiter & Schmidhuber 1997, appendix
  A.1; Gers et al. 2000, 2002): error arriving at any gate or cell-input pre-activation is not
  propagated back in time; only the cell state carries error backwards, scaled by the forget
  gate. The cells apply `cut_gate_recurrence` to `h_{t-1}` wherever it enters `z̄, ī, f̄, ō`, to
  the peephole inputs (`c_{t-1}` into `ī, f̄`, `c_t` into `ō`) and to the FGR gate recurrence.
  The general rule for any cell: cut every recurrent input into a nonlinear pre-activation, keep
  the linear carry paths (the GRU's `(1 - u_t) ⊙ h_{t-1}` survives; in an Elman RNN nothing
  does: the one-step gradient). Weight gradients are still summed over every step.
- **Windowed truncated BPTT** (`cut_window`, `unroll(window=k)`): the forward state flows through
  the whole sequence, the gradient through the carry is cut every `k` steps (TensorFlow's
  `num_steps`); a stateful trainer hands one batch's final carry, gradient-free, to the next.
- **Online truncated gradient**: the 1997 algorithm, forward in time (`online.traces`).
"""

from __future__ import annotations

import enum
from typing import Any

import jax
import jax.numpy as jnp


class Gradient(enum.Enum):
    """How the gradient flows back through time in `lstm_jax.unroll`.

    FULL: exact backpropagation through time (plain autodiff through the scan).
    TRUNCATED: the original LSTM gradient (Hochreiter & Schmidhuber 1997, appendix A.1; Gers et
      al. 2000): error reaching a gate or cell-input pre-activation is not sent back in time, only
      the linear carry paths are kept (see `cut_gate_recurrence`).
    """

    FULL = "full"
    TRUNCATED = "truncated"


def resolve_gradient(mode: Gradient | str) -> Gradient:
    """`mode` as a `Gradient`, accepting the strings "full" and "truncated": public entry points
    resolve it once, and everything below them takes the `Gradient` as it is."""
    if isinstance(mode, Gradient):
        return mode
    valid = [m.value for m in Gradient]
    if isinstance(mode, str) and mode.lower() in valid:
        return Gradient(mode.lower())
    raise ValueError(f"gradient must be one of {valid} or a lstm_jax.Gradient, got {mode!r}")


def cut_nothing(x: Any) -> Any:
    """The full-gradient 'cut': cuts nothing (identity forward and backward).

    >>> cut_nothing(3.0)
    3.0
    """
    return x


def cut_gate_recurrence(x: Any) -> Any:
    """Truncation through the gates: `stop_gradient` on a recurrent input.

    Cells apply it to every recurrent quantity that enters a nonlinear pre-activation:
    `h_{t-1}` into the LSTM's `z̄, ī, f̄, ō` (and the GRU's and Elman RNN's pre-activations), the
    peephole inputs `c_{t-1}` into `ī, f̄` and `c_t` into `ō` (Gers et al. 2002: "no error signals
    are propagated back from gates via peephole connections to the CEC"), and the FGR's previous
    gate activations. It is never applied to the linear carry paths `c_{t-1} ⊙ f_t` (the constant
    error carousel) or the GRU's `(1 - u_t) ⊙ h_{t-1}`, which therefore carry all the error that
    travels back in time. Weight gradients are still summed over every step.
    """
    return jax.tree.map(jax.lax.stop_gradient, x)


def cut_window(carry: Any, boundary: jax.Array) -> Any:
    """Windowed truncated BPTT: cut the gradient through the carry at a window boundary.

    `boundary` is a boolean `[*batch]` mask (or a scalar); where it is true the carry entering the
    step is wrapped in `stop_gradient`, so no error flows from this window into earlier ones,
    while the forward state flows on unchanged (as TensorFlow's `num_steps` truncation does).
    """

    def cut(x: jax.Array) -> jax.Array:
        mask = jnp.reshape(boundary, jnp.shape(boundary) + (1,) * (x.ndim - jnp.ndim(boundary)))
        return jnp.where(mask, jax.lax.stop_gradient(x), x)

    return jax.tree.map(cut, carry)
