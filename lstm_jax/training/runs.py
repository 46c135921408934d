"""Reading run directories after (or during) training: what `lstm-jax show` and `compare` print
and plot.

A run directory (`trainer.train`) holds `config.yaml`, `metrics.jsonl` (one record per step,
one per evaluation), `summary.json` once the run has ended, and `checkpoints/`. `read` loads
the first three; `summary_rows` / `format_table` make the tables; `plot_learning_curve` and
`plot_compare` the pictures; `per_lag_norms` is the library's signature view of a trained net:
how much of the error at the last step reaches each step back, under the full and the
truncated gradient, from the newest checkpoint. Nothing here writes to a run directory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from lstm_jax.training import run_log
from lstm_jax.training.config import Config, ConfigError, flatten, load
from lstm_jax.training.run_log import METRICS


class RunError(ValueError):
    """A directory that is not a readable run."""


class Run(NamedTuple):
    path: Path
    config: Config
    summary: dict[str, Any] | None  # summary.json; None while running or when killed
    train: list[tuple[int, float]]  # (step, training loss) per step
    evals: list[tuple[int, dict[str, float]]]  # (step, test metrics) per evaluation
    per_step: dict[str, tuple[list[int], list[float]]]  # training metric: (steps, values)


def read(path: str | Path) -> Run:
    """The run in `path`; a RunError naming what is missing or malformed when it is not a
    readable run directory.

    >>> run = read("runs/quickstart")  # doctest: +SKIP
    >>> run.summary["status"], run.evals[-1]  # doctest: +SKIP
    ('solved', (2200, {'loss': 7.95e-05, 'correct_fraction': 1.0, 'wrong': 0.0, ...}))
    """
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise RunError(f"{path} is not a run directory (no config.yaml; `lstm-jax run` makes one)")
    try:
        config = load(path / "config.yaml")
    except ConfigError as err:
        raise RunError(f"{path}/config.yaml: {err}") from None
    summary = None
    if (path / "summary.json").is_file():
        try:
            summary = json.loads((path / "summary.json").read_text())
        except json.JSONDecodeError as err:
            raise RunError(f"{path}/summary.json is not JSON: {err}") from None
    records = _records(path)
    train, evals = run_log.curves(records)
    per_step: dict[str, tuple[list[int], list[float]]] = {}
    for record in (r for r in records if "eval" not in r):
        for key, value in record.items():
            if key != "step":
                steps, values = per_step.setdefault(key, ([], []))
                steps.append(record["step"])
                values.append(value)
    return Run(path, config, summary, train, evals, per_step)


def _records(path: Path) -> list[dict[str, Any]]:
    """The records of `path`'s metrics log, each checked to be one the trainer writes."""
    found = run_log.numbered(path / METRICS)
    for number, line, record in found:
        expected = run_log.malformed(record)
        if expected is not None:
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise RunError(
                f"{path / METRICS} line {number}: expected {expected}\n  {shown}\n"
                "  (the trainer never writes this: the file was edited or damaged)"
            )
    return [record for _, _, record in found]


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
        "gradient": _gradient(c),
        "optimizer": f"{o.name.value}, lr {o.learning_rate:g}, batch {t.batch_size}",
        "status": s.get("status", "running or interrupted (no summary.json)") + _why(s),
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


def _gradient(config: Config) -> str:
    """How the run's gradient was taken, as its learner describes it ("full", "truncated,
    window 10", "online (rtrl)"), or the learner's name if it is not registered here."""
    from lstm_jax.training.learners import LEARNERS

    learner = LEARNERS.get(config.training.learner)
    return config.training.learner if learner is None else learner.describe(config)


def _why(summary: dict[str, Any]) -> str:
    """`: <reason>` for a run that ended early (the first clause of its summary's message, e.g.
    "loss became nan (gradient norm nan) at step 2"), else ''."""
    message = summary.get("message")
    return f": {message.split(';')[0]}" if message else ""


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


def check_sequences(sequences: int) -> None:
    """A RunError unless `sequences` (`show --sequences`, the test sequences of the per-lag
    view) is at least 1.

    >>> check_sequences(0)
    Traceback (most recent call last):
    lstm_jax.training.runs.RunError: --sequences must be a whole number >= 1 ..., got 0
    """
    if sequences < 1:
        raise RunError(f"--sequences must be a whole number >= 1 (test sequences), got {sequences}")


def per_lag_norms(
    run: Run, sequences: int = 16, max_steps: int = 1000
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{"∂L/∂<carry field> (<mode>)": (lags, mean norm)}` from the newest checkpoint.

    L = Σ ŷ_T, the net's output summed at the last step of the first `sequences` test
    sequences (all cut to the shortest of them, and to `max_steps`), taken back through the top
    layer (its inputs are the lower layers' outputs) with
    `diagnostics.gradient_flow.per_lag_norms`. Lag `T - k` holds the norm of `∂L/∂carry_k`,
    averaged over the sequences, under full BPTT and under the truncated gradient. A RunError
    when `sequences` < 1.

    >>> norms = per_lag_norms(read("runs/quickstart"), sequences=4)  # doctest: +SKIP
    >>> sorted(norms)  # doctest: +SKIP
    ['∂L/∂c (full)', '∂L/∂c (truncated)', '∂L/∂h (full)', '∂L/∂h (truncated)']
    """
    check_sequences(sequences)
    from lstm_jax.diagnostics.gradient_flow import per_lag_norms as norms_of
    from lstm_jax.driver.layers import stacked
    from lstm_jax.training import model
    from lstm_jax.training.load import load_run

    net = load_run(run.path)
    test = net.task.test_set(run.config.training.seed, sequences)
    steps = int(np.min(test.lengths)) if test.lengths is not None else test.inputs.shape[0]
    steps = min(steps, max_steps)
    xs = jnp.asarray(test.inputs[:steps, :sequences])
    *lower, top = net.params.rnn
    if lower:
        xs = stacked(net.cell, tuple(lower), xs)[1]
    readout, output = net.params.readout, model.OUTPUTS[net.config.model.output]

    def loss(h):
        return jnp.sum(output(h @ readout.w + readout.b))

    norms = {}
    for mode in ("full", "truncated"):
        for name, leaf in _fields(norms_of(net.cell, top, xs, loss, gradient=mode)):
            mean = np.asarray(jnp.mean(leaf, axis=1))[::-1]  # index = lag T - k
            norms[f"∂L/∂{name} ({mode})"] = (np.arange(len(mean)), mean)
    return norms


def _fields(carry: Any) -> list[tuple[str, Any]]:
    """`(name, array)` for each part of a carry: a NamedTuple's fields, a tuple's indices."""
    if hasattr(carry, "_fields"):
        return [(n, v) for n, v in zip(carry._fields, carry, strict=True) if v is not None]
    if isinstance(carry, tuple | list):
        return [(str(i), v) for i, v in enumerate(carry) if v is not None]
    return [("carry", carry)]


def plot_learning_curve(run: Run, png: str | Path) -> Path | None:
    """`run`'s learning curve as `png` (`plotting.plot_learning_curve`: every per-step training
    metric and every test metric, one panel per unit), marking the step it was solved at and
    the step it diverged at, the reason in the title; the path written, or None when nothing
    was logged.

    >>> plot_learning_curve(read("runs/quickstart"), "/tmp/curve.png")  # doctest: +SKIP
    PosixPath('/tmp/curve.png')
    """
    from lstm_jax.reporting.plotting import Mark
    from lstm_jax.reporting.plotting import plot_learning_curve as plot

    if not (run.per_step or run.evals):
        return None
    s, rows = run.summary or {}, summary_rows(run)
    title = f"{run.path.name}: {rows['task']}, {rows['model']}, gradient {rows['gradient']}"
    if s.get("message"):
        title += f"\n{s.get('status')}{_why(s)}"
    marks = []
    if s.get("status") == "diverged":  # `steps` counts the updates applied before the failure
        step = int(s.get("steps", 0)) + 1
        marks.append(Mark(step, f"diverged at step {step:,}", "C3"))
    return plot(
        None,
        run.evals,
        png,
        title=title,
        solved_at=s.get("solved_at_step"),
        train=run.per_step,
        marks=marks,
    )


def labels(found: Sequence[Run]) -> list[str]:
    """A legend label per run: the config values that differ between the runs, by the last
    part of their key ("gradient: truncated, seed: 3, optimizer: sgd"; the dotted key where
    two end alike), else the run directory; " (diverged)" after a run that diverged.

    >>> labels([read("runs/full"), read("runs/truncated")])  # doctest: +SKIP
    ['gradient: full', 'gradient: truncated']
    """
    flat = [flatten(run.config.to_dict()) for run in found]
    keys = [k for k in dict.fromkeys(k for f in flat for k in f) if _differs(flat, k)]
    ends = [_short(key) for key in keys]
    names = [end if ends.count(end) == 1 else key for key, end in zip(keys, ends, strict=True)]
    dirs = [run.path.name for run in found]
    unique = len(set(dirs)) == len(dirs)
    out = []
    for run, values in zip(found, flat, strict=True):
        said = [f"{name}: {values.get(key, '-')}" for name, key in zip(names, keys, strict=True)]
        label = ", ".join(said) or (run.path.name if unique else str(run.path))
        diverged = (run.summary or {}).get("status") == "diverged"
        out.append(label + (" (diverged)" if diverged else ""))
    # the same run twice: numbered, so that each keeps its line
    return [f"{label} [{i + 1}]" if out.count(label) > 1 else label for i, label in enumerate(out)]


def _short(key: str) -> str:
    """The last part of a dotted key; a section's "name" reads as the section (optimizer)."""
    *sections, last = key.split(".")
    return sections[-1] if last == "name" and sections else last


def _differs(flat: Sequence[dict[str, Any]], key: str) -> bool:
    return len({repr(f.get(key)) for f in flat}) > 1


def plot_compare(found: Sequence[Run], png: str | Path) -> Path:
    """The runs' curves overlaid (`plotting.plot_runs`), each named by `labels`, as `png` (an
    existing directory: `png/compare.png`; ".png" appended to a name without it); returns the
    path written.

    >>> plot_compare([read("runs/full"), read("runs/truncated")], "cmp.png")  # doctest: +SKIP
    PosixPath('cmp.png')
    """
    from lstm_jax.reporting.plotting import plot_runs

    png = Path(png) / "compare.png" if Path(png).is_dir() else Path(png)
    rows = [summary_rows(run) for run in found]
    shared = [rows[0][k] for k in ("task", "model") if all(r[k] == rows[0][k] for r in rows)]
    title = f"{len(found)} runs" + (f" of {', '.join(shared)}" if shared else "")
    curves = {name: (run.train, run.evals) for name, run in zip(labels(found), found, strict=True)}
    return plot_runs(curves, png, title=title)
