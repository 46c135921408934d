"""The training loop: any task, cell and gradient mode from a `Config`; short on purpose.

One jit-compiled step (forward, loss, gradient, global norm, optax update); data are a pure
function of `(seed, step)`, so a run resumed from a checkpoint repeats an uninterrupted run
exactly. With several devices the batch axis is sharded over a `jax.sharding.Mesh` and the
params replicated: JAX's own SPMD partitioner inserts the gradient all-reduce.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lstm_jax.backward.regularizers import omega
from lstm_jax.cells.registry import build_cell
from lstm_jax.driver.scan import resolve_impl
from lstm_jax.modes import resolve_gradient
from lstm_jax.online.registry import online_algorithm
from lstm_jax.training import (
    checkpoint,
    distributed,
    interrupt,
    model,
    online_updates,
    run_dir,
    run_log,
    validation,
)
from lstm_jax.training.config import (
    Config,
    ConfigError,
    TrainingConfig,
    dump,
    flatten,
    from_dict,
)
from lstm_jax.training.host_memory import keep_freed_host_memory
from lstm_jax.training.optimizers import make_optimizer
from lstm_jax.training.provenance import provenance
from lstm_jax.training.run_log import RunLog, check_tensorboard
from lstm_jax.training.sharding import pad_time, shard_batch, shard_state
from lstm_jax.training.stopping import TrainingSetRule
from lstm_jax.training.tasks import Batch, Task, make_task

METRICS = "metrics.jsonl"


class TrainState(NamedTuple):
    params: model.ModelParams
    opt_state: Any
    carries: Any  # per-layer carries handed from batch to batch (stateful tasks), else None


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the update was not applied."""


class Summary(NamedTuple):
    status: str  # "solved" | "budget" | "diverged" | "interrupted"
    steps: int
    sequences: int
    final_eval: dict[str, float]
    solved_at_step: int | None
    out_dir: Path


class Experiment(NamedTuple):
    """Everything a run derives from its config."""

    config: Config
    task: Task
    cell: Any
    optimizer: optax.GradientTransformation
    train_step: Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]
    evaluate: Callable[[model.ModelParams, Batch], jax.Array]
    mesh: Mesh | None


def build(config: Config) -> Experiment:
    """Builds task, cell, optimiser and the jit-compiled train and eval functions."""
    try:
        task = make_task(config.task.name, **dict(config.task.options))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"task: {err}") from err
    m, t = config.model, config.training
    positive = {
        "model.hidden_size": m.hidden_size,
        "model.num_layers": m.num_layers,
        "model.window": 1 if m.window is None else m.window,
        "training.batch_size": t.batch_size,
        "training.steps": t.steps,
        "training.eval_every": t.eval_every,
        "training.eval_size": t.eval_size,
        "training.checkpoint_every": t.checkpoint_every,
        "training.keep_checkpoints": t.keep_checkpoints,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    try:
        cell = build_cell(m.cell, m.variant, m.options)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from err
    online_learning = m.gradient == "online"  # SGD during the stream, from an online algorithm
    try:
        mode = resolve_gradient("truncated" if online_learning else m.gradient)
    except ValueError:
        valid = ["full", "truncated", "online"]
        raise ConfigError(f"model.gradient must be one of {valid}, got {m.gradient!r}") from None
    optimizer = make_optimizer(config)
    loss_fn = model.LOSSES[task.loss]
    validation.check_output_and_stopping(config, task)
    validation.check_dropout(config)
    check_tensorboard(t.tensorboard)
    validation.check_omega(config, task, cell)
    if online_learning or t.reset_on_error:
        validation.check_online(config, task, cell)
    try:  # the impl must exist and apply to this cell, gradient and window (lengths: at run time)
        resolve_impl(m.impl, cell, window=m.window, gradient=mode)
    except ValueError as err:
        raise ConfigError(f"model.impl: {err}") from None
    unroll_kwargs = dict(gradient=mode, window=m.window, impl=m.impl)
    mesh = None
    if jax.device_count() > 1:  # every process's devices when there are several processes
        for key in ("batch_size", "eval_size"):
            if getattr(t, key) % jax.device_count():
                raise ConfigError(
                    f"training.{key}={getattr(t, key)} must be divisible by the "
                    f"{jax.device_count()} devices the batch is sharded over"
                )
        mesh = Mesh(np.array(jax.devices()), ("data",))
    everywhere = None if mesh is None else NamedSharding(mesh, P())

    def replicated(step):
        """`step` with its statistics gathered onto every device: the host reads them, and with
        several processes only a fully replicated array is readable by each."""
        if mesh is None:
            return step

        def gathered(state: TrainState, batch: Batch, key: jax.Array | None = None):
            state, stats = step(state, batch, key)
            return state, jax.lax.with_sharding_constraint(stats, everywhere)

        return gathered

    keep_outputs = t.stop_on == "train"  # the training-set rule scores each training sequence

    def loss_and_carries(params, batch: Batch, carries, key):
        finals, outputs = model.apply(
            cell,
            params,
            batch.inputs,
            carries,
            m.output,
            lengths=batch.lengths,
            resets=batch.resets,
            dropout=m.dropout,
            input_dropout=m.input_dropout,
            key=key,
            **unroll_kwargs,
        )
        loss = loss_fn(outputs, batch.targets, batch.mask)
        penalty = jnp.zeros((), loss.dtype)
        if t.omega:  # Pascanu et al.'s Ω, on the states of the one layer (a stateless task)
            (layer,), readout = params

            def loss_of_states(states):
                ys = model.OUTPUTS[m.output](states @ readout.w + readout.b)
                return loss_fn(ys, batch.targets, batch.mask)

            penalty = omega(
                cell, layer, batch.inputs, loss_of_states, batch.lengths, form=t.omega_form
            )
        return loss + t.omega * penalty, (finals, outputs, loss, penalty)

    def train_step(state: TrainState, batch: Batch, key: jax.Array | None = None):
        """One update; `key` draws the dropout masks (`dropout_key`), needed when dropout > 0."""
        carries = jax.lax.stop_gradient(state.carries)  # stateful TBPTT: no gradient across batches
        (_, (finals, outputs, loss, penalty)), grads = jax.value_and_grad(
            loss_and_carries, has_aux=True
        )(state.params, batch, carries, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = TrainState(params, opt_state, finals if task.stateful else None)
        stats = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        if t.omega:
            stats["omega"] = penalty
        return new, {**stats, "outputs": outputs} if keep_outputs else stats

    if online_learning:
        train_step = online_updates.make_train_step(
            online_algorithm(t.online_algorithm, cell, _algorithm_key(config)),
            cell,
            optimizer,
            loss_fn,
            m.output,
            t.update_every,
            task.stateful,
            task.step_correct if t.reset_on_error else None,
        )

    def evaluate(params, batch: Batch):
        # `impl` left at "auto": with no gradient to take, the scan's O(T) memory beats a
        # parallel form's O(T²) on long test sequences (the mLSTM at T = 256, B = 1024).
        _, outputs = model.apply(
            cell, params, batch.inputs, None, m.output, lengths=batch.lengths, resets=batch.resets
        )
        return outputs if mesh is None else jax.lax.with_sharding_constraint(outputs, everywhere)

    return Experiment(
        config, task, cell, optimizer, jax.jit(replicated(train_step)), jax.jit(evaluate), mesh
    )


def dropout_key(seed: int, step: int) -> jax.Array:
    """The dropout masks' key of training step `step` (1-based): a function of `(seed, step)`
    like the data, so a resumed run draws the masks an uninterrupted one would."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 3), step)


def _algorithm_key(config: Config) -> jax.Array:
    """The key of a stochastic online algorithm (UORO's signs), from the run's seed."""
    return jax.random.fold_in(jax.random.key(config.training.seed), 1)


def init_state(exp: Experiment) -> TrainState:
    c = exp.config
    params = model.init(
        exp.cell,
        jax.random.key(c.training.seed),
        exp.task.input_size,
        c.model.hidden_size,
        exp.task.output_size,
        c.model.num_layers,
        c.model.readout_range,
        c.model.readout_std,
    )
    carries = None
    if c.model.gradient == "online":
        carries = online_updates.init_carries(
            online_algorithm(c.training.online_algorithm, exp.cell, _algorithm_key(c)),
            exp.cell,
            params,
            c.training.batch_size,
            c.training.feedback,
            jax.random.fold_in(jax.random.key(c.training.seed), 2),
        )
    elif exp.task.stateful:
        shape = (c.training.batch_size,)
        carries = tuple(exp.cell.initial_carry(shape, c.model.hidden_size) for _ in params.rnn)
    return TrainState(params, exp.optimizer.init(params), carries)


def evaluate(exp: Experiment, params: model.ModelParams, test: Batch) -> dict[str, float]:
    outputs = exp.evaluate(params, shard_batch(exp, test))[: test.inputs.shape[0]]  # unpad
    loss = model.LOSSES[exp.task.loss](outputs, test.targets, test.mask)
    return {"loss": float(loss), **exp.task.metrics(np.asarray(outputs), test)}


class Progress(NamedTuple):
    """What a checkpoint records besides the state, so a resumed run ends as an uninterrupted
    one would (the data of step k are a function of (seed, k): no RNG state to keep)."""

    step: int = 0  # updates applied
    solved_at: int | None = None  # first step whose evaluation met the success criterion
    final_eval: dict[str, float] | None = None  # the latest test metrics
    wall_s: float = 0.0  # training time so far (all invocations up to this checkpoint)
    cpu_s: float = 0.0  # CPU time so far, every thread of the process


def train(
    config: Config,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Summary:
    """Runs (or resumes) the experiment `config` in `out_dir`; see the module docstring.

    A new run needs a new or empty `out_dir` (`run_dir.check_new`); the writing process holds
    the directory's lock throughout (`run_dir.claimed`). SIGINT or SIGTERM end the run after
    the current step with a checkpoint and a summary, then raise `interrupt.Interrupted`.
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
            return _train(exp, out, resume, progress and writer, log if writer else None, requests)
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
) -> Summary:
    """`train` in a claimed directory; `log` None on the processes that do not write."""
    config, t, writer = exp.config, exp.config.training, log is not None
    state, done = init_state(exp), Progress()
    rule = None  # the 1997 training-set rule, when the config stops on it
    if t.stop_on == "train":
        rule = TrainingSetRule(t.train_window, t.batch_size, t.train_loss)
    if resume:
        state, done = _resume(exp, state, out, trim=writer)
        if rule is not None:
            rule.replay([r for r in run_log.records(out / METRICS) if r["step"] <= done.step])
    distributed.barrier("checked")  # every process has read the directory before any writes
    step, solved_at, final_eval = done.step, done.solved_at, done.final_eval or {}
    clock = _Clock(done.wall_s, done.cpu_s)
    source = provenance()  # now: the code that trains, even if the checkout changes meanwhile
    stop = solved_at is not None and t.stop_when_solved
    stopped_by = None  # the signal that ended the run early
    if step < t.steps and not stop:
        state = shard_state(exp, state)
        test = exp.task.test_set(t.seed, t.eval_size)
        if writer:  # only now: a task that cannot make its data leaves no file behind
            (out / "config.yaml").write_text(dump(config))
        with (
            RunLog(out / METRICS if writer else None, t.tensorboard, step) as metrics,
            _progress(progress, step, t.steps) as bar,
        ):
            for step in range(step + 1, t.steps + 1):  # noqa: B020 - resumes the counter
                host = pad_time(exp.task.batch(t.seed, step - 1, t.batch_size))
                batch = shard_batch(exp, host)
                if jax.process_count() > 1 and step == done.step + 1:
                    # compile both programs, then meet, so the first collectives start together
                    exp.train_step.lower(state, batch, dropout_key(t.seed, step)).compile()
                    exp.evaluate.lower(state.params, shard_batch(exp, test)).compile()
                    distributed.barrier(f"compiled-{step}")
                new_state, stats = exp.train_step(state, batch, dropout_key(t.seed, step))
                loss, grad_norm = float(stats["loss"]), float(stats["grad_norm"])
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    message = (
                        f"loss became {loss} (gradient norm {grad_norm}) at step {step}; the "
                        "update was not applied. Last good checkpoint: "
                        f"{checkpoint.describe(out)}. "
                        "Lower optimizer.learning_rate or set optimizer.clip_norm."
                    )
                    if writer:
                        _write_summary(
                            out, "diverged", step - 1, t, final_eval, solved_at, message, clock,
                            source,
                        )  # fmt: skip
                    raise Diverged(message)
                state = new_state
                record = {"step": step, "loss": loss, "grad_norm": grad_norm}
                if "errors" in stats:  # online learning: wrong predictions while learning
                    record["errors"] = int(stats["errors"])
                if "omega" in stats:  # Pascanu et al.'s regulariser, before its weight
                    record["omega"] = float(stats["omega"])
                met = False  # the training-set rule, scored on this batch's own outputs
                if rule is not None:
                    outputs = np.asarray(stats["outputs"])
                    record["correct"] = int(np.sum(exp.task.correct(outputs, host)))
                    met = solved_at is None and rule.update(loss, record["correct"])
                metrics.write(record)
                if met or step % t.eval_every == 0 or step == t.steps:
                    final_eval = evaluate(exp, state.params, test)
                    metrics.write({"step": step, "eval": final_eval})
                    bar.set_postfix(loss=f"{loss:.4g}", **_headline(final_eval))
                    on_test = rule is None and exp.task.solved(final_eval)
                    if solved_at is None and (met or on_test):
                        solved_at = step
                        stop = t.stop_when_solved
                stopped_by = _agreed_signal(requests, step, t.checkpoint_every)
                if step % t.checkpoint_every == 0 or step == t.steps or stop or stopped_by:
                    metrics.flush()
                    meta = {
                        "config": config.to_dict(),
                        **Progress(step, solved_at, final_eval, *clock.read())._asdict(),
                    }
                    checkpoint.save(out, step, state, meta, keep=t.keep_checkpoints)
                bar.update(1)
                if stop or stopped_by:
                    break
    if stopped_by:
        message = (
            f"{stopped_by} at step {step}: checkpoint and summary written; continue with "
            f"--resume (lstm-jax run CONFIG --out {out} --resume, the same config and --set)"
        )
        if writer:
            _write_summary(
                out, "interrupted", step, t, final_eval, solved_at, message, clock, source
            )
            _plot(out)
        raise interrupt.Interrupted(message)
    status = "solved" if solved_at is not None else "budget"
    summary = Summary(status, step, step * t.batch_size, final_eval, solved_at, out)
    if writer:
        _write_summary(out, status, step, t, final_eval, solved_at, None, clock, source)
        _plot(out)
        log(summary_line(summary, t.batch_size))
    return summary


def _agreed_signal(requests: interrupt.Requests, step: int, every: int) -> str | None:
    """The signal that stops the run after `step`, or None. Alone, a process stops at the step
    it was signalled in; several processes stop together at a checkpoint step, where each
    learns whether any of them was signalled (the steps are collective: one process leaving
    early would leave the others waiting in the next step's all-reduce)."""
    if jax.process_count() == 1:
        return requests.received[0] if requests.requested else None
    if step % every:
        return None
    if not distributed.any_process(requests.requested):
        return None
    return requests.received[0] if requests.requested else "a signal to another process"


def _plot(out: Path) -> None:
    from lstm_jax.training import runs  # runs loads models through this module

    runs.plot_learning_curve(runs.read(out), out / "learning_curve.png")


class _Clock:
    """Wall and CPU seconds since it was made, plus what earlier pieces of the run took."""

    def __init__(self, wall_s: float = 0.0, cpu_s: float = 0.0) -> None:
        self.start = (time.perf_counter() - wall_s, time.process_time() - cpu_s)

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.start[0], time.process_time() - self.start[1]


def _resume(
    exp: Experiment, template: TrainState, out: Path, trim: bool = True
) -> tuple[TrainState, Progress]:
    """Checks the checkpoint belongs to this config, loads it, and (`trim`) drops the metrics
    logged after it."""
    # The config first: a changed size would otherwise surface as a shape mismatch.
    meta = checkpoint.read_meta(out)
    stored = _as_config(meta.get("config"))  # fields added since take their defaults
    theirs = flatten(stored.to_dict() if stored else meta.get("config") or {})
    ours = flatten(exp.config.to_dict())
    # a longer budget continues the run; the schedule, data and checkpoints do not depend on it
    # (but a cosine schedule, stretched to the new budget, does: it is a difference then)
    extendable = {"training.steps"} if exp.config.optimizer.schedule != "cosine" else set()
    diff = sorted(k for k in (set(theirs) | set(ours)) - extendable if theirs.get(k) != ours.get(k))
    if diff:
        changes = "; ".join(f"{k}: {theirs.get(k)!r} in the run, {ours.get(k)!r} now" for k in diff)
        raise ConfigError(
            f"cannot resume {out}: the config differs ({changes}); only training.steps may "
            "change on --resume"
        )
    if exp.config.training.steps < int(meta.get("step", 0)):
        raise ConfigError(
            f"cannot resume {out} with training.steps={exp.config.training.steps}: it has "
            f"already taken {meta.get('step')} steps"
        )
    state, meta = checkpoint.load(out, template)
    done = Progress(
        int(meta["step"]),
        meta.get("solved_at"),
        dict(meta.get("final_eval") or {}),
        float(meta.get("wall_s", 0.0)),
        float(meta.get("cpu_s", 0.0)),
    )
    for number, _, record in run_log.numbered(out / METRICS):
        problem = run_log.malformed(record)
        if problem:  # else a KeyError or TypeError from deep in the resume
            raise checkpoint.CheckpointError(
                f"{out / METRICS} line {number}: expected {problem}; the run's metrics are "
                "damaged: restore the file or start a new run (nothing was changed)"
            )
    if trim:
        kept = [line for line, r in run_log.parsed(out / METRICS) if r["step"] <= done.step]
        (out / METRICS).write_text("".join(line + "\n" for line in kept))
    return state, done


def _as_config(raw: Any) -> Config | None:
    try:
        return from_dict(raw) if isinstance(raw, dict) else None
    except ConfigError:
        return None


def _headline(metrics: dict[str, float]) -> dict[str, str]:
    return {k: f"{v:.4g}" for k, v in metrics.items() if k not in ("loss", "sequences")}


def _write_summary(
    out: Path,
    status: str,
    step: int,
    t: TrainingConfig,
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
