"""The training loop: any task, cell and learner from a `Config`; short on purpose.

`train` claims the run directory, builds the experiment (`experiment.build`) and runs the
loop: a jit-compiled step of the configured learner (`learners`), then the hooks (`hooks`:
the training-set rule, the metrics log, the evaluation, interrupts, checkpoints, and any the
caller passes). Data are a pure function of `(seed, step)`, so a run resumed from a checkpoint
repeats an uninterrupted run exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax

from lstm_jax.training import checkpoint, distributed, interrupt, run_dir
from lstm_jax.training.config import dump
from lstm_jax.training.experiment import Experiment, build, dropout_key, init_state
from lstm_jax.training.hooks import (
    CheckpointHook,
    EvaluationHook,
    Hook,
    InterruptHook,
    LogHook,
    Loop,
    Step,
    TrainingSetHook,
)
from lstm_jax.training.host_memory import keep_freed_host_memory
from lstm_jax.training.learners import TrainState
from lstm_jax.training.provenance import provenance
from lstm_jax.training.resume import resume as resume_run
from lstm_jax.training.run_log import METRICS, RunLog, records
from lstm_jax.training.schema import Config
from lstm_jax.training.sharding import pad_time, shard_batch, shard_state
from lstm_jax.training.stopping import rule_for

__all__ = ["METRICS", "Diverged", "Summary", "summary_line", "train"]


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the update was not applied."""


class Summary(NamedTuple):
    status: str  # "solved" | "budget" | "diverged" | "interrupted"
    steps: int
    sequences: int
    final_eval: dict[str, float]
    solved_at_step: int | None
    out_dir: Path


def train(
    config: Config,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    hooks: Sequence[Hook] = (),
) -> Summary:
    """Runs (or resumes) the experiment `config` in `out_dir`; see the module docstring.

    A new run needs a new or empty `out_dir` (`run_dir.check_new`); the writing process holds
    the directory's lock throughout (`run_dir.claimed`). SIGINT or SIGTERM end the run after
    the current step with a checkpoint and a summary, then raise `interrupt.Interrupted`.
    `hooks` run after the built-in ones at every step (`hooks.Hook`).
    """
    out = Path(out_dir)
    if config.training.keep_host_memory:
        keep_freed_host_memory()  # before `build` starts JAX's runtime threads
    exp = build(config)
    writer = distributed.is_writer()  # with several processes, process 0 writes the logs
    if not resume:
        run_dir.check_new(out)  # before the lock file is made: never touch a foreign directory
    with (
        run_dir.claimed(out) if writer else contextlib.nullcontext(out),
        interrupt.deferred() as requests,
    ):
        if not resume and run_dir.holds_run(out):  # a run that finished while we waited
            run_dir.check_new(out)
        try:
            return _train(
                exp, out, resume, progress and writer, log if writer else None, requests, hooks
            )
        except Diverged:
            if writer:  # the curve up to the last good step, the divergence marked
                _plot(out)
            raise


def _train(
    exp: Experiment,
    out: Path,
    resume: bool,
    progress: bool,
    log: Callable[[str], None] | None,
    requests: interrupt.Requests,
    hooks: Sequence[Hook],
) -> Summary:
    """`train` in a claimed directory; `log` None on the processes that do not write."""
    training, writer = exp.config.training, log is not None
    state, loop, clock = init_state(exp), Loop(), _Clock()
    rule = rule_for(exp.config)  # the 1997 training-set rule, when the config stops on it
    if resume:
        state, loop, (wall_s, cpu_s) = resume_run(exp, state, out, trim=writer)
        clock = _Clock(wall_s, cpu_s)
        if rule is not None:
            rule.replay(r for r in records(out / METRICS) if r["step"] <= loop.step)
    distributed.barrier("checked")  # every process has read the directory before any writes
    source = provenance()  # now: the code that trains, even if the checkout changes meanwhile
    loop.stop = loop.solved_at is not None and training.stopping.when_solved
    if loop.step < training.steps and not loop.stop:
        test = exp.task.test_set(training.seed, training.eval_size)
        if writer:  # only now: a task that cannot make its data leaves no file behind
            (out / "config.yaml").write_text(dump(exp.config))
        with (
            RunLog(out / METRICS if writer else None, training.tensorboard, loop.step) as metrics,
            _progress(progress, loop.step, training.steps) as bar,
        ):
            builtin = [
                *([TrainingSetHook(exp, rule)] if rule is not None else []),
                LogHook(metrics),
                EvaluationHook(exp, test, metrics, rule is None, lambda m: bar.set_postfix(**m)),
                InterruptHook(requests, training.checkpoint_every),
                CheckpointHook(exp, out, metrics, lambda lp: _progress_meta(lp, clock)),
            ]
            run = _Run(exp, out, writer, clock, source, test)
            _loop(run, shard_state(exp, state), loop, [*builtin, *hooks], bar)
    return _finish(exp, out, loop, writer, log, clock, source)


class _Run(NamedTuple):
    """What a step needs besides the state: for the data, the summary of a divergence."""

    exp: Experiment
    out: Path
    writer: bool
    clock: _Clock
    source: dict[str, Any]
    test: Any


def _loop(run: _Run, state: TrainState, loop: Loop, hooks: Sequence[Hook], bar: Any) -> None:
    """Steps until the budget is spent, the run is solved (and stops there) or a signal came."""
    first = loop.step + 1
    for number in range(first, run.exp.config.training.steps + 1):
        done = _step(run, state, number, compile_first=number == first)
        state, loop.step, loop.rule_met = done.state, number, False
        for hook in hooks:
            hook(loop, done)
        bar.update(1)
        if loop.stop or loop.stopped_by:
            break


def _step(run: _Run, state: TrainState, number: int, compile_first: bool) -> Step:
    """One update on the data of step `number`; `Diverged` (the summary written) if the loss or
    the gradient norm is not finite, the update not applied."""
    exp, training = run.exp, run.exp.config.training
    host = pad_time(exp.task.batch(training.seed, number - 1, training.batch_size))
    batch, key = shard_batch(exp, host), dropout_key(training.seed, number)
    if jax.process_count() > 1 and compile_first:
        # compile both programs, then meet, so the first collectives start together
        exp.train_step.lower(state, batch, key).compile()
        exp.predict.lower(state.params, shard_batch(exp, run.test)).compile()
        distributed.barrier(f"compiled-{number}")
    new, stats = exp.train_step(state, batch, key)
    record = {"step": number, **{k: _scalar(v) for k, v in stats.items() if k != "outputs"}}
    loss, grad_norm = record["loss"], record["grad_norm"]
    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        message = (
            f"loss became {loss} (gradient norm {grad_norm}) at step {number}; the update was "
            f"not applied. Last good checkpoint: {checkpoint.describe(run.out)}. "
            "Lower optimizer.learning_rate or set optimizer.clip_norm."
        )
        if run.writer:
            _write_summary(
                run.out, "diverged", number - 1, training, {}, None, message, run.clock, run.source
            )
        raise Diverged(message)
    return Step(number, new, stats, host, record)


def _scalar(value: Any) -> int | float:
    """A per-step statistic as the log writes it: a count as an int, the rest as a float."""
    value = jax.device_get(value)
    return int(value) if jax.numpy.issubdtype(value.dtype, jax.numpy.integer) else float(value)


def _finish(
    exp: Experiment,
    out: Path,
    loop: Loop,
    writer: bool,
    log: Callable[[str], None] | None,
    clock: _Clock,
    source: dict[str, Any],
) -> Summary:
    """The summary (written, the curve drawn), or `interrupt.Interrupted` after a signal."""
    training = exp.config.training
    args = (loop.final_eval, loop.solved_at)
    if loop.stopped_by:
        message = (
            f"{loop.stopped_by} at step {loop.step}: checkpoint and summary written; continue "
            f"with --resume (lstm-jax run CONFIG --out {out} --resume, the same config and --set)"
        )
        if writer:
            _write_summary(out, "interrupted", loop.step, training, *args, message, clock, source)
            _plot(out)
        raise interrupt.Interrupted(message)
    status = "solved" if loop.solved_at is not None else "budget"
    summary = Summary(status, loop.step, loop.step * training.batch_size, *args, out)
    if writer:
        _write_summary(out, status, loop.step, training, *args, None, clock, source)
        _plot(out)
        log(summary_line(summary, training.batch_size))
    return summary


def _progress_meta(loop: Loop, clock: _Clock) -> dict[str, Any]:
    """What a checkpoint records besides the state, so a resumed run ends as an uninterrupted
    one would (the data of step k are a function of (seed, k): no RNG state to keep)."""
    wall_s, cpu_s = clock.read()
    return {
        "step": loop.step,
        "solved_at": loop.solved_at,
        "final_eval": loop.final_eval,
        "wall_s": wall_s,  # training time so far, every invocation up to this checkpoint
        "cpu_s": cpu_s,  # CPU time so far, every thread of the process
    }


def _plot(out: Path) -> None:
    from lstm_jax.training import runs  # runs reads run directories; it loads no trainer

    runs.plot_learning_curve(runs.read(out), out / "learning_curve.png")


class _Clock:
    """Wall and CPU seconds since it was made, plus what earlier pieces of the run took."""

    def __init__(self, wall_s: float = 0.0, cpu_s: float = 0.0) -> None:
        self.start = (time.perf_counter() - wall_s, time.process_time() - cpu_s)

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.start[0], time.process_time() - self.start[1]


def _write_summary(
    out: Path,
    status: str,
    step: int,
    t: Any,
    final_eval: dict[str, float],
    solved_at: int | None,
    message: str | None,
    clock: _Clock,
    source: dict[str, Any],
) -> Summary:
    summary = Summary(status, step, step * t.batch_size, final_eval, solved_at, out)
    wall_s, cpu_s = clock.read()
    record = {
        **summary._asdict(),
        "out_dir": str(out),
        "message": message,
        "time": time.time(),
        "train_wall_s": wall_s,  # this run's own training time, summed over resumed pieces
        "train_cpu_s": cpu_s,
        "provenance": source,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(record, indent=2))
    return summary


def summary_line(summary: Summary, batch_size: int) -> str:
    """The end-of-run line: outcome, steps and sequences, then the test metrics (whole
    numbers as integers, the rest to 4 significant digits)."""

    def fmt(value: float) -> str:
        return f"{int(value):,}" if float(value).is_integer() else f"{value:.4g}"

    outcome = {"solved": "solved", "budget": "step budget used up", "diverged": "diverged"}
    metrics = ", ".join(f"{k} {fmt(v)}" for k, v in summary.final_eval.items())
    return (
        f"{outcome.get(summary.status, summary.status)} after {summary.steps:,} steps "
        f"({summary.steps * batch_size:,} sequences); test: {metrics or 'not evaluated'}"
    )


def _progress(enabled: bool, start: int, total: int):
    """A tqdm bar (a no-op one when disabled), used as a context manager."""
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=not enabled)
