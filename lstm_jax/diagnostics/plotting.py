"""PNG plots of diagnostics and learning curves (matplotlib, a dependency of lstm-jax)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display is assumed
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            "plotting needs matplotlib (a dependency of lstm-jax): pip install matplotlib"
        ) from err
    return plt


def plot_curves(
    curves: Mapping[str, Sequence[float] | tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = True,
) -> Path:
    """One line per named curve on a log y-axis; writes a PNG and returns its path.

    A curve is its y values (plotted at x = 0, 1, ...) or an `(x, y)` pair. Zeros are left out
    of a log plot rather than drawn at -inf."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for n, (name, curve) in enumerate(curves.items()):
        if isinstance(curve, tuple) and len(curve) == 2:
            x, values = np.asarray(curve[0], dtype=float), np.asarray(curve[1], dtype=float)
        else:
            values = np.asarray(curve, dtype=float)
            x = np.arange(len(values))
        if logy:
            keep = values > 0
            x, values = x[keep], values[keep]
        # past the 10 colours of the cycle, change the line style so no two curves look alike
        ax.plot(x, values, label=name, linestyle=("-", "--", ":")[n // 10 % 3])
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


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
    panel's y range (a bounded score, so that panels compare at a glance)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1, 4.2), squeeze=False)
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
    return _save(plt, fig, path)


def plot_learning_curve(
    train_loss: tuple[Sequence[float], Sequence[float]] | None,
    evals: Sequence[tuple[int, Mapping[str, float]]],
    path: str | Path,
    *,
    title: str,
    solved_at: int | None = None,
) -> Path:
    """A run's learning curve, one panel per kind of metric: losses (train and test, log y),
    fractions (the test metrics that lie in [0, 1], e.g. accuracies), and counts (every other
    test metric, log y) when there are any; x is the training step and a dashed line marks the
    evaluation that met the task's success criterion (`solved_at`)."""
    plt = _pyplot()
    steps = [s for s, _ in evals]
    keys = list(evals[0][1]) if evals else []
    panels: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]] = {
        "loss": {},
        "fraction": {},
        "count": {},
    }
    if train_loss is not None:
        panels["loss"]["train loss"] = train_loss
    for key in keys:
        values = [float(e[key]) for _, e in evals]
        kind = "loss" if "loss" in key or key in ("mse", "bpc") else "count"
        if kind == "count" and all(0.0 <= v <= 1.0 for v in values):
            kind = "fraction"
        panels[kind][f"test {key}"] = (steps, values)
    panels = {kind: curves for kind, curves in panels.items() if curves}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 0.6, 3.8), squeeze=False)
    for ax, (kind, curves) in zip(axes[0], panels.items(), strict=True):
        for n, (name, (x, y)) in enumerate(curves.items()):
            x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
            if kind != "fraction":
                keep = y > 0
                x, y = x[keep], y[keep]
            # Dense train curves thin; sparse test curves with markers that shrink and change
            # shape curve by curve, so equal curves (test loss = test mse) both stay visible.
            if len(x) > 50:
                style = {"lw": 0.8, "alpha": 0.8, "linestyle": "-"}
            else:
                style = {"marker": "osd^v"[n % 5], "ms": max(6 - 1.5 * n, 2), "mfc": "none"}
                style["linestyle"] = ("-", "--", ":")[n % 3]
            ax.plot(x, y, label=name, **style)
        if kind != "fraction":
            ax.set_yscale("log")
        else:
            ax.set_ylim(-0.02, 1.02)
        if solved_at is not None:
            ax.axvline(solved_at, color="k", ls="--", lw=0.8)
            ax.text(
                solved_at, 1.0, " solved", transform=ax.get_xaxis_transform(), fontsize=7, va="top"
            )
        ax.set(
            xlabel="training step",
            ylabel=kind,
            title={"loss": "Losses", "fraction": "Fractions", "count": "Counts"}[kind],
        )
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path)


def _save(plt, fig, path: str | Path) -> Path:
    """Lays out `fig`, writes it as a PNG at `path` (making its directory) and closes it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_runs(
    runs: Mapping[str, tuple[Sequence[tuple[int, float]], Sequence[tuple[int, Mapping]]]],
    path: str | Path,
    *,
    title: str,
) -> Path:
    """Several runs overlaid, one colour per run: a panel of training loss (a running mean over
    about 1% of the steps, so the curves stay apart) and one per test metric.

    `runs` maps a name to `(train, evals)`: `[(step, loss)]` and `[(step, {metric: value})]`."""
    plt = _pyplot()
    keys = list(dict.fromkeys(k for _, evals in runs.values() for _, e in evals for k in e))
    keys = [k for k in keys if k != "sequences"]  # the test-set size, the same everywhere
    names = ["training loss", *(f"test {k}" for k in keys)]
    cols = min(len(names), 3)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols + 0.6, 3.6 * rows), squeeze=False)
    for n, (run, (train, evals)) in enumerate(runs.items()):
        colour, style = f"C{n % 10}", ("-", "--", ":")[n // 10 % 3]
        if train:
            x, y = (np.asarray(v, dtype=float) for v in zip(*train, strict=True))
            width = max(1, len(y) // 100)
            y = np.convolve(y, np.ones(width) / width, mode="valid")
            axes[0][0].plot(x[width - 1 :], y, color=colour, ls=style, lw=0.9, label=run)
        for i, key in enumerate(keys, start=1):
            points = [(s, float(e[key])) for s, e in evals if key in e]
            if points:
                ax = axes[i // cols][i % cols]
                ax.plot(*zip(*points, strict=True), color=colour, ls=style, marker=".", label=run)
    for i, name in enumerate(names):
        ax = axes[i // cols][i % cols]
        values = [v for line in ax.get_lines() for v in line.get_ydata()]
        if values and min(values) > 0 and max(values) > 20 * min(values):
            ax.set_yscale("log")  # losses and counts spanning decades
        ax.set(title=name, xlabel="training step", ylabel=name.removeprefix("test "))
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    for i in range(len(names), rows * cols):
        axes[i // cols][i % cols].axis("off")
    fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path)
