"""Every online gradient algorithm by name, for configs and experiments.

    algorithm = online_algorithm("uoro", cell, key)      # an OnlineAlgorithm
    valid_algorithms(cell)                               # the names defined for that cell

| name             | algorithm                                      | cells | state / sequence |
|------------------|------------------------------------------------|-------|------------------|
| `rtrl`           | exact RTRL (Williams & Zipser 1989): BPTT's    | all   | O(S·P)           |
| `rtrl_truncated` | RTRL of the truncated step: the 1997 gradient  | all   | O(S·P)           |
| `traces_1997`    | the 1997 eligibility traces                    | LSTM  | O(H·(I + H))     |
| `snap1`, `snap2` | SnAp-1, SnAp-2 (Menick et al. 2021)            | all   | O(S·P) (masked)  |
| `uoro`           | UORO (Tallec & Ollivier 2018), rank one        | all   | O(S + P)         |
| `eprop`          | e-prop (Bellec et al. 2020)                    | all   | O(S·P) (masked)  |
| `rflo`           | RFLO (Murray 2019)                             | Elman | O(H·(I + H))     |

S is the carry's size and P the number of parameters, per sequence; "masked": the SnAp/e-prop
result from a dense influence matrix (its sparsity is the algorithm, not yet its storage).
Each entry declares the cells it applies to (`OnlineEntry.family`: a cell family, or None for
every cell), so `valid_algorithms` reads the declarations and builds nothing, and
`online_algorithm` names the cells an algorithm applies to when it does not apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

from lstm_jax.cells import elman
from lstm_jax.cells import lstm as lstm_lib
from lstm_jax.cells.protocol import Cell, Family
from lstm_jax.modes import Gradient
from lstm_jax.online import eligibility, rflo, rtrl, traces, uoro
from lstm_jax.online.protocol import OnlineAlgorithm

Array = jax.Array


class OnlineEntry(NamedTuple):
    """One algorithm of the registry: how to build it, and the cells it applies to."""

    build: Callable[[Cell, Array], OnlineAlgorithm]  # (cell, key) -> algorithm; key: UORO's
    family: Family | None = None  # the cell family it is derived for; None: every cell

    def applies_to(self, cell: Cell) -> bool:
        """Whether the algorithm is defined for `cell`, from the declarations alone.

        >>> import lstm_jax
        >>> ONLINE_ALGORITHMS["rflo"].applies_to(lstm_jax.lstm())
        False
        """
        return self.family is None or self.family.holds(cell)


ONLINE_ALGORITHMS: dict[str, OnlineEntry] = {
    "rtrl": OnlineEntry(lambda cell, key: rtrl.rtrl(cell)),
    "rtrl_truncated": OnlineEntry(lambda cell, key: rtrl.rtrl(cell, Gradient.TRUNCATED)),
    "traces_1997": OnlineEntry(lambda cell, key: traces.traces_1997(cell), lstm_lib.FAMILY),
    "snap1": OnlineEntry(lambda cell, key: rtrl.snap(cell, 1)),
    "snap2": OnlineEntry(lambda cell, key: rtrl.snap(cell, 2)),
    "uoro": OnlineEntry(lambda cell, key: uoro.uoro(cell, key)),
    "eprop": OnlineEntry(lambda cell, key: eligibility.eprop(cell)),
    "rflo": OnlineEntry(lambda cell, key: rflo.rflo(cell), elman.FAMILY),
}


def valid_algorithms(cell: Cell) -> list[str]:
    """The names of `ONLINE_ALGORITHMS` defined for `cell`, in the registry's order.

    >>> import lstm_jax
    >>> valid_algorithms(lstm_jax.gru())
    ['rtrl', 'rtrl_truncated', 'snap1', 'snap2', 'uoro', 'eprop']
    """
    return [name for name, entry in ONLINE_ALGORITHMS.items() if entry.applies_to(cell)]


def online_algorithm(name: str, cell: Cell, key: Array | None = None) -> OnlineAlgorithm:
    """The algorithm `name` bound to `cell` (`key` seeds UORO's signs; default key 0).

    Raises a ValueError naming the valid choices for an unknown name, and for one not defined
    for this cell the cells it applies to and the algorithms that are.

    >>> import lstm_jax
    >>> online_algorithm("traces_1997", lstm_jax.gru())  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ValueError: online algorithm 'traces_1997' is not defined for this cell (it applies to an
    LSTM cell, got GRUOptions); valid for it: ['rtrl', 'rtrl_truncated', 'snap1', 'snap2',
    'uoro', 'eprop']
    """
    if name not in ONLINE_ALGORITHMS:
        raise ValueError(f"unknown online algorithm {name!r}; valid: {sorted(ONLINE_ALGORITHMS)}")
    entry = ONLINE_ALGORITHMS[name]
    if not entry.applies_to(cell):
        raise ValueError(
            f"online algorithm {name!r} is not defined for this cell (it applies to "
            f"{entry.family.cells}, got {type(cell.options).__name__}); valid for it: "
            f"{valid_algorithms(cell)}"
        )
    return entry.build(cell, jax.random.key(0) if key is None else key)
