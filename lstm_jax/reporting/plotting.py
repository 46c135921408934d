"""PNG plots of diagnostics and learning curves (matplotlib, a dependency of lstm-jax).

Each function draws its own `matplotlib.figure.Figure` (no pyplot state, no display), writes it
as a PNG and returns the path written. Learning curves put each unit in its own panel
(`UNITS`): no axis mixes losses with counts or bits. A panel's y-axis is logarithmic only where
its values span more than `SPAN`; one holding zeros too is symlog, linear from 0 up to the
smallest nonzero value's decade, so that a final `wrong = 0` stays on the plot at the bottom of
the axis (counts are whole numbers: that linear stretch holds nothing but the zero).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

Curve = tuple[Sequence[float], Sequence[float]]  # (x, y), of equal length
SIZE = "test-set size"  # a constant of the run, said in the title rather than drawn
# The unit of each metric the trainer and the tasks log. A metric not named here is a fraction
# when its values lie in [0, 1], else a plain value.
UNITS: dict[str, str] = {
    **dict.fromkeys(("loss", "mse", "nll", "omega"), "loss"),
    "bits_per_char": "bits per character",
    "grad_norm": "gradient norm",
    **dict.fromkeys(
        (
            "accuracy",
            "correct_fraction",
            "scaled_accuracy",
            "symbol_accuracy",
            "sequences_correct",
            "strings_correct",
            "symbols_correct",
            "streams_correct",
        ),
        "fraction",
    ),
    **dict.fromkeys(("wrong", "wrong_1997", "errors", "correct"), "count"),
    **dict.fromkeys(("longest_correct_run", "symbols_before_first_error"), "symbols"),
    **dict.fromkeys(("sequences", "frames"), SIZE),
}
ORDER = ("loss", "bits per character", "fraction", "count", "symbols", "gradient norm", "value")
FEW = 50  # series of at most this many points get a marker at each (one point is visible)
SPAN = 20.0  # positive values spanning more than this factor get a log axis


class Mark(NamedTuple):
    """A vertical line at training step `step` in every panel, `label` in the legends."""

    step: float
    label: str  # e.g. "solved at step 2,200"
    colour: str = "k"


def _figure(panels: int, width: float, height: float) -> tuple[Any, Any]:
    """A figure of `panels` axes `[rows][cols]`, `width` x `height` inches each: one row of up
    to 3, more in two rows (unused places hidden)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "plotting needs matplotlib (a dependency of lstm-jax): pip install matplotlib"
        ) from err
    cols = panels if panels <= 3 else -(-panels // 2)
    rows = -(-panels // cols)
    fig = Figure(figsize=(width * cols + 0.6, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i in range(panels, rows * cols):
        axes[i // cols][i % cols].axis("off")
    return fig, axes


def _save(fig: Any, path: str | Path) -> Path:
    """Writes `fig` as a PNG at `path` (".png" appended unless it ends so, as matplotlib would
    append it; the directory made) and returns the path written."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")
    return path


def _unit(key: str, values: Sequence[float]) -> str:
    """The unit of metric `key` (`UNITS`), from its values when it is not named there."""
    if key in UNITS:
        return UNITS[key]
    return "fraction" if all(0.0 <= v <= 1.0 for v in values) else "value"


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"


def _style(n: int, points: int) -> dict[str, Any]:
    """How series `n` of a panel is drawn: thin and plain when dense, else a marker at every
    point; past the 10 colours of the cycle the line style changes, so no two look alike."""
    style: dict[str, Any] = {"lw": 0.8, "alpha": 0.8}
    if points <= FEW:
        style = {"lw": 1.2, "marker": "osd^v"[n % 5], "ms": 4}
    return {**style, "color": f"C{n % 10}", "linestyle": ("-", "--", ":")[n // 10 % 3]}


def _draw(ax: Any, label: str, curve: Curve, n: int) -> None:
    """Series `n` of a panel, its finite points (`_style`)."""
    x, y = np.asarray(curve[0], dtype=float), np.asarray(curve[1], dtype=float)
    keep = np.isfinite(y)
    ax.plot(x[keep], y[keep], label=label, **_style(n, int(keep.sum())))


def _finish(ax: Any, unit: str, title: str = "", marks: Sequence[Mark] = ()) -> None:
    """Y-axis (`_scale`), `marks`, labels and grid of a drawn panel. Steps are whole numbers,
    and a panel spanning under 2 of them (one logged step) is widened to 2, not to a
    fraction of a step."""
    from matplotlib.ticker import MaxNLocator

    _scale(ax, unit)  # before the marks: their lines are not data
    for mark in marks:
        ax.axvline(mark.step, color=mark.colour, ls="--", lw=0.9, label=mark.label)
    low, high = ax.get_xlim()
    if high - low < 2:
        ax.set_xlim((low + high) / 2 - 1, (low + high) / 2 + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    if unit == "count" and ax.get_yscale() == "linear":
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title=title, xlabel="training step", ylabel=unit)
    ax.grid(True, which="major", alpha=0.3)


def _scale(ax: Any, unit: str) -> None:
    """The y-axis of a drawn panel: fractions on [0, 1] (scaled accuracies may dip below);
    otherwise log, symlog (zeros among the values) or, within a factor `SPAN`, linear."""
    lines = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    y = np.concatenate(lines) if lines else np.zeros(0)
    if unit == "fraction":
        ax.set_ylim(min(-0.02, float(np.min(y, initial=0.0)) - 0.02), 1.02)
        return
    positive = y[y > 0]
    if not positive.size or (y < 0).any() or positive.max() <= SPAN * positive.min():
        return
    if (y == 0).any():
        floor = 10.0 ** np.floor(np.log10(positive.min()))
        ax.set_yscale("symlog", linthresh=floor, linscale=0.5)
        if floor >= 1:  # counts: 0, 1, 10, 100 read better than 0, 10⁰, 10¹, 10²
            from matplotlib.ticker import FuncFormatter

            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    else:
        ax.set_yscale("log")


def _same(a: Curve, b: Curve) -> bool:
    """Equal series, to float32 precision (test loss and mse: one in float32, one in float64)."""
    return len(a[0]) == len(b[0]) and bool(
        np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1], rtol=1e-5, atol=0, equal_nan=True)
    )


def _renamed(d: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """`d` with key `old` renamed `new`, in place in the order."""
    return {(new if k == old else k): v for k, v in d.items()}


def _title(title: str, notes: Sequence[str]) -> str:
    """`title`, its first line followed by the notes in parentheses."""
    first, *rest = title.split("\n")
    return "\n".join([first + (f" ({'; '.join(notes)})" if notes else ""), *rest])


def plot_curves(
    curves: Mapping[str, Sequence[float] | Curve],
    path: str | Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = True,
) -> Path:
    """One line per named curve on a log y-axis; writes a PNG and returns the path written.

    A curve is its y values (plotted at x = 0, 1, ...) or an `(x, y)` pair. Zeros are left out
    of a log plot rather than drawn at -inf; a curve equal to an earlier one is drawn once,
    named for both ("a = b"), so no line hides another.

    >>> plot_curves({"norm": [1.0, 0.1, 0.01]}, "/tmp/c.png", title="t", xlabel="lag", ylabel="n")
    PosixPath('/tmp/c.png')
    """
    pairs: dict[str, Curve] = {}
    for name, curve in curves.items():
        if isinstance(curve, tuple) and len(curve) == 2:
            x, values = np.asarray(curve[0], dtype=float), np.asarray(curve[1], dtype=float)
        else:
            values = np.asarray(curve, dtype=float)
            x = np.arange(len(values), dtype=float)
        twin = next((seen for seen, c in pairs.items() if _same(c, (x, values))), None)
        pairs = _renamed(pairs, twin, f"{twin} = {name}") if twin else {**pairs, name: (x, values)}
    fig, axes = _figure(1, 6.4, 4.5)
    ax = axes[0][0]
    for n, (name, (x, values)) in enumerate(pairs.items()):
        keep = values > 0 if logy else np.ones(len(values), dtype=bool)
        # past the 10 colours of the cycle, change the line style so no two curves look alike
        ax.plot(x[keep], values[keep], label=name, linestyle=("-", "--", ":")[n // 10 % 3])
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_strips(
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | Path,
    *,
    title: str,
    ylabel: str,
    logy: bool = True,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """One panel per key of `panels`, one column of points per setting: each point one run's
    value (e.g. sequences to success). Infinite values (runs that never succeeded) are drawn as
    crosses on a "not solved" line above the panel's largest finite value. `ylim` fixes every
    panel's y range (a bounded score, so that panels compare at a glance).

    >>> plot_strips({"adding": {"full": [1e4, np.inf]}}, "/tmp/s.png", title="t", ylabel="seq")
    PosixPath('/tmp/s.png')
    """
    fig, axes = _figure(len(panels), 3.2, 4.2)
    for ax, (panel, settings) in zip(axes[0], panels.items(), strict=True):
        finite = [v for vs in settings.values() for v in vs if np.isfinite(v)]
        top = (max(finite) * (3 if logy else 1.2)) if finite else 1.0
        for i, values in enumerate(settings.values()):
            v = np.asarray(values, dtype=float)
            jitter = np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else np.zeros(1)
            ok = np.isfinite(v)
            ax.scatter(i + jitter[ok], v[ok], s=18, color=f"C{i}")
            ax.scatter(i + jitter[~ok], np.full((~ok).sum(), top), marker="x", color=f"C{i}")
            if len(v):  # the median over all runs; unsolved ones count as infinite
                ax.hlines(min(np.median(v), top), i - 0.25, i + 0.25, color="k", lw=1)
        if len(finite) < sum(len(vs) for vs in settings.values()):
            ax.axhline(top, color="0.7", ls=":", lw=1)
            ax.text(len(settings) - 0.5, top, "not solved", ha="right", va="bottom", fontsize=7)
        ax.set_xticks(range(len(settings)), list(settings), rotation=30, ha="right", fontsize=8)
        if logy:
            ax.set_yscale("log")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_title(panel, fontsize=9)
        ax.grid(True, axis="y", which="major", alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def learning_curve_panels(
    train: Mapping[str, Curve], evals: Sequence[tuple[int, Mapping[str, float]]]
) -> tuple[dict[str, dict[str, Curve]], list[str]]:
    """`({unit: {label: (steps, values)}}, notes)`, units in `ORDER`: the per-step training
    metrics (`train`, e.g. `{"loss": ..., "grad_norm": ...}`) and the test metrics of `evals`
    (`[(step, {metric: value})]`). A series equal to another of its panel is folded into it
    ("test loss = test mse"); a constant test-set size is a note ("test set: 2,560
    sequences"), not a flat line."""
    named = [(f"train {key}", key, curve) for key, curve in train.items()]
    for key in dict.fromkeys(k for _, e in evals for k in e):
        points = [(s, float(e[key])) for s, e in evals if key in e]
        named.append((f"test {key}", key, tuple(zip(*points, strict=True))))
    panels: dict[str, dict[str, Curve]] = {}
    notes = []
    for label, key, curve in named:
        unit = _unit(key, curve[1])
        if unit == SIZE and len(set(curve[1])) == 1:
            notes.append(f"test set: {_count(curve[1][0])} {key}")
            continue
        unit = "count" if unit == SIZE else unit  # a test set that changed size: draw it
        curves = panels.setdefault(unit, {})
        twin = next((name for name, seen in curves.items() if _same(seen, curve)), None)
        if twin is None:
            curves[label] = curve
        else:
            panels[unit] = _renamed(curves, twin, f"{twin} = {label}")
    return {unit: panels[unit] for unit in ORDER if unit in panels}, notes


def plot_learning_curve(
    train_loss: Curve | None,
    evals: Sequence[tuple[int, Mapping[str, float]]],
    path: str | Path,
    *,
    title: str,
    solved_at: int | None = None,
    train: Mapping[str, Curve] | None = None,
    marks: Sequence[Mark] = (),
) -> Path:
    """A run's learning curve as a PNG at `path`; returns the path written.

    `train_loss` is `(steps, losses)`, `train` more per-step training metrics (`{"grad_norm":
    (steps, norms)}`), `evals` `[(step, {metric: value})]`: one panel per unit
    (`learning_curve_panels`), x the training step. Dashed lines mark `solved_at` (the
    evaluation that met the task's success criterion) and each of `marks`.

    >>> evals = [(10, {"loss": 0.3, "wrong": 40.0}), (20, {"loss": 0.01, "wrong": 0.0})]
    >>> plot_learning_curve(([1, 2], [0.5, 0.4]), evals, "/tmp/lc.png", title="run")
    PosixPath('/tmp/lc.png')
    """
    series = {**({"loss": train_loss} if train_loss is not None else {}), **(train or {})}
    if solved_at is not None:
        marks = [Mark(solved_at, f"solved at step {solved_at:,}"), *marks]
    panels, notes = learning_curve_panels(series, evals)
    fig, axes = _figure(max(len(panels), 1), 4.6, 3.8)
    for ax, (unit, curves) in zip(axes.flat, panels.items(), strict=False):
        for n, (label, curve) in enumerate(curves.items()):
            _draw(ax, label, curve, n)
        _finish(ax, unit, marks=marks)
        ax.legend(fontsize=7)
    fig.suptitle(_title(title, notes), fontsize=10)
    return _save(fig, path)


def _running_mean(train: Sequence[tuple[int, float]]) -> Curve:
    """`(steps, losses)` of `[(step, loss)]`, averaged over about 1% of the steps."""
    x, y = (np.asarray(v, dtype=float) for v in zip(*train, strict=True))
    width = max(1, len(y) // 100)
    return x[width - 1 :], np.convolve(y, np.ones(width) / width, mode="valid")


def compare_panels(
    runs: Mapping[str, tuple[Sequence[tuple[int, float]], Sequence[tuple[int, Mapping]]]],
) -> tuple[dict[str, tuple[str, dict[str, Curve]]], list[str]]:
    """`({panel: (unit, {run: (steps, values)})}, notes)` for `plot_runs`: the training loss
    (a running mean over about 1% of the steps, so the curves stay apart), then each test
    metric. A metric equal to an earlier one in every run shares its panel ("test loss =
    mse"); a test-set size the same in every run is a note, not a panel."""
    train = {name: _running_mean(t) for name, (t, _) in runs.items() if t}
    panels = {"training loss": ("loss", train)} if train else {}
    notes = []
    for key in dict.fromkeys(k for _, evals in runs.values() for _, e in evals for k in e):
        curves = {}
        for name, (_, evals) in runs.items():
            points = [(s, float(e[key])) for s, e in evals if key in e]
            if points:
                curves[name] = tuple(zip(*points, strict=True))
        values = sorted({v for _, y in curves.values() for v in y})
        unit = _unit(key, values)
        if unit == SIZE and len(values) == 1:
            notes.append(f"test set: {_count(values[0])} {key}")
            continue
        twin = next(
            (p for p, (_, seen) in panels.items() if seen.keys() == curves.keys()
             and all(_same(seen[r], curves[r]) for r in seen)),
            None,
        )  # fmt: skip
        if twin is None:
            panels[f"test {key}"] = ("count" if unit == SIZE else unit, curves)
        else:
            panels = _renamed(panels, twin, f"{twin} = {key}")
    return panels, notes


def plot_runs(
    runs: Mapping[str, tuple[Sequence[tuple[int, float]], Sequence[tuple[int, Mapping]]]],
    path: str | Path,
    *,
    title: str,
) -> Path:
    """Several runs overlaid, one colour and marker per run, one panel per `compare_panels`
    entry with its unit on the y-axis; writes a PNG and returns the path written.

    `runs` maps a legend label (what sets the run apart: "gradient: truncated") to `(train,
    evals)`: `[(step, loss)]` and `[(step, {metric: value})]`.

    >>> runs = {"seed: 0": ([(1, 0.5), (2, 0.3)], [(2, {"loss": 0.3})]), "seed: 1": ([], [])}
    >>> plot_runs(runs, "/tmp/runs.png", title="2 runs")
    PosixPath('/tmp/runs.png')
    """
    panels, notes = compare_panels(runs)
    fig, axes = _figure(max(len(panels), 1), 4.6, 3.6)
    index = {name: n for n, name in enumerate(runs)}  # a run's colour and marker in every panel
    for ax, (name, (unit, curves)) in zip(axes.flat, panels.items(), strict=False):
        for run, curve in curves.items():
            _draw(ax, run, curve, index[run])
        _finish(ax, unit, name)
    # one legend for all panels, below them: the labels (what differs) may be long
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], **_style(n, 1)) for n in index.values()]
    fig.legend(handles, list(index), loc="outside lower center", fontsize=8)
    fig.suptitle(_title(title, notes), fontsize=10)
    return _save(fig, path)
