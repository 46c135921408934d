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
An algorithm derived for one cell raises a TypeError when built for another; `online_algorithm`
turns that into an error naming the algorithms that cell has.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from lstm_jax.cells.protocol import Cell
from lstm_jax.modes import Gradient
from lstm_jax.online import eligibility, rtrl, traces, uoro
from lstm_jax.online.protocol import OnlineAlgorithm

Array = jax.Array

# name -> (cell, key) -> OnlineAlgorithm; the key is used only by the stochastic ones.
ONLINE_ALGORITHMS: dict[str, Callable[[Cell, Array], OnlineAlgorithm]] = {
    "rtrl": lambda cell, key: rtrl.rtrl(cell),
    "rtrl_truncated": lambda cell, key: rtrl.rtrl(cell, Gradient.TRUNCATED),
    "traces_1997": lambda cell, key: traces.traces_1997(cell),
    "snap1": lambda cell, key: rtrl.snap(cell, 1),
    "snap2": lambda cell, key: rtrl.snap(cell, 2),
    "uoro": lambda cell, key: uoro.uoro(cell, key),
    "eprop": lambda cell, key: eligibility.eprop(cell),
    "rflo": lambda cell, key: eligibility.rflo(cell),
}


def valid_algorithms(cell: Cell) -> list[str]:
    """The names of `ONLINE_ALGORITHMS` defined for `cell`."""
    valid = []
    for name, build in ONLINE_ALGORITHMS.items():
        try:
            build(cell, jax.random.key(0))
        except TypeError:
            continue
        valid.append(name)
    return valid


def online_algorithm(name: str, cell: Cell, key: Array | None = None) -> OnlineAlgorithm:
    """The algorithm `name` bound to `cell` (`key` seeds UORO's signs; default key 0).

    Raises a ValueError naming the valid choices for an unknown name or one not defined for
    this cell."""
    if name not in ONLINE_ALGORITHMS:
        raise ValueError(f"unknown online algorithm {name!r}; valid: {sorted(ONLINE_ALGORITHMS)}")
    key = jax.random.key(0) if key is None else key
    try:
        return ONLINE_ALGORITHMS[name](cell, key)
    except TypeError as error:
        raise ValueError(
            f"online algorithm {name!r} is not defined for this cell ({error}); valid for it: "
            f"{valid_algorithms(cell)}"
        ) from None
