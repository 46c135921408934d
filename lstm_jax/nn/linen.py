"""flax.linen wrappers: any `Cell` (or a stacked / bidirectional RNN of them) as a flax module.

The modules hold exactly the pytrees the functional API uses: `variables["params"]["cell"]` is
the cell's params, `variables["params"]["layers"]` the per-layer tuple `stacked` takes.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstm_jax.cells.protocol import Carry, Cell
from lstm_jax.driver.layers import init_stacked
from lstm_jax.gradients.modes import Gradient, resolve_gradient
from lstm_jax.nn.batching import stacked_any_batch

Array = jax.Array


class CellModule(nn.RNNCellBase):
    """One step of `cell` as a flax RNN cell: drops into `flax.linen.RNN` or a custom loop.

    Attributes:
      cell: the `Cell` to wrap. hidden_size: H.
      gradient: "full" steps with `cell.step`, "truncated" with `cell.truncated_step`.
    """

    cell: Cell
    hidden_size: int
    gradient: Gradient | str = Gradient.FULL
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
        params = self.param(
            "cell",
            lambda key: self.cell.init(key, inputs.shape[-1], self.hidden_size, self.param_dtype),
        )
        return self.cell.step_for(resolve_gradient(self.gradient))(params, carry, inputs)

    @nn.nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Carry:
        del rng  # carries start at zero
        return self.cell.initial_carry(tuple(input_shape[:-1]), self.hidden_size, self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


class RNN(nn.Module):
    """A (stacked, optionally bidirectional) recurrent layer over whole sequences.

    `__call__(xs, carries=None, lengths=None, *, deterministic=None) -> (final_carries, ys)`:
    `xs: [*batch, T, I]` (flax's batch-major default, as `flax.linen.RNN`; `[T, *batch, I]`
    with `time_major=True`), any number of batch axes. `dropout` (between stacked layers) and
    `input_dropout` are `driver.stacked`'s, drawn from the `"dropout"` rng collection unless
    `deterministic` (the field or the call's argument, as `flax.linen.Dropout`); the other
    keyword fields are `lstm_jax.unroll`'s keywords.
    """

    cell: Cell
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    gradient: Gradient | str = Gradient.FULL
    window: int | None = None
    time_major: bool = False
    scan_unroll: int = 1
    remat: bool = False
    impl: str = "auto"
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
        params = self.param(
            "layers",
            lambda key: init_stacked(
                self.cell,
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
        return stacked_any_batch(
            self.cell,
            params,
            xs,
            carries,
            lengths,
            key=key,
            **rates,
            bidirectional=self.bidirectional,
            gradient=self.gradient,
            window=self.window,
            time_major=self.time_major,
            scan_unroll=self.scan_unroll,
            remat=self.remat,
            impl=self.impl,
        )
