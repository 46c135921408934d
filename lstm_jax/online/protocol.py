"""The interface every online gradient algorithm implements, and the loop that runs one.

An online algorithm computes the gradient of `L = Σ_t ℓ_t(y_t)` forward in time, alongside the
forward pass, with a state whose size does not depend on the sequence length. Modelled on
`optax.GradientTransformation`, it is a NamedTuple of pure functions of explicit state::

    state = algorithm.init(params, carry_0)
    state, out = algorithm.step(params, state, x_t, loss_t)   # loss_t: y_t [*batch, H] -> []
    out.loss, out.output, out.grads                           # ℓ_t, y_t, this step's dℓ_t/dθ
    carry_t = algorithm.carry(state)
    state = algorithm.reset(algorithm.init(params, carry_0), state, flags)   # flags: [*batch]

`grads` is the algorithm's value (exact, truncated, or an estimate) of `dℓ_t/dθ` as a pytree
shaped like the cell's params; summed over t it is the algorithm's gradient of `L`. Every
function composes with `jax.jit`, `jax.vmap` and `lax.scan` (`accumulate` runs one over a
sequence in one scan). The readout that turns `y_t` into a prediction lives inside `loss_t`:
its own gradient is local in time and the caller's.

`reset` restarts chosen sequences (streams) of a batch from a fresh state: each algorithm
declares which parts of its state belong to one stream (its carry, traces, influence matrix)
and which are shared by all and run on (SnAp's mask, UORO's random key).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells.protocol import Carry, Params
from lstm_jax.driver import checks

Array = jax.Array
StepLoss = Callable[[Array], Array]  # y_t [*batch, H] -> the step's loss, a scalar
ResetFn = Callable[[Any, Any, Array], Any]  # (fresh_state, state, flags [*batch] bool) -> state


class OnlineStep(NamedTuple):
    """What one step of an online algorithm returns beside its new state."""

    loss: Array  # [] ℓ_t
    output: Array  # [*batch, H] y_t
    grads: Params  # the algorithm's dℓ_t/dθ, shaped like the cell's params


class OnlineAlgorithm(NamedTuple):
    """An online gradient algorithm bound to one cell (module docstring).

    Attributes:
      init: `(params, carry_0) -> state`.
      step: `(params, state, x_t [*batch, I], loss_t) -> (state, OnlineStep)`.
      carry: `state -> carry_t`, the cell's carry inside the state.
      reset: `(fresh_state, state, flags [*batch] bool) -> state`: `fresh_state` (from `init`)
        in the sequences where `flags` is set, `state` elsewhere, for the state's per-sequence
        parts; its shared parts (`reset_fields` names the others) are `state`'s.
    """

    init: Callable[[Params, Carry], Any]
    step: Callable[[Params, Any, Array, StepLoss], tuple[Any, OnlineStep]]
    carry: Callable[[Any], Carry]
    reset: ResetFn


def reset_streams(fresh: Any, state: Any, flags: Array) -> Any:
    """`fresh` where `flags: [*batch]` is set, `state` elsewhere, leaf by leaf; every leaf of
    both is per sequence, `[*batch, ...]`.

    >>> import jax.numpy as jnp
    >>> reset_streams(jnp.zeros((3, 2)), jnp.ones((3, 2)), jnp.array([True, False, True]))[:, 0]
    Array([0., 1., 0.], dtype=float32)
    """

    def pick(new: Array, old: Array) -> Array:
        mask = flags.reshape(flags.shape + (1,) * (old.ndim - flags.ndim))
        return jnp.where(mask, new, old)

    return jax.tree.map(pick, fresh, state)


def reset_fields(*per_stream: str) -> ResetFn:
    """The `reset` of an algorithm whose state is a NamedTuple: the fields named in `per_stream`
    are per sequence (`reset_streams`), the others shared by all sequences and kept.

    >>> import jax.numpy as jnp
    >>> from typing import NamedTuple
    >>> class State(NamedTuple):
    ...     carry: jnp.ndarray  # [B, H], per stream
    ...     key: jnp.ndarray  # shared
    >>> reset = reset_fields("carry")
    >>> flags = jnp.array([True, False])
    >>> new = reset(State(jnp.zeros((2, 1)), 0), State(jnp.ones((2, 1)), 7), flags)
    >>> new.carry[:, 0].tolist(), new.key
    ([0.0, 1.0], 7)
    """

    def reset(fresh: Any, state: Any, flags: Array) -> Any:
        fields = {f: reset_streams(getattr(fresh, f), getattr(state, f), flags) for f in per_stream}
        return state._replace(**fields)

    return reset


class Accumulated(NamedTuple):
    """`accumulate`'s result: the sums over the sequence, and the final state."""

    loss: Array  # [] Σ_t ℓ_t
    grads: Params  # Σ_t dℓ_t/dθ
    state: Any  # the algorithm's state after the last step


def accumulate(
    algorithm: OnlineAlgorithm,
    params: Params,
    xs: Array,
    targets: Any,
    loss_fn: Callable[[Array, Any], Array],
    carry: Carry,
) -> Accumulated:
    """Runs `algorithm` over time-major `xs: [T, *batch, I]` from `carry` in one `lax.scan`,
    with `ℓ_t = loss_fn(y_t, target_t)`, `targets` a pytree of `[T, ...]` leaves (a weight
    inside it puts the loss at chosen steps only). Returns Σ ℓ_t, Σ dℓ_t/dθ and the state.

    The inputs are checked first (`check_inputs`): a ValueError or TypeError names the bad one.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> from lstm_jax.online.rtrl import rtrl
    >>> cell = lstm_jax.rnn()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> xs, targets = jnp.ones((6, 2, 3)), jnp.zeros((6, 2, 4))
    >>> out = accumulate(rtrl(cell), params, xs, targets, lambda y, t: jnp.sum((y - t) ** 2),
    ...                  cell.initial_carry((2,), 4))
    >>> out.grads.r.shape, out.loss.shape
    ((4, 4), ())
    """
    check_inputs(algorithm, params, xs, targets, carry)

    def body(loop, inputs):
        state, loss, grads = loop
        x, target = inputs
        state, out = algorithm.step(params, state, x, lambda y: loss_fn(y, target))
        return (state, loss + out.loss, jax.tree.map(jnp.add, grads, out.grads)), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    first = (algorithm.init(params, carry), jnp.zeros((), xs.dtype), zeros)
    (state, loss, grads), _ = jax.lax.scan(body, first, (xs, targets))
    return Accumulated(loss, grads, state)


def check_inputs(
    algorithm: OnlineAlgorithm, params: Params, xs: Any, targets: Any, carry: Carry
) -> None:
    """`accumulate`'s inputs, before its scan is traced: `xs` a float `[T, *batch, I]` array,
    every leaf of `targets` `[T, ...]`, and `params`, `carry` and `xs` fit for one step of
    `algorithm` (abstract evaluation of its `init` and `step` with a sum as the loss, so
    `loss_fn`'s own errors stay its own). The algorithm holds no cell to compare with, so a
    failing step is reported with the shapes received.

    >>> import jax.numpy as jnp, lstm_jax
    >>> from lstm_jax.online.rtrl import rtrl
    >>> cell = lstm_jax.rnn()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> check_inputs(rtrl(cell), params, jnp.ones((6, 3)), jnp.zeros((5, 4)), jnp.zeros(4))
    Traceback (most recent call last):
    ValueError: targets has shape (5, 4): its leading (time) axis must be T=6, the steps of xs
    """
    checks.check_float_array("xs", xs)
    if xs.ndim < 2 or xs.shape[0] == 0:
        raise ValueError(f"xs must be time-major [T, *batch, I] with T >= 1, got shape {xs.shape}")
    steps = xs.shape[0]
    for path, leaf in jax.tree_util.tree_flatten_with_path(targets)[0]:
        shape = tuple(getattr(leaf, "shape", ()))
        if not shape or shape[0] != steps:
            raise ValueError(
                f"targets{jax.tree_util.keystr(path)} has shape {shape}: its leading (time) "
                f"axis must be T={steps}, the steps of xs"
            )

    def one_step(params: Params, carry: Carry, x: Array) -> Any:
        state = algorithm.init(params, carry)
        return algorithm.step(params, state, x, jnp.sum)

    try:
        jax.eval_shape(one_step, params, carry, xs[0])
    except (TypeError, ValueError, AttributeError, IndexError) as err:
        raise ValueError(
            f"params {_shapes(params)}, carry {_shapes(carry)} and xs {tuple(xs.shape)} do not "
            "fit this algorithm's cell: the params must come from its `init(key, I, H)`, the "
            "carry from its `initial_carry((B,), H)`, and xs be [T, B, I]; one step failed "
            f"with {type(err).__name__}: {err}"
        ) from err


def _shapes(tree: Any) -> str:
    """`tree` with each array replaced by its shape: what a message shows of params or carry."""
    return repr(jax.tree.map(lambda a: tuple(getattr(a, "shape", ())), tree))
