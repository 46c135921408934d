"""Cells by name, for configs and the command line (`model.cell: lstm`): the one place a cell is
registered. A builder takes the config's `model.options` as keywords (and `variant=` when the
config sets `model.variant`) and returns a `Cell`.

    register_cell("leaky", lambda alpha=0.5: leaky(alpha))   # then `model.cell: leaky`
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lstm_jax.cells.elman import rnn
from lstm_jax.cells.gru import gru
from lstm_jax.cells.lstm import lstm
from lstm_jax.cells.minrnn import mingru, minlstm
from lstm_jax.cells.mlstm import mlstm
from lstm_jax.cells.protocol import Cell
from lstm_jax.cells.slstm import slstm

CellBuilder = Callable[..., Cell]

CELLS: dict[str, CellBuilder] = {
    "lstm": lstm,  # variant=..., any LSTMOptions field
    "gru": gru,  # reset_after
    "rnn": rnn,  # recurrent_scale
    "slstm": slstm,  # heads, forget_gate, forget_bias
    "mlstm": mlstm,  # heads, forget_gate, forget_bias
    "mingru": mingru,  # candidate
    "minlstm": minlstm,  # candidate
}


def register_cell(name: str, builder: CellBuilder) -> None:
    """Makes `builder` available as `model.cell: <name>`; a name already taken is an error."""
    if name in CELLS and CELLS[name] is not builder:
        raise ValueError(f"a cell named {name!r} is already registered")
    CELLS[name] = builder


def build_cell(
    name: str, variant: str | None = None, options: Mapping[str, Any] | None = None
) -> Cell:
    """The registered cell `name`, built with `options` (and `variant`, for cells that have
    variants); an unknown name, variant or option is a ValueError naming the valid choices."""
    if name not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {name!r}")
    kwargs = dict(options or {})
    if variant is not None:
        kwargs["variant"] = variant
    try:
        return CELLS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"bad options for cell {name!r}: {err}") from err
