"""The classic long-time-lag tasks as deterministic NumPy batch generators, one module per family.

Every task is a small frozen dataclass (its fields are its options) implementing `Task`:
`batch(seed, step, batch_size)` and `test_set(seed, size)` return a time-major `Batch`;
`metrics(outputs, batch)` scores the raw readout values (pre-activation logits for the
"softmax" and "sigmoid" losses) with the paper's measure; `solved(metrics)` applies the paper's
success criterion to test-set metrics. `make_task(name, **options)` builds one by name.

| name                     | class                    | loss    | source                           |
|--------------------------|--------------------------|---------|----------------------------------|
| `adding`                 | `AddingProblem`          | mse     | H&S 1997 exp. 4; Pascanu 2013    |
| `multiplication`         | `MultiplicationProblem`  | mse     | H&S 1997 exp. 5                  |
| `temporal_order`         | `TemporalOrder`          | softmax | H&S 1997 exp. 6a / 6b            |
| `temporal_order_pascanu` | `PascanuTemporalOrder`   | softmax | Pascanu et al. 2013              |
| `embedded_reber`         | `EmbeddedReber`          | sigmoid | H&S 1997 exp. 1                  |
| `continual_reber`        | `ContinualEmbeddedReber` | sigmoid | Gers, Schmidhuber & Cummins 2000 |
| `copy`                   | `Copy`                   | softmax | Arjovsky et al. 2016 layout      |
| `char_lm`                | `CharLM`                 | softmax | any UTF-8 text file              |
| `bach_chorales`          | `BachChorales`           | sigmoid | music21's Bach chorales (Greff)  |
| `parity`                 | `ParityCheck`            | softmax | Delétang et al. 2023; xLSTM 2024 |
| `modular_arithmetic`     | `ModularArithmetic`      | softmax | Delétang et al. 2023; xLSTM 2024 |

Randomness: a batch is a pure function of `(seed, step, batch_size)` and a test set of
`(seed, size)`: each draws from its own `np.random.default_rng([seed, purpose, *index])`, with a
distinct `purpose` word per use (training batches, test sets, fixed training sets, streams), so
no two uses ever share a stream. No global RNG state is touched.
"""

from __future__ import annotations

import dataclasses

from lstm_jax.training.tasks.base import Batch, Task
from lstm_jax.training.tasks.char_lm import CharLM
from lstm_jax.training.tasks.chorales import BachChorales
from lstm_jax.training.tasks.copy import Copy
from lstm_jax.training.tasks.formal import ModularArithmetic, ParityCheck
from lstm_jax.training.tasks.marked_pairs import AddingProblem, MultiplicationProblem
from lstm_jax.training.tasks.reber import (
    REBER_SYMBOLS,
    ContinualEmbeddedReber,
    EmbeddedReber,
    reber_valid,
)
from lstm_jax.training.tasks.temporal_order import (
    PASCANU_TEMPORAL_ORDER_SYMBOLS,
    TEMPORAL_ORDER_SYMBOLS,
    PascanuTemporalOrder,
    TemporalOrder,
)

__all__ = [
    "PASCANU_TEMPORAL_ORDER_SYMBOLS",
    "REBER_SYMBOLS",
    "TASKS",
    "TEMPORAL_ORDER_SYMBOLS",
    "AddingProblem",
    "BachChorales",
    "Batch",
    "CharLM",
    "ContinualEmbeddedReber",
    "Copy",
    "EmbeddedReber",
    "ModularArithmetic",
    "MultiplicationProblem",
    "ParityCheck",
    "PascanuTemporalOrder",
    "Task",
    "TemporalOrder",
    "make_task",
    "reber_valid",
]


# --- registry --------------------------------------------------------------------------------

TASKS: dict[str, type] = {
    cls.name: cls
    for cls in (
        AddingProblem,
        MultiplicationProblem,
        TemporalOrder,
        PascanuTemporalOrder,
        EmbeddedReber,
        ContinualEmbeddedReber,
        Copy,
        CharLM,
        BachChorales,
        ParityCheck,
        ModularArithmetic,
    )
}


def make_task(name: str, **options: object) -> Task:
    """The task `name` with `options` (its dataclass fields), validated."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    fields = [f for f in dataclasses.fields(cls) if f.init]
    valid = [f.name for f in fields]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"task {name!r} got unknown option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid)}"
        )
    missing = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in options
    ]
    if missing:
        raise TypeError(f"task {name!r} requires option(s) {', '.join(missing)}")
    return cls(**options)
