"""What the training loop does after each step, as hooks: the training-set stopping rule, the
metrics log, the evaluation on the test set, interrupts and checkpoints, in that order; then any
hooks the caller passes (`trainer.train(..., hooks=...)`: an experiment that probes the model
during training passes one instead of copying the loop).

A hook is a callable `hook(loop, done)`: `loop` is the run's `Loop` (what it has decided so
far; a hook may set `stop`), `done` the `Step` just taken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from lstm_jax.training import checkpoint, distributed, interrupt
from lstm_jax.training.experiment import Experiment, score
from lstm_jax.training.learners import TrainState
from lstm_jax.training.run_log import RunLog
from lstm_jax.training.stopping import TrainingSetRule
from lstm_jax.training.tasks import Batch


@dataclass
class Loop:
    """The run as the loop knows it; saved in each checkpoint (`progress`)."""

    step: int = 0  # updates applied
    solved_at: int | None = None  # the first step whose evaluation met the success criterion
    final_eval: dict[str, float] = field(default_factory=dict)  # the latest test metrics
    stop: bool = False  # end the run after this step (solved, and the config stops there)
    stopped_by: str | None = None  # the signal that ends the run early
    rule_met: bool = False  # this step met the training-set rule


class Step(NamedTuple):
    """One step just taken."""

    number: int  # 1-based
    state: TrainState  # after the update
    stats: dict[str, Any]  # the learner's statistics (device arrays)
    batch: Batch  # the host batch it learned from
    record: dict[str, Any]  # the metrics record of this step; hooks before the log add to it


Hook = Callable[[Loop, Step], None]


class TrainingSetHook(NamedTuple):
    """The 1997 rule: counts the batch's correct sequences, and marks the rule met."""

    exp: Experiment
    rule: TrainingSetRule

    def __call__(self, loop: Loop, done: Step) -> None:
        outputs = np.asarray(done.stats["outputs"])
        done.record["correct"] = int(np.sum(self.exp.task.correct(outputs, done.batch)))
        loop.rule_met = loop.solved_at is None and self.rule.update(
            done.record["loss"], done.record["correct"]
        )


class LogHook(NamedTuple):
    """Writes the step's record to the metrics log."""

    log: RunLog

    def __call__(self, loop: Loop, done: Step) -> None:
        self.log.write(done.record)


class EvaluationHook(NamedTuple):
    """Scores the test set every `eval_every` steps, at the last step and when the training
    rule is met; a run is solved at the first evaluation that meets its rule."""

    exp: Experiment
    test: Batch
    log: RunLog
    judged_on_test: bool  # the task's criterion on the test set decides (not the 1997 rule)
    show: Callable[[dict[str, str]], None]  # puts the headline metrics on the progress bar

    def __call__(self, loop: Loop, done: Step) -> None:
        t = self.exp.config.training
        if not (loop.rule_met or done.number % t.eval_every == 0 or done.number == t.steps):
            return
        loop.final_eval = score(self.exp, done.state.params, self.test)
        self.log.write({"step": done.number, "eval": loop.final_eval})
        self.show({"loss": f"{done.record['loss']:.4g}", **_headline(loop.final_eval)})
        met = loop.rule_met or (self.judged_on_test and self.exp.task.solved(loop.final_eval))
        if loop.solved_at is None and met:
            loop.solved_at = done.number
            loop.stop = t.stopping.when_solved


class InterruptHook(NamedTuple):
    """Ends the run after this step when a signal asks for it. Alone, a process stops at the
    step it was signalled in; several processes stop together at a checkpoint step, where each
    learns whether any of them was signalled (the steps are collective: one process leaving
    early would leave the others waiting in the next step's all-reduce)."""

    requests: interrupt.Requests
    every: int  # training.checkpoint_every

    def __call__(self, loop: Loop, done: Step) -> None:
        requested = self.requests.requested
        if jax.process_count() == 1:
            loop.stopped_by = self.requests.received[0] if requested else None
        elif done.number % self.every == 0 and distributed.any_process(requested):
            loop.stopped_by = (
                self.requests.received[0] if requested else "a signal to another process"
            )


class CheckpointHook(NamedTuple):
    """Saves the state and the loop's progress every `checkpoint_every` steps, at the last
    step, and whenever the run ends early."""

    exp: Experiment
    out: Path
    log: RunLog
    progress: Callable[[Loop], dict[str, Any]]  # the metadata a resumed run continues from

    def __call__(self, loop: Loop, done: Step) -> None:
        t = self.exp.config.training
        due = done.number % t.checkpoint_every == 0 or done.number == t.steps
        if due or loop.stop or loop.stopped_by:
            self.log.flush()
            meta = {"config": self.exp.config.to_dict(), **self.progress(loop)}
            checkpoint.save(self.out, done.number, done.state, meta, keep=t.keep_checkpoints)


def _headline(metrics: dict[str, float]) -> dict[str, str]:
    return {k: f"{v:.4g}" for k, v in metrics.items() if k not in ("loss", "sequences")}
