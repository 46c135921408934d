"""`UnrollOptions`: the static choices of how `unroll` runs and differentiates a cell, as one
value that the layers (`stacked`, `bidirectional`), the flax wrappers, the training model and
the trainer pass along unchanged, so each option is declared and documented once."""

from __future__ import annotations

import dataclasses
from typing import Any

from lstm_jax.driver.scan import Impl
from lstm_jax.modes import Gradient, resolve_gradient


@dataclasses.dataclass(frozen=True)
class UnrollOptions:
    """How `unroll` runs and differentiates the cell (each field is its keyword of that name).

    Attributes:
      gradient: `Gradient.FULL` (BPTT) or `Gradient.TRUNCATED` (the 1997 gradient: error flows
        back in time only through the cell state), or its name.
      window: windowed truncated BPTT: no error crosses a boundary every `window` steps of
        each sequence; None: no window.
      impl: `Impl.SCAN` (autodiff through `lax.scan`), `Impl.FUSED` (the `custom_vjp` over the
        cell's derivation), `Impl.PARALLEL` (the cell's whole-sequence form), `Impl.AUTO`
        (the fastest that applies), or its name.
      scan_unroll: steps per iteration of the `lax.scan` loop (XLA's `unroll`).
      remat: recompute the forward in the backward pass (memory O(√T) segments instead of O(T)).

    Names are resolved when the value is made, so a misspelt mode fails here, listing the
    valid ones.

    >>> UnrollOptions(gradient="truncated").gradient
    <Gradient.TRUNCATED: 'truncated'>
    >>> UnrollOptions(impl="scan").as_kwargs()["impl"]
    <Impl.SCAN: 'scan'>
    """

    gradient: Gradient | str = Gradient.FULL
    window: int | None = None
    impl: Impl | str = Impl.AUTO
    scan_unroll: int = 1
    remat: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "gradient", resolve_gradient(self.gradient))
        if not isinstance(self.impl, Impl):
            valid = [i.value for i in Impl]
            if self.impl not in valid:
                raise ValueError(
                    f"impl must be one of {valid} or a lstm_jax.Impl, got {self.impl!r}"
                )
            object.__setattr__(self, "impl", Impl(self.impl))

    def as_kwargs(self) -> dict[str, Any]:
        """The options as `unroll`'s keyword arguments."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


DEFAULTS = UnrollOptions()  # full BPTT, no window, the fastest impl that applies
