"""A run's log: `metrics.jsonl` (always) and TensorBoard event files (optional).

Records are `{"step", "loss", "grad_norm", ...}` once per training step and `{"step", "eval":
{metric: value}}` once per evaluation. With `training.tensorboard: true` the same numbers are
written by `tensorboardX` (the `tensorboard` extra: `pip install "lstm-jax[tensorboard]"`) to
`<run>/tensorboard/` as scalars `train/<key>` and `test/<metric>`; `tensorboard --logdir runs`
shows them. A resumed run purges the events logged after its checkpoint, as it trims
`metrics.jsonl`, so no step appears twice. `records` / `parsed` / `numbered` read the file back
(a last line cut short by a kill is dropped), `malformed` checks a record's types, `curves` and
`plot_learning_curve` draw it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lstm_jax.training.checkpoint import CheckpointError
from lstm_jax.training.config import ConfigError

TENSORBOARD = "tensorboard"

METRICS = "metrics.jsonl"  # a run's per-step log, in its directory


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ConfigError(
            "training.tensorboard needs tensorboardX: pip install 'lstm-jax[tensorboard]'"
        ) from None
    return SummaryWriter


def check_tensorboard(enabled: bool) -> None:
    """A ConfigError now, before training, when TensorBoard logging is asked for and missing."""
    if enabled:
        _summary_writer()


class RunLog:
    """Appends records to `metrics.jsonl` and, with `tensorboard`, to event files; a context
    manager. `path` None (processes other than 0) writes nothing."""

    def __init__(self, path: Path | None, tensorboard: bool = False, resume_step: int = 0):
        self._jsonl = open(path if path is not None else os.devnull, "a")  # noqa: SIM115
        self._events = None
        if tensorboard and path is not None:
            self._events = _summary_writer()(
                str(path.parent / TENSORBOARD),
                purge_step=resume_step + 1 if resume_step else None,
            )

    def write(self, record: dict[str, Any]) -> None:
        self._jsonl.write(json.dumps(record) + "\n")
        if self._events is not None:
            step = record["step"]
            scalars = {f"test/{k}": v for k, v in record.get("eval", {}).items()}
            if "eval" not in record:
                scalars = {f"train/{k}": v for k, v in record.items() if k != "step"}
            for tag, value in scalars.items():
                self._events.add_scalar(tag, float(value), step)

    def flush(self) -> None:
        self._jsonl.flush()
        if self._events is not None:
            self._events.flush()

    def close(self) -> None:
        self._jsonl.close()
        if self._events is not None:
            self._events.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def records(path: Path) -> list[dict[str, Any]]:
    """The records of a `metrics.jsonl` (none when it does not exist), as `parsed` reads them."""
    return [record for _, record in parsed(path)]


def parsed(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """`(line, record)` pairs of a `metrics.jsonl`, as `numbered` reads them."""
    return [(line, record) for _, line, record in numbered(path)]


def numbered(path: Path) -> list[tuple[int, str, Any]]:
    """`(line number, line, record)` of each non-blank line of a `metrics.jsonl` (none when it
    does not exist). A last line cut short (a run killed mid-write) is dropped; a bad line
    before it is a CheckpointError."""
    if not path.exists():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    found = []
    for number, line in lines:
        try:
            found.append((number, line, json.loads(line)))
        except json.JSONDecodeError as err:
            if number == lines[-1][0]:
                break
            raise CheckpointError(
                f"{path} line {number} is not a JSON record ({err}); the run's metrics are "
                "corrupt: restore the file or start a new run"
            ) from None
    return found


def malformed(record: Any) -> str | None:
    """What a parsed record should have been, or None when it is one the trainer writes: a
    JSON object with an integer "step" and a number for every other key (or, in an evaluation
    record, for every key of its "eval" object)."""
    if type(record) is not dict:
        return f"a JSON object, got {_shown(record)}"
    if type(record.get("step")) is not int:
        return f'"step" to be an integer, got {_shown(record.get("step"))}'
    values = record.get("eval", {k: v for k, v in record.items() if k != "step"})
    if type(values) is not dict:
        return f'"eval" to be an object of metrics, got {_shown(values)}'
    for key, value in values.items():
        if type(value) not in (int, float):  # bool is an int subclass, and no metric
            return f'"{key}" to be a number, got {_shown(value)}'
    return None


def _shown(value: Any) -> str:
    """`value` as JSON, cut to 40 characters."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def curves(found: list[dict[str, Any]]) -> tuple[list, list]:
    """`(train, evals)` of a run's records: `[(step, training loss)]`, `[(step, test metrics)]`."""
    train = [(r["step"], r["loss"]) for r in found if "loss" in r and "eval" not in r]
    evals = [(r["step"], r["eval"]) for r in found if "eval" in r]
    return train, evals
