"""flax.nnx wrappers: any `Cell` (or a stacked / bidirectional RNN of them) as an nnx module.

The modules hold exactly the pytrees the functional API uses, each as one `nnx.Param`:
`module.params.get_value()` is the cell's params (`CellModule`), `module.layers.get_value()`
the per-layer tuple `stacked` takes (`RNN`). Import this module directly (`import lstm_jax.nn.nnx`).

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import lstm_jax
    >>> from lstm_jax.nn import nnx as lnnx
    >>> rnn = lnnx.RNN(lstm_jax.lstm(), 3, 8, num_layers=2, rngs=nnx.Rngs(0))
    >>> carries, ys = rnn(jnp.ones((4, 10, 3)))   # batch-major, as flax's nnx.RNN
    >>> ys.shape
    (4, 10, 8)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lstm_jax.cells.protocol import Carry, Cell
from lstm_jax.driver.layers import init_stacked
from lstm_jax.gradients.modes import Gradient, resolve_gradient
from lstm_jax.nn.batching import stacked_any_batch

Array = jax.Array


class CellModule(nnx.Module):
    """One step of `cell` as an nnx RNN cell: drops into `flax.nnx.RNN` or a custom loop.

    `__call__(carry, x) -> (carry, y)` with `cell.step` ("full") or `cell.truncated_step`
    ("truncated"); `initialize_carry(input_shape)` is the cell's zero carry.
    """

    def __init__(
        self,
        cell: Cell,
        in_features: int,
        hidden_features: int,
        *,
        gradient: Gradient | str = Gradient.FULL,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.cell = cell
        self.hidden_features = hidden_features
        self.gradient = resolve_gradient(gradient)  # a bad name fails here, not at the first call
        self.param_dtype = param_dtype
        self.params = nnx.Param(cell.init(rngs.params(), in_features, hidden_features, param_dtype))

    def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
        return self.cell.step_for(self.gradient)(self.params.get_value(), carry, inputs)

    def initialize_carry(self, input_shape: tuple[int, ...], rngs: Any = None) -> Carry:
        del rngs  # carries start at zero
        return self.cell.initial_carry(
            tuple(input_shape[:-1]), self.hidden_features, self.param_dtype
        )

    @property
    def num_feature_axes(self) -> int:
        return 1


class RNN(nnx.Module):
    """A (stacked, optionally bidirectional) recurrent layer over whole sequences.

    `__call__(xs, carries=None, lengths=None, *, deterministic=None, rngs=None) ->
    (final_carries, ys)`: `xs: [*batch, T, I]` (flax's batch-major default; `[T, *batch, I]`
    with `time_major=True`), any number of batch axes. `dropout` (between stacked layers) and
    `input_dropout` are `driver.stacked`'s, with keys from the `dropout` stream of `rngs`
    (the constructor's, or the call's), off when `deterministic` (`model.eval()` sets it, as
    for `nnx.Dropout`); the other keywords are `lstm_jax.unroll`'s.
    """

    def __init__(
        self,
        cell: Cell,
        in_features: int,
        hidden_features: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        gradient: Gradient | str = Gradient.FULL,
        window: int | None = None,
        time_major: bool = False,
        scan_unroll: int = 1,
        remat: bool = False,
        impl: str = "auto",
        param_dtype: Any = jnp.float32,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        deterministic: bool = False,
        rngs: nnx.Rngs,
    ):
        self.cell = cell
        self.rates = {"dropout": dropout, "input_dropout": input_dropout}
        self.deterministic = deterministic
        # a stream of its own (as nnx.Dropout), drawn only when a rate is above 0
        self.dropout_rngs = rngs.dropout.fork() if any(self.rates.values()) else nnx.data(None)
        self.options = dict(
            bidirectional=bidirectional,
            gradient=resolve_gradient(gradient),
            window=window,
            time_major=time_major,
            scan_unroll=scan_unroll,
            remat=remat,
            impl=impl,
        )
        self.layers = nnx.Param(
            init_stacked(
                cell,
                rngs.params(),
                in_features,
                hidden_features,
                num_layers,
                bidirectional=bidirectional,
                dtype=param_dtype,
            )
        )

    def __call__(
        self,
        xs: Array,
        carries: Any = None,
        lengths: Array | None = None,
        *,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | None = None,
    ) -> tuple[tuple[Carry, ...], Array]:
        off = self.deterministic if deterministic is None else deterministic
        rates, key = {}, None
        if any(self.rates.values()) and not off:
            rates = self.rates
            key = rngs.dropout() if rngs is not None else self.dropout_rngs()
        return stacked_any_batch(
            self.cell,
            self.layers.get_value(),
            xs,
            carries,
            lengths,
            key=key,
            **rates,
            **self.options,
        )
