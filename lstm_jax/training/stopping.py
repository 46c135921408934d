"""The 1997 training-set stopping rule (the default rule is the task's test criterion,
`Task.solved`, checked at every evaluation).

Hochreiter & Schmidhuber (1997) stopped a run on the training stream, not on a test set: "once
the average training error is below 0.01, and the 2000 most recent sequences were processed
correctly" (§5.4, the adding problem; §5.6, temporal order: below 0.1). The test set (2,560
fresh sequences) is then scored once, and that score is what the paper reports.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from lstm_jax.training.schema import Config, ConfigError, StopOn


class TrainingSetRule:
    """Met once the last `window` training sequences were all correct and their mean training
    loss is below `max_loss`.

    Counted in whole batches (per-sequence order inside a batch is not kept): the last
    `⌈window / batch_size⌉` batches, so with `batch_size=1` (the paper's per-sequence updates)
    exactly the `window` most recent sequences.
    """

    def __init__(self, window: int, batch_size: int, max_loss: float) -> None:
        self.batch_size = batch_size
        self.max_loss = max_loss
        self.recent: collections.deque[tuple[float, int]] = collections.deque(
            maxlen=-(-window // batch_size)
        )

    def update(self, loss: float, correct: int) -> bool:
        """Adds one batch (its mean loss, how many of its sequences were correct); True once
        the rule is met."""
        self.recent.append((loss, correct))
        full = len(self.recent) == self.recent.maxlen
        all_correct = all(c == self.batch_size for _, c in self.recent)
        return (
            full
            and all_correct
            and sum(l for l, _ in self.recent) / len(self.recent) < (self.max_loss)
        )

    def replay(self, records: Iterable[dict[str, Any]]) -> None:
        """Rebuilds the window from `metrics.jsonl` records (a resumed run continues the
        count where it stopped)."""
        for record in records:
            if "correct" in record:
                self.update(record["loss"], record["correct"])


def validate(config: Config, task: Any) -> None:
    """The training-set rule needs a task that scores each training sequence."""
    if config.training.stopping.rule is StopOn.TRAIN and not hasattr(task, "correct"):
        raise ConfigError(
            f"training.stopping.rule=train needs a task that scores each training sequence "
            f"(adding, multiplication, temporal_order); {config.task.name!r} does not"
        )


def rule_for(config: Config) -> TrainingSetRule | None:
    """The training-set rule a config stops on, or None when it is judged on the test set.

    >>> from lstm_jax.training.config import from_dict
    >>> rule_for(from_dict({"task": {"name": "adding"}})) is None
    True
    """
    stopping = config.training.stopping
    if stopping.rule is not StopOn.TRAIN:
        return None
    return TrainingSetRule(stopping.window, config.training.batch_size, stopping.max_loss)
