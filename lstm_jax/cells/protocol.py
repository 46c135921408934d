"""The cell protocol: a recurrent cell as a NamedTuple of pure functions, and the richer
`Derivation` NamedTuple a cell fills in to carry its own hand-derived backward pass.

Modelled on `optax.GradientTransformation`: no classes with hidden state, only functions of
explicit params and carry, so that `jax.grad`, `jax.vmap`, `jax.jit` and `lax.scan` compose. A
richer capability is a richer NamedTuple (`Cell.derivation`), never a type switch: the generic
code (`lstm_jax.driver`, `lstm_jax.backward`, `lstm_jax.online`, `lstm_jax.diagnostics`) reads
only these fields and never asks which cell it holds. Code derived for one cell family (the
1997 traces for the LSTM, RFLO for the Elman RNN, the LSTM's Jacobian terms) declares that
family and reaches the cell's options through `Family.options`, never by a type check. A cell
without a derivation runs everywhere through the scan path (autodiff through `step`).

A derivation splits one step at the input matmul, which the fused unroll hoists out of the
loop (one `[T·B, I] × [I, G]` product for all steps), and states the step's backward pass::

    xw_t = project(params, x_t)                                    x_t W   [*batch, G], no bias
    carry_t, acts_t, saved_t = forward(params, carry_{t-1}, xw_t)  the rest of the step
    dcarry_{t-1}, dpre_t, dsaved_t
        = delta(params, carry_{t-1}, carry_t, acts_t, saved_t, dcarry_t, dy_t, mode)
    dparams = grads(params, x, carry_prev, carry, dpre, dsaved)    summed over leading axes
    dx = input_grad(params, dpre)                                  dpre Wᵀ

`acts_t` has the shape of `xw_t`: the step's activations, one per pre-activation (the LSTM's
gate activations, the Elman RNN's `a_t`), written over `xw_t` in place by the fused unroll;
`dpre_t` is `∂L/∂xw_t`, the gradient of the pre-activations, written over `acts_t` in turn.
`saved_t` is anything else the step saves for its backward pass (a pytree or None);
`dsaved_t`, shaped like it, is what `grads` reads in its place (∂L/∂saved_t, or `saved_t`
itself where `Derivation.delta_keeps_saved`). `dcarry_t` is ∂L/∂carry_t from the steps after
t (and the final carry's cotangent), `dy_t` the gradient of the step's output. `mode` is a
`Gradient`: under `TRUNCATED` `delta` drops exactly the paths `truncated_step` cuts. `grads`
and `input_grad` sum over every leading axis, so they serve one step (`[*batch, ·]`) or a
whole sequence (`[T, *batch, ·]`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from lstm_jax.cells import checks
from lstm_jax.modes import Gradient, cut_gate_recurrence, cut_nothing

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
ParallelFn = Callable[..., tuple[Carry, Array]]
SizesFn = Callable[[Params], tuple[int, int]]
OutputFn = Callable[[Carry], Array]


class Derivation(NamedTuple):
    """A cell's hand-derived backward pass, split as the module docstring shows.

    Attributes:
      project: `(params, xs [..., I]) -> xw [..., G]`, the input matmul `x W` (no bias).
      forward: `(params, carry_{t-1}, xw_t) -> (carry_t, acts_t, saved_t)`.
      delta: `(params, carry_{t-1}, carry_t, acts_t, saved_t, dcarry_t, dy_t, mode) ->
        (dcarry_{t-1}, dpre_t, dsaved_t)`: one step backwards, `dpre_t = ∂L/∂xw_t`.
      grads: `(params, xs, carries_prev, carries, dpres, dsaveds) -> dparams`.
      input_grad: `(params, dpres) -> dxs`, `dpre Wᵀ`.
      delta_keeps_saved: True where `delta` returns `saved_t` itself as `dsaved_t` (the GRU
        with its reset before the matmul), so the fused backward pass need not write it back;
        False (the default, always correct) writes back whatever `delta` returns.
    """

    project: Callable[[Params, Array], Array]
    forward: Callable[[Params, Carry, Array], tuple[Carry, Array, Any]]
    delta: Callable[..., tuple[Carry, Array, Any]]
    grads: Callable[..., Params]
    input_grad: Callable[[Params, Array], Array]
    delta_keeps_saved: bool = False


def kernel_sizes(params: Any) -> tuple[int, int]:
    """`(input_size, hidden_size)` read from 2-D kernels `params.w: [I, ·]`, `params.r: [H, ·]`
    (the default `Cell.sizes`; a cell laid out otherwise passes its own)."""
    w, r = getattr(params, "w", None), getattr(params, "r", None)
    if getattr(w, "ndim", None) != 2 or getattr(r, "ndim", None) != 2:
        raise TypeError(
            "params must be the parameters of an lstm_jax cell (a NamedTuple with 2-D kernels "
            f"`w: [I, G·H]` and `r: [H, G·H]`), got {type(params).__name__}"
        )
    return w.shape[0], r.shape[0]


def carry_is_output(carry: Carry) -> Array:
    """The default `Cell.output`: the carry is the hidden state, `y_t = h_t`."""
    return carry


def carry_h(carry: Any) -> Array:
    """`Cell.output` for carries with an `h` field (LSTM, sLSTM, mLSTM): `y_t = carry_t.h`."""
    return carry.h


class Cell(NamedTuple):
    """A recurrent cell: pure functions plus the static options they were built from.

    Attributes:
      init: `init(key, input_size, hidden_size, dtype=float32) -> params`.
      initial_carry: `initial_carry(batch_shape, hidden_size, dtype=float32) -> carry`, all zeros;
        `batch_shape` is `()` for an unbatched sequence.
      step: `step(params, carry, x) -> (carry, y)` with `x: [*batch, I]`, `y: [*batch, H]`. The
        body signature of `jax.lax.scan`; differentiating through it gives the full gradient.
      truncated_step: the same forward computation as `step`, with the truncation through the
        gates (`lstm_jax.modes`): every recurrent input into a nonlinear
        pre-activation goes through `cut_gate_recurrence`, so only the linear carry paths (the
        LSTM cell state, the GRU's `(1 - u) ⊙ h`) carry error back in time.
      options: the hashable, frozen options the cell was built from (read only by the cell's
        own module, and by code derived for its family through `Family.options`).
      sizes: `sizes(params) -> (input_size, hidden_size)`.
      output: `output(carry_t) -> y_t`, a selection of the carry (`h_t` for every cell here).
      derivation: the hand-derived backward pass (`Derivation`), or None: the cell then runs
        through the scan path only.
      parallel: `parallel(params, xs, carry, valid=None) -> (carry_T, ys)` over a whole
        time-major sequence `xs: [T, *batch, I]`, the same function as scanning `step` but
        computed across time at once (the mLSTM's quadratic form, the min-RNNs' associative
        scan), or None. Where `valid: [T, *batch]` is false a step leaves the carry unchanged
        and outputs zeros (the driver's `lengths`). Its gradient is FULL's; it serves TRUNCATED
        only for cells whose `truncation_cuts` is False.
      truncation_cuts: whether `truncated_step` cuts any path (False: nothing recurrent enters
        a nonlinear pre-activation, TRUNCATED is FULL, as for the mLSTM and the min-RNNs).
      family: the family the cell belongs to ("lstm", "elman", "gru", "slstm", "mlstm",
        "mingru", "minlstm"; None for a user's cell), read only by code derived for one family
        (the 1997 traces, RFLO, the LSTM's Jacobian views) through `Family`. Generic code never
        reads it.
    """

    init: InitFn
    initial_carry: InitialCarryFn
    step: StepFn
    truncated_step: StepFn
    options: Hashable
    sizes: SizesFn = kernel_sizes
    output: OutputFn = carry_is_output
    derivation: Derivation | None = None
    parallel: ParallelFn | None = None
    truncation_cuts: bool = True
    family: str | None = None

    def step_for(self, mode: Gradient) -> StepFn:
        """`step` for `Gradient.FULL`, `truncated_step` for `Gradient.TRUNCATED` (resolve a
        string first with `modes.resolve_gradient`)."""
        return self.step if mode is Gradient.FULL else self.truncated_step


class Family(NamedTuple):
    """A cell family that some code is derived for (the 1997 traces for the LSTM, RFLO for the
    Elman RNN): `name` is what its cells declare as `Cell.family`, `cells` the same in words.
    The family is checked in one place, `holds` (which `options` and the online registry use),
    and that code reaches a cell's options only through `options`.
    """

    name: str  # "lstm"
    cells: str  # "an LSTM cell"

    def holds(self, cell: Cell) -> bool:
        """Whether `cell` declares this family.

        >>> from lstm_jax.cells.elman import rnn
        >>> Family("elman", "an Elman RNN").holds(rnn()), Family("lstm", "").holds(rnn())
        (True, False)
        """
        return cell.family == self.name

    def options(self, cell: Cell, purpose: str) -> Any:
        """`cell.options` for code derived for this family; for a cell of another family, a
        TypeError "`purpose` needs `cells`, got <its options' type>".

        >>> from lstm_jax.cells.gru import gru
        >>> Family("elman", "an Elman RNN").options(gru(), "RFLO")
        Traceback (most recent call last):
        TypeError: RFLO needs an Elman RNN, got GRUOptions
        """
        if not self.holds(cell):
            raise TypeError(f"{purpose} needs {self.cells}, got {type(cell.options).__name__}")
        return cell.options


def zero_state(batch_shape: tuple[int, ...], hidden_size: int, dtype: Any = jnp.float32) -> Array:
    """Zeros of shape `[*batch_shape, H]`: the initial state of every cell here."""
    return jnp.zeros((*tuple(batch_shape), hidden_size), dtype)


def checked_init(init: InitFn) -> InitFn:
    """`init` behind `cells.checks.check_init`: sizes, dtype and the parameters' memory are
    checked before XLA sees them (the builders here wrap every cell's `init`; a cell built
    directly as `Cell(...)` can wrap its own).

    >>> import jax
    >>> from lstm_jax.cells.elman import rnn
    >>> init = checked_init(rnn().init)
    >>> init(jax.random.key(0), 3, 0)
    Traceback (most recent call last):
    ValueError: hidden_size must be a positive int, got 0
    """

    def checked(key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32) -> Params:
        checks.check_init(init, input_size, hidden_size, dtype)
        return init(key, input_size, hidden_size, dtype)

    return checked


def checked_initial_carry(initial_carry: InitialCarryFn) -> InitialCarryFn:
    """`initial_carry` behind `cells.checks.check_batch_shape` (a bare int as `batch_shape`
    would otherwise fail inside with "'int' object is not iterable").

    >>> checked_initial_carry(zero_state)((2,), 3).shape
    (2, 3)
    """

    def checked(batch_shape: tuple[int, ...], hidden_size: int, dtype: Any = jnp.float32) -> Carry:
        checks.check_batch_shape(batch_shape, hidden_size)
        return initial_carry(batch_shape, hidden_size, dtype)

    return checked


def cell_from_step(
    options: Hashable,
    init: InitFn,
    initial_carry: InitialCarryFn,
    step: Callable[..., Any],
    **fields: Any,
) -> Cell:
    """A `Cell` from a step `step(params, carry, x, cut=...)`: `step` cuts nothing
    (`modes.cut_nothing`), `truncated_step` cuts with `modes.cut_gate_recurrence`. `fields`
    are the optional `Cell` fields (`sizes`, `output`, `derivation`, `family`); `init` and
    `initial_carry` are wrapped in their argument checks (`checked_init`,
    `checked_initial_carry`)."""
    return Cell(
        init=checked_init(init),
        initial_carry=checked_initial_carry(initial_carry),
        step=functools.partial(step, cut=cut_nothing),
        truncated_step=functools.partial(step, cut=cut_gate_recurrence),
        options=options,
        **fields,
    )


def cell_without_cuts(
    options: Hashable,
    init: InitFn,
    initial_carry: InitialCarryFn,
    step: StepFn,
    **fields: Any,
) -> Cell:
    """A `Cell` whose step has no recurrent input into a nonlinear pre-activation (the mLSTM,
    the min-RNNs): TRUNCATED has nothing to cut, so `truncated_step` is `step` and
    `truncation_cuts` is False (what the driver reads to let TRUNCATED use the cell's parallel
    form). `fields` and the checks as `cell_from_step`."""
    return Cell(
        init=checked_init(init),
        initial_carry=checked_initial_carry(initial_carry),
        step=step,
        truncated_step=step,
        options=options,
        truncation_cuts=False,
        **fields,
    )


def sum_leading(a: Array) -> Array:
    """Sums every leading axis of `[..., n]` (the batch, and time for a whole sequence)."""
    return a.reshape(-1, a.shape[-1]).sum(0)


def outer_sum(a: Array, b: Array) -> Array:
    """`Σ a ⊗ b` over every leading axis: `[..., m], [..., n] -> [m, n]` (a weight gradient), as
    one `[m, N] × [N, n]` matmul over the flattened leading axes."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def kernel_input_grad(params: Any, dpres: Array) -> Array:
    """`dpre Wᵀ` for cells whose input kernel is `params.w: [I, G]`."""
    return dpres @ params.w.T


def kernel_project(params: Any, xs: Array) -> Array:
    """`x W` for cells whose input kernel is `params.w: [I, G]`."""
    return xs @ params.w
