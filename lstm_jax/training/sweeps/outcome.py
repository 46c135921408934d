"""What a sweep's run ended with (`Outcome`), read from its run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from lstm_jax.training.sweeps.grid import Run


class Outcome(NamedTuple):
    """What a run ended with (`summary.json`), plus its test curve and, if asked, its trace."""

    label: str
    seed: int
    status: str  # "solved" | "budget" | "diverged"
    steps: int  # updates applied
    sequences: int  # steps × batch size
    solved_at_step: int | None  # first evaluation that met the task's criterion
    solved_at_sequences: int | None
    final_eval: dict[str, float]
    evals: list[tuple[int, dict[str, float]]]  # (step, test metrics) at every evaluation
    grad_norms: list[float] | None  # global gradient norm per step, when `keep_grad_norms`
    wall_s: float  # this call (a run read back from its directory: the read-back only)
    out_dir: str
    overrides: tuple[str, ...] = ()  # the run's `--set` strings (what the `--check` re-runs)
    train_wall_s: float | None = None  # the run's own training time (summary.json)
    train_cpu_s: float | None = None
    commit: str | None = None  # the git commit that trained it


def read_outcome(out: Path, run: Run, keep_grad_norms: bool, wall_s: float) -> Outcome:
    """The outcome of the ended run `run` in `out` (its `summary.json` and metrics log);
    `wall_s` is the time this call spent on it.

    >>> read_outcome(Path("runs/x-seed0"), Run("x", 0), False, 0.0).status  # doctest: +SKIP
    'solved'
    """
    from lstm_jax.training import run_log  # in the worker: the parent may not need jax

    summary = json.loads((out / "summary.json").read_text())
    records = run_log.records(out / run_log.METRICS)
    batch = summary["sequences"] // max(summary["steps"], 1)
    solved = summary["solved_at_step"]
    return Outcome(
        label=run.label,
        seed=run.seed,
        status=summary["status"],
        steps=summary["steps"],
        sequences=summary["sequences"],
        solved_at_step=solved,
        solved_at_sequences=None if solved is None else solved * batch,
        final_eval=summary["final_eval"] or {},
        evals=[(r["step"], r["eval"]) for r in records if "eval" in r],
        grad_norms=[r["grad_norm"] for r in records if "grad_norm" in r]
        if keep_grad_norms
        else None,
        wall_s=wall_s,
        out_dir=str(out),
        overrides=tuple(run.overrides),
        train_wall_s=summary.get("train_wall_s"),
        train_cpu_s=summary.get("train_cpu_s"),
        commit=(summary.get("provenance") or {}).get("commit"),
    )
