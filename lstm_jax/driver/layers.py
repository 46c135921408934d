"""Layers composed from `unroll`: `bidirectional`, `stacked` and `init_stacked`."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax.cells.protocol import Carry, Cell, Params
from lstm_jax.driver.options import DEFAULTS, UnrollOptions
from lstm_jax.driver.scan import unroll

Array = jax.Array


def bidirectional(
    cell: Cell,
    params: tuple[Params, Params],
    xs: Array,
    carry: tuple[Carry, Carry] | None = None,
    *,
    options: UnrollOptions = DEFAULTS,
    lengths: Array | None = None,
    resets: Array | None = None,
    time_major: bool = True,
) -> tuple[tuple[Carry, Carry], Array]:
    """A forward and a backward `unroll` over the same inputs, outputs concatenated.

    Args:
      params: `(forward_params, backward_params)`.
      carry: `(forward_carry, backward_carry)`, or None for zeros.
      options: how both directions unroll (`UnrollOptions`).
      lengths, resets, time_major: as `unroll`'s (`lengths` makes the backward pass start at
        each sequence's last valid step).

    Returns:
      `((forward_final_carry, backward_final_carry), ys)`, `ys[..., :H]` forward and
      `ys[..., H:]` backward, both aligned with the inputs.
    """
    kwargs = {**options.as_kwargs(), "lengths": lengths, "resets": resets, "time_major": time_major}
    params = _pair("params", params)
    carry_fw, carry_bw = (None, None) if carry is None else _pair("carry", carry)
    with _context("forward direction"):
        c_fw, y_fw = unroll(cell, params[0], xs, carry_fw, **kwargs)
    with _context("backward direction"):
        c_bw, y_bw = unroll(cell, params[1], xs, carry_bw, reverse=True, **kwargs)
    return (c_fw, c_bw), jnp.concatenate([y_fw, y_bw], axis=-1)


def stacked(
    cell: Cell,
    params: Sequence[Params],
    xs: Array,
    carries: Sequence[Carry] | None = None,
    *,
    options: UnrollOptions = DEFAULTS,
    lengths: Array | None = None,
    resets: Array | None = None,
    time_major: bool = True,
    bidirectional: bool = False,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    key: Array | None = None,
) -> tuple[tuple[Carry, ...], Array]:
    """Layers of `unroll` (or of `bidirectional`), each fed the previous layer's outputs.

    Args:
      params: one entry per layer (a `(forward, backward)` pair per layer when
        `bidirectional`), e.g. from `init_stacked`.
      carries: one initial carry per layer, or None for zeros.
      dropout: the probability of zeroing each output of every layer but the last, element by
        element and step by step, before the next layer reads it (`torch.nn.LSTM`'s `dropout`);
        the kept values are scaled by `1 / (1 - dropout)`, so evaluation (rate 0) needs no
        rescaling. Above 0 with one layer it would drop nothing: a ValueError.
      input_dropout: the same on the inputs `xs` before the first layer.
      key: the PRNG key of the masks, needed when a rate is above 0: the input mask draws from
        `fold_in(key, 0)`, the mask after layer `l` from `fold_in(key, l + 1)`; the same key
        gives the same masks (training steps use a key per step; evaluation uses rate 0).
      options: how every layer unrolls (`UnrollOptions`: gradient, window, impl, ...).
      lengths, resets, time_major: as `unroll`'s, for every layer.

    Returns:
      `(final_carries, ys)`: a tuple with one final carry per layer, and the last layer's outputs.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> cell = lstm_jax.gru()
    >>> params = lstm_jax.init_stacked(cell, jax.random.key(0), 3, 8, num_layers=2)
    >>> finals, ys = stacked(cell, params, jnp.ones((5, 4, 3)), dropout=0.1, key=jax.random.key(1))
    >>> len(finals), ys.shape
    (2, (5, 4, 8))
    """
    if type(params) not in (tuple, list) or len(params) == 0:
        raise ValueError(
            "params must be a non-empty tuple or list with one entry per layer (see init_stacked),"
            f" got {type(params).__name__}"
        )
    if carries is not None and len(carries) != len(params):
        raise ValueError(f"carries has {len(carries)} entries but there are {len(params)} layers")
    data = {"lengths": lengths, "resets": resets, "time_major": time_major}
    layer = (
        functools.partial(_bidirectional, cell, options=options, **data)
        if bidirectional
        else functools.partial(unroll, cell, **options.as_kwargs(), **data)
    )
    for name, rate in (("dropout", dropout), ("input_dropout", input_dropout)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {rate}")
        if rate > 0.0 and key is None:
            raise ValueError(f"{name}={rate} needs a key (for evaluation, use rate 0)")
    if dropout and len(params) < 2:  # refused, not ignored: torch.nn.LSTM only warns
        raise ValueError(
            f"dropout={dropout} acts between stacked layers, but params has 1 layer: pass two "
            "or more (init_stacked), or drop the inputs with input_dropout"
        )
    finals, ys = [], xs
    if input_dropout:
        ys = _dropout(ys, input_dropout, jax.random.fold_in(key, 0))
    for index, layer_params in enumerate(params):
        with _context(f"layer {index}"):
            final, ys = layer(layer_params, ys, None if carries is None else carries[index])
        finals.append(final)
        if dropout and index < len(params) - 1:
            ys = _dropout(ys, dropout, jax.random.fold_in(key, index + 1))
    return tuple(finals), ys


def _dropout(x: Array, rate: float, key: Array) -> Array:
    """Inverted dropout: each element zeroed with probability `rate`, the rest scaled by
    `1 / (1 - rate)` (so the expectation is `x`)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)).astype(x.dtype)


_bidirectional = bidirectional  # `stacked` has a keyword of the same name


def init_stacked(
    cell: Cell,
    key: Array,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    *,
    bidirectional: bool = False,
    dtype: Any = jnp.float32,
) -> tuple[Params, ...]:
    """Per-layer params for `stacked`: layer 0 reads `input_size` features, later layers read
    the previous layer's `hidden_size` (`2 · hidden_size` when bidirectional)."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    layers = []
    for index, layer_key in enumerate(jax.random.split(key, num_layers)):
        size = input_size if index == 0 else hidden_size * (2 if bidirectional else 1)
        if bidirectional:
            k_fw, k_bw = jax.random.split(layer_key)
            layers.append(
                (
                    cell.init(k_fw, size, hidden_size, dtype),
                    cell.init(k_bw, size, hidden_size, dtype),
                )
            )
        else:
            layers.append(cell.init(layer_key, size, hidden_size, dtype))
    return tuple(layers)


@contextlib.contextmanager
def _context(where: str) -> Iterator[None]:
    """Prefixes a validation error with the layer or direction it came from."""
    try:
        yield
    except (ValueError, TypeError) as err:
        if type(err) not in (ValueError, TypeError):  # JAX's own errors take other arguments
            err.add_note(f"in {where}")
            raise
        raise type(err)(f"{where}: {err}") from err


def _pair(name: str, value: Any) -> tuple[Any, Any]:
    # A NamedTuple of params is a tuple too: demand a plain pair.
    if type(value) not in (tuple, list) or len(value) != 2:
        raise ValueError(f"{name} must be a (forward, backward) pair, got {type(value).__name__}")
    return value[0], value[1]
