"""flax.nnx wrappers: any `Cell` (or a stacked / bidirectional RNN of them) as an nnx module.

The modules hold the pytrees the functional API uses with each array its own `nnx.Param` (as
`nnx.Linear` holds `kernel` and `bias`), so `nnx.Optimizer` and `nnx.jit` see one variable per
array: `nnx.as_pure(module.params)` is the cell's params (`CellModule`),
`nnx.as_pure(module.layers)` the per-layer tuple `stacked` takes (`RNN`). flax's
`kernel_init`, `recurrent_kernel_init`, `bias_init` draw the leaves `nn.flax_options.INIT_FIELDS`
names (None: the cell's own init); `dtype` is the computation dtype, `param_dtype` the params'.
Import this module directly (`import lstm_jax.nn.nnx`).

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import lstm_jax
    >>> from lstm_jax.nn import nnx as lnnx
    >>> rnn = lnnx.RNN(lstm_jax.lstm(), 3, 8, num_layers=2, rngs=nnx.Rngs(0))
    >>> carries, ys = rnn(jnp.ones((4, 10, 3)))   # batch-major, as flax's nnx.RNN
    >>> ys.shape
    (4, 10, 8)
    >>> nnx.as_pure(rnn.layers)[0].w.shape   # layer 0's input kernel, [I, 4H]
    (3, 32)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lstm_jax.cells.protocol import Carry, Cell
from lstm_jax.driver.layers import init_stacked
from lstm_jax.driver.options import DEFAULTS, UnrollOptions
from lstm_jax.modes import Gradient, resolve_gradient
from lstm_jax.nn.batching import stacked_any_batch
from lstm_jax.nn.flax_options import Initializer, cast, with_inits

Array = jax.Array


def _param_per_array(tree: Any) -> Any:
    """`tree` with each array its own `nnx.Param`, marked as module data (a NamedTuple or tuple
    attribute is static to nnx unless marked): one variable per array, as `nnx.Optimizer`
    expects."""
    return nnx.data(jax.tree.map(nnx.Param, tree))


class CellModule(nnx.Module):
    """One step of `cell` as an nnx RNN cell: drops into `flax.nnx.RNN` or a custom loop.

    `__call__(carry, x) -> (carry, y)`, `x: [*batch, in_features]`, `y: [*batch, H]`, with
    `cell.step` ("full") or `cell.truncated_step` ("truncated"); `initialize_carry(input_shape)`
    is the cell's zero carry in the computation dtype (`dtype`, else `param_dtype`).

    >>> import jax.numpy as jnp, lstm_jax
    >>> from flax import nnx
    >>> cell = CellModule(lstm_jax.gru(), 3, 8, bias_init=nnx.initializers.ones, rngs=nnx.Rngs(0))
    >>> ys = nnx.RNN(cell, rngs=False)(jnp.ones((4, 10, 3)))   # [B, T, I] -> [B, T, H]
    >>> ys.shape, float(cell.params.b[...].mean())
    ((4, 10, 8), 1.0)
    """

    def __init__(
        self,
        cell: Cell,
        in_features: int,
        hidden_features: int,
        *,
        gradient: Gradient | str = Gradient.FULL,
        kernel_init: Initializer | None = None,
        recurrent_kernel_init: Initializer | None = None,
        bias_init: Initializer | None = None,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.cell = cell
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.gradient = resolve_gradient(gradient)  # a bad name fails here, not at the first call
        self.dtype = dtype
        self.param_dtype = param_dtype
        initial = with_inits(
            cell,
            kernel_init=kernel_init,
            recurrent_kernel_init=recurrent_kernel_init,
            bias_init=bias_init,
        )
        self.params = _param_per_array(
            initial.init(rngs.params(), in_features, hidden_features, param_dtype)
        )

    def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
        shape = jnp.shape(inputs)
        if shape[-1:] != (self.in_features,):  # else a raw dot_general error inside the step
            raise ValueError(
                f"inputs must have in_features={self.in_features} features (the last axis), "
                f"got {shape[-1] if shape else 'none'} (inputs of shape {shape})"
            )
        params, carry, inputs = cast(self.dtype, nnx.as_pure(self.params), carry, inputs)
        return self.cell.step_for(self.gradient)(params, carry, inputs)

    def initialize_carry(self, input_shape: tuple[int, ...], rngs: Any = None) -> Carry:
        del rngs  # carries start at zero
        return self.cell.initial_carry(
            tuple(input_shape[:-1]),
            self.hidden_features,
            self.param_dtype if self.dtype is None else self.dtype,
        )

    @property
    def num_feature_axes(self) -> int:
        return 1


class RNN(nnx.Module):
    """A (stacked, optionally bidirectional) recurrent layer over whole sequences.

    `__call__(xs, carries=None, lengths=None, *, deterministic=None, rngs=None) ->
    (final_carries, ys)`: `xs: [*batch, T, I]` (flax's batch-major default; `[T, *batch, I]`
    with `time_major=True`), any number of batch axes, `ys: [*batch, T, H]` (`2H`
    bidirectional). `dropout` (between stacked layers) and `input_dropout` are
    `driver.stacked`'s, with keys from the `dropout` stream of `rngs` (the constructor's, or the
    call's), off when `deterministic` (`model.eval()` sets it, as for `nnx.Dropout`); the inits
    and dtypes are `CellModule`'s; `options` (`lstm_jax.UnrollOptions`: gradient, window, impl,
    scan_unroll, remat) is how every layer unrolls.

    >>> import jax.numpy as jnp, lstm_jax
    >>> from flax import nnx
    >>> rnn = RNN(lstm_jax.lstm(), 3, 8, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    >>> _, ys = rnn(jnp.ones((4, 10, 3)))
    >>> ys.shape, ys.dtype, rnn.layers[0].w[...].dtype
    ((4, 10, 8), dtype(bfloat16), dtype('float32'))
    """

    def __init__(
        self,
        cell: Cell,
        in_features: int,
        hidden_features: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        options: UnrollOptions = DEFAULTS,
        time_major: bool = False,
        kernel_init: Initializer | None = None,
        recurrent_kernel_init: Initializer | None = None,
        bias_init: Initializer | None = None,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        deterministic: bool = False,
        rngs: nnx.Rngs,
    ):
        self.cell = cell
        self.dtype = dtype
        self.rates = {"dropout": dropout, "input_dropout": input_dropout}
        self.deterministic = deterministic
        # a stream of its own (as nnx.Dropout), drawn only when a rate is above 0
        self.dropout_rngs = rngs.dropout.fork() if any(self.rates.values()) else nnx.data(None)
        self.options = dict(bidirectional=bidirectional, options=options, time_major=time_major)
        initial = with_inits(
            cell,
            kernel_init=kernel_init,
            recurrent_kernel_init=recurrent_kernel_init,
            bias_init=bias_init,
        )
        layers = init_stacked(
            initial,
            rngs.params(),
            in_features,
            hidden_features,
            num_layers,
            bidirectional=bidirectional,
            dtype=param_dtype,
        )
        self.layers = _param_per_array(layers)

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
        layers, xs, carries = cast(self.dtype, nnx.as_pure(self.layers), xs, carries)
        return stacked_any_batch(
            self.cell, layers, xs, carries, lengths, key=key, **rates, **self.options
        )
