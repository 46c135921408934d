"""flax.linen wrappers: any `Cell` (or a stacked / bidirectional RNN of them) as a flax module.

The modules hold exactly the pytrees the functional API uses: `variables["params"]["cell"]` is
the cell's params, `variables["params"]["layers"]` the per-layer tuple `stacked` takes. flax's
`kernel_init`, `recurrent_kernel_init`, `bias_init` draw the leaves `nn.flax_options.INIT_FIELDS`
names (None: the cell's own init); `dtype` is the computation dtype (inputs, params and given
carries are cast to it; None: their promoted dtype), `param_dtype` the params'.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstm_jax.cells.protocol import Carry, Cell
from lstm_jax.driver.layers import init_stacked
from lstm_jax.driver.options import DEFAULTS, UnrollOptions
from lstm_jax.modes import Gradient, resolve_gradient
from lstm_jax.nn.batching import stacked_any_batch
from lstm_jax.nn.flax_options import Initializer, cast, with_inits

Array = jax.Array


class CellModule(nn.RNNCellBase):
    """One step of `cell` as a flax RNN cell: drops into `flax.linen.RNN` or a custom loop.

    `__call__(carry, x) -> (carry, y)`, `x: [*batch, I]`, `y: [*batch, H]`;
    `initialize_carry(rng, input_shape)` is the cell's zero carry in the computation dtype
    (`dtype`, else `param_dtype`).

    Attributes:
      cell: the `Cell` to wrap. hidden_size: H.
      gradient: "full" steps with `cell.step`, "truncated" with `cell.truncated_step`.
      kernel_init, recurrent_kernel_init, bias_init, dtype, param_dtype: the module docstring's.

    >>> import jax, jax.numpy as jnp, flax.linen as nn, lstm_jax
    >>> rnn = nn.RNN(CellModule(lstm_jax.gru(), 8, bias_init=nn.initializers.zeros))
    >>> variables = rnn.init(jax.random.key(0), jnp.ones((4, 10, 3)))
    >>> rnn.apply(variables, jnp.ones((4, 10, 3))).shape   # [B, T, I] -> [B, T, H]
    (4, 10, 8)
    """

    cell: Cell
    hidden_size: int
    gradient: Gradient | str = Gradient.FULL
    kernel_init: Initializer | None = None
    recurrent_kernel_init: Initializer | None = None
    bias_init: Initializer | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
        initial = with_inits(
            self.cell,
            kernel_init=self.kernel_init,
            recurrent_kernel_init=self.recurrent_kernel_init,
            bias_init=self.bias_init,
        )
        params = self.param(
            "cell",
            lambda key: initial.init(key, inputs.shape[-1], self.hidden_size, self.param_dtype),
        )
        params, carry, inputs = cast(self.dtype, params, carry, inputs)
        return self.cell.step_for(resolve_gradient(self.gradient))(params, carry, inputs)

    @nn.nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Carry:
        del rng  # carries start at zero
        return self.cell.initial_carry(
            tuple(input_shape[:-1]),
            self.hidden_size,
            self.param_dtype if self.dtype is None else self.dtype,
        )

    @property
    def num_feature_axes(self) -> int:
        return 1


class RNN(nn.Module):
    """A (stacked, optionally bidirectional) recurrent layer over whole sequences.

    `__call__(xs, carries=None, lengths=None, *, deterministic=None) -> (final_carries, ys)`:
    `xs: [*batch, T, I]` (flax's batch-major default, as `flax.linen.RNN`; `[T, *batch, I]`
    with `time_major=True`), any number of batch axes. `dropout` (between stacked layers) and
    `input_dropout` are `driver.stacked`'s, drawn from the `"dropout"` rng collection unless
    `deterministic` (the field or the call's argument, as `flax.linen.Dropout`); the inits and
    dtypes are the module docstring's; `options` (`lstm_jax.UnrollOptions`: gradient, window,
    impl, scan_unroll, remat) is how every layer unrolls. `ys: [*batch, T, H]` (`2H`
    bidirectional).

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> rnn = RNN(lstm_jax.lstm(), 8, num_layers=2, dtype=jnp.bfloat16)
    >>> variables = rnn.init(jax.random.key(0), jnp.ones((4, 10, 3)))
    >>> _, ys = rnn.apply(variables, jnp.ones((4, 10, 3)))
    >>> ys.shape, ys.dtype, variables["params"]["layers"][0].w.dtype
    ((4, 10, 8), dtype(bfloat16), dtype('float32'))
    >>> truncated = RNN(lstm_jax.lstm(), 8, options=lstm_jax.UnrollOptions(gradient="truncated"))
    """

    cell: Cell
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    options: UnrollOptions = DEFAULTS
    time_major: bool = False
    kernel_init: Initializer | None = None
    recurrent_kernel_init: Initializer | None = None
    bias_init: Initializer | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    dropout: float = 0.0
    input_dropout: float = 0.0
    deterministic: bool | None = None

    @nn.compact
    def __call__(
        self,
        xs: Array,
        carries: Any = None,
        lengths: Array | None = None,
        *,
        deterministic: bool | None = None,
    ) -> tuple[tuple[Carry, ...], Array]:
        initial = with_inits(
            self.cell,
            kernel_init=self.kernel_init,
            recurrent_kernel_init=self.recurrent_kernel_init,
            bias_init=self.bias_init,
        )
        params = self.param(
            "layers",
            lambda key: init_stacked(
                initial,
                key,
                xs.shape[-1],
                self.hidden_size,
                self.num_layers,
                bidirectional=self.bidirectional,
                dtype=self.param_dtype,
            ),
        )
        rates = {"dropout": self.dropout, "input_dropout": self.input_dropout}
        if not any(rates.values()) or nn.merge_param(
            "deterministic", self.deterministic, deterministic
        ):
            rates = {}  # evaluation: no masks, no rng needed
        key = self.make_rng("dropout") if rates else None
        params, xs, carries = cast(self.dtype, params, xs, carries)
        return stacked_any_batch(
            self.cell,
            params,
            xs,
            carries,
            lengths,
            key=key,
            **rates,
            bidirectional=self.bidirectional,
            options=self.options,
            time_major=self.time_major,
        )
