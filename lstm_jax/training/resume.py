"""Resuming a run from its newest checkpoint: the same config (a longer step budget aside),
the state, the loop's progress, and the metrics log trimmed to the checkpoint's step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstm_jax.training import checkpoint, run_log
from lstm_jax.training.config import flatten, from_dict
from lstm_jax.training.experiment import Experiment
from lstm_jax.training.hooks import Loop
from lstm_jax.training.learners import TrainState
from lstm_jax.training.run_log import METRICS
from lstm_jax.training.schema import Config, ConfigError, Schedule


def resume(
    exp: Experiment, template: TrainState, out: Path, trim: bool = True
) -> tuple[TrainState, Loop, tuple[float, float]]:
    """The state, the loop's progress and the `(wall, CPU)` seconds of the run in `out`, after
    checking its checkpoint belongs to this config; `trim` drops the metrics logged after it."""
    # The config first: a changed size would otherwise surface as a shape mismatch.
    meta = checkpoint.read_meta(out)
    _check_same_config(exp, meta, out)
    state, meta = checkpoint.load(out, template)
    done = Loop(int(meta["step"]), meta.get("solved_at"), dict(meta.get("final_eval") or {}))
    clock = (float(meta.get("wall_s", 0.0)), float(meta.get("cpu_s", 0.0)))
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
    return state, done, clock


def _as_config(raw: Any) -> Config | None:
    try:
        return from_dict(raw) if isinstance(raw, dict) else None
    except ConfigError:
        return None


def _check_same_config(exp: Experiment, meta: dict[str, Any], out: Path) -> None:
    """The run's stored config equals this one, but for a longer step budget."""
    stored = _as_config(meta.get("config"))  # fields added since take their defaults
    theirs = flatten(stored.to_dict() if stored else meta.get("config") or {})
    ours = flatten(exp.config.to_dict())
    # a longer budget continues the run; the schedule, data and checkpoints do not depend on it
    # (but a cosine schedule, stretched to the new budget, does: it is a difference then)
    cosine = exp.config.optimizer.schedule is Schedule.COSINE
    extendable = set() if cosine else {"training.steps"}
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
