"""Reading run directories after (or during) training: what `lstm-jax show` and `compare` print
and plot.

A run directory (`trainer.train`) holds `config.yaml`, `metrics.jsonl` (one record per step,
one per evaluation), `summary.json` once the run has ended, and `checkpoints/`. `read` loads
the first three; `summary_rows` / `format_table` make the tables; `per_lag_norms` is the
library's signature view of a trained net: how much of the error at the last step reaches
each step back, under the full and the truncated gradient, from the newest checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from lstm_jax.training.config import Config, ConfigError, load


class RunError(ValueError):
    """A directory that is not a readable run."""


class Run(NamedTuple):
    path: Path
    config: Config
    summary: dict[str, Any] | None  # summary.json; None while running or when killed
    train: list[tuple[int, float]]  # (step, training loss) per step
    evals: list[tuple[int, dict[str, float]]]  # (step, test metrics) per evaluation


def read(path: str | Path) -> Run:
    """The run in `path`; a RunError naming what is missing when it is not a run directory."""
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise RunError(f"{path} is not a run directory (no config.yaml; `lstm-jax run` makes one)")
    try:
        config = load(path / "config.yaml")
    except ConfigError as err:
        raise RunError(f"{path}/config.yaml: {err}") from None
    from lstm_jax.training.run_log import curves
    from lstm_jax.training.run_log import records as read_records
    from lstm_jax.training.trainer import METRICS

    records = read_records(path / METRICS)
    summary = None
    if (path / "summary.json").is_file():
        try:
            summary = json.loads((path / "summary.json").read_text())
        except json.JSONDecodeError as err:
            raise RunError(f"{path}/summary.json is not JSON: {err}") from None
    train, evals = curves(records)
    return Run(path, config, summary, train, evals)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def summary_rows(run: Run) -> dict[str, str]:
    """The facts of one run, in reading order: what was trained, how it ended, what it cost."""
    c, s = run.config, run.summary or {}
    m, o, t = c.model, c.optimizer, c.training
    options = ", ".join(f"{k}={v}" for k, v in dict(c.task.options).items())
    steps = s.get("steps", run.train[-1][0] if run.train else 0)
    solved = s.get("solved_at_step")
    final = s.get("final_eval") or (run.evals[-1][1] if run.evals else {})
    rows = {
        "run": str(run.path),
        "task": f"{c.task.name}({options})",
        "model": f"{m.cell} {m.variant or ''} H={m.hidden_size} x{m.num_layers}".replace("  ", " "),
        "gradient": m.gradient + (f", window {m.window}" if m.window else ""),
        "optimizer": f"{o.name}, lr {o.learning_rate:g}, batch {t.batch_size}",
        "status": s.get("status", "running or interrupted (no summary.json)"),
        "steps": f"{_fmt(steps)} of {_fmt(t.steps)} ({_fmt(steps * t.batch_size)} sequences)",
        "solved at": "-" if solved is None else f"step {_fmt(solved)}",
    }
    rows.update({f"test {k}": _fmt(v) for k, v in final.items()})
    if "train_wall_s" in s:
        rows["time"] = f"{s['train_wall_s']:.1f} s wall, {s['train_cpu_s']:.1f} s CPU"
    source = s.get("provenance") or {}
    if source.get("commit"):
        head, _, dirty = source["commit"].partition("+")
        rows["commit"] = head[:12] + (f" (+{dirty})" if dirty else "")
    return rows


def format_table(rows: Sequence[dict[str, str]]) -> str:
    """Aligned columns, one row per dict (keys missing from a row print as '-'); with several
    rows, the values every row shares are printed once above the table instead."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    shared = [k for k in keys if len(rows) > 1 and len({row.get(k, "-") for row in rows}) == 1]
    keys = [k for k in keys if k not in shared]
    cells = [keys] + [[row.get(k, "-") for k in keys] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(keys))]
    lines = [f"all runs: {k} {rows[0][k]}" for k in shared]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def per_lag_norms(
    run: Run, sequences: int = 16, max_steps: int = 1000
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{"∂L/∂<carry field> (<mode>)": (lags, mean norm)}` from the newest checkpoint.

    L = Σ ŷ_T, the net's output summed at the last step of the first `sequences` test
    sequences (all cut to the shortest of them, and to `max_steps`), taken back through the top
    layer (its inputs are the lower layers' outputs) with
    `diagnostics.gradient_flow.per_lag_norms`. Lag `T - k` holds the norm of `∂L/∂carry_k`,
    averaged over the sequences, under full BPTT and under the truncated gradient.
    """
    from lstm_jax.diagnostics.gradient_flow import per_lag_norms as norms_of
    from lstm_jax.driver.layers import stacked
    from lstm_jax.training import checkpoint, model
    from lstm_jax.training.trainer import build, init_state

    exp = build(run.config)
    state, _ = checkpoint.load(run.path, init_state(exp))
    test = exp.task.test_set(run.config.training.seed, max(sequences, 1))
    steps = int(np.min(test.lengths)) if test.lengths is not None else test.inputs.shape[0]
    steps = min(steps, max_steps)
    xs = jnp.asarray(test.inputs[:steps, :sequences])
    *lower, top = state.params.rnn
    if lower:
        xs = stacked(exp.cell, tuple(lower), xs)[1]
    readout, output = state.params.readout, model.OUTPUTS[run.config.model.output]

    def loss(h):
        return jnp.sum(output(h @ readout.w + readout.b))

    curves = {}
    for mode in ("full", "truncated"):
        for name, leaf in _fields(norms_of(exp.cell, top, xs, loss, gradient=mode)):
            mean = np.asarray(jnp.mean(leaf, axis=1))[::-1]  # index = lag T - k
            curves[f"∂L/∂{name} ({mode})"] = (np.arange(len(mean)), mean)
    return curves


def _fields(carry: Any) -> list[tuple[str, Any]]:
    """`(name, array)` for each part of a carry: a NamedTuple's fields, a tuple's indices."""
    if hasattr(carry, "_fields"):
        return [(n, v) for n, v in zip(carry._fields, carry, strict=True) if v is not None]
    if isinstance(carry, tuple | list):
        return [(str(i), v) for i, v in enumerate(carry) if v is not None]
    return [("carry", carry)]
