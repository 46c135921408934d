"""The `Cell` abstraction: a recurrent cell as a NamedTuple of pure functions.

Modelled on `optax.GradientTransformation`: no classes with hidden state, only functions of
explicit params and carry, so that `jax.grad`, `jax.vmap`, `jax.jit` and `lax.scan` compose.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any  # a pytree, one NamedTuple per cell kind
Carry = Any  # a pytree of [*batch, ...] arrays


class InitFn(Protocol):
    def __call__(
        self, key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32
    ) -> Params: ...


class InitialCarryFn(Protocol):
    def __call__(
        self, batch_shape: tuple[int, ...], hidden_size: int, dtype: Any = jnp.float32
    ) -> Carry: ...


StepFn = Callable[[Params, Carry, Array], tuple[Carry, Array]]


class Cell(NamedTuple):
    """A recurrent cell: pure functions plus the static options they were built from.

    Attributes:
      init: `init(key, input_size, hidden_size, dtype=float32) -> params`.
      initial_carry: `initial_carry(batch_shape, hidden_size, dtype=float32) -> carry`, all zeros;
        `batch_shape` is `()` for an unbatched sequence.
      step: `step(params, carry, x) -> (carry, y)` with `x: [*batch, I]`, `y: [*batch, H]`. The
        body signature of `jax.lax.scan`; differentiating through it gives the full gradient.
      truncated_step: the same forward computation as `step`, with the SPEC §3 truncation: every
        recurrent input into a nonlinear pre-activation goes through
        `gradients.cut_gate_recurrence`, so only the linear carry paths (the LSTM cell state, the
        GRU's `(1 - u) ⊙ h`) carry error back in time.
      options: the hashable, frozen options the cell was built from (`ElmanOptions`,
        `LSTMOptions` or `GRUOptions`); the analytic code dispatches on its type.
    """

    init: InitFn
    initial_carry: InitialCarryFn
    step: StepFn
    truncated_step: StepFn
    options: Hashable

    def step_for(self, gradient: Any) -> StepFn:
        """`step` for `Gradient.FULL` / "full", `truncated_step` for "truncated"."""
        from lstm_jax.gradients import Gradient, as_gradient  # gradients does not import cell

        return self.step if as_gradient(gradient) is Gradient.FULL else self.truncated_step


def zero_state(batch_shape: tuple[int, ...], hidden_size: int, dtype: Any = jnp.float32) -> Array:
    """Zeros of shape `[*batch_shape, H]`: the initial state of every cell here."""
    return jnp.zeros((*tuple(batch_shape), hidden_size), dtype)


def make_cell(
    options: Hashable, init: InitFn, initial_carry: InitialCarryFn, step: Callable[..., Any]
) -> Cell:
    """A `Cell` from a step `step(params, carry, x, cut=...)`: `step` cuts nothing
    (`gradients.keep`), `truncated_step` cuts with `gradients.cut_gate_recurrence`."""
    from lstm_jax.gradients import cut_gate_recurrence, keep  # gradients does not import cell

    return Cell(
        init=init,
        initial_carry=initial_carry,
        step=functools.partial(step, cut=keep),
        truncated_step=functools.partial(step, cut=cut_gate_recurrence),
        options=options,
    )
