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
    for name, curve in curves.items():
        if isinstance(curve, tuple) and len(curve) == 2:
            x, values = np.asarray(curve[0], dtype=float), np.asarray(curve[1], dtype=float)
        else:
            values = np.asarray(curve, dtype=float)
            x = np.arange(len(values))
        if logy:
            keep = values > 0
            x, values = x[keep], values[keep]
        ax.plot(x, values, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
