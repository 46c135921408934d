"""Plots: `plot_curves` (lines, x/y pairs or plain sequences) and `plot_strips` (one point per
run, unsolved runs on a line of their own) write real PNGs, and refuse empty input clearly."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lstm_jax.diagnostics.plotting import plot_curves, plot_strips

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_curves_writes_a_png(tmp_path):
    path = plot_curves(
        {"decaying": [1.0, 0.1, 0.01, 0.0], "flat": ([0, 1, 2, 3], [1, 1, 1, 1])},
        tmp_path / "sub" / "curves.png",
        title="t",
        xlabel="lag",
        ylabel="norm",
    )
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000


def test_plot_strips_draws_every_run_and_the_unsolved_ones(tmp_path):
    panels = {
        "adding": {"full": [1e4, 2e4, np.inf], "truncated": [3e4, 5e4, 8e4]},
        "reber": {"full": [np.inf, np.inf], "truncated": [2e3]},
    }
    path = plot_strips(panels, tmp_path / "strips.png", title="t", ylabel="sequences")
    assert path.read_bytes()[:8] == PNG
    with Image.open(path) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("L"))
    assert width > height > 100  # two panels side by side
    assert (pixels < 128).mean() > 0.005  # something is drawn, not a blank canvas


def test_learning_curve_has_one_panel_per_kind_of_metric(tmp_path):
    """Losses, fractions and counts each get a panel (counts only when there are any), so the
    figure is as wide as its panels; the end-of-run line prints counts as integers."""
    from lstm_jax.diagnostics.plotting import plot_learning_curve
    from lstm_jax.training.trainer import Summary, summary_line

    train = (list(range(1, 101)), list(np.linspace(1.0, 0.01, 100)))
    evals = [(s, {"loss": 1.0 / s, "accuracy": s / 100, "wrong": 100.0 - s}) for s in (10, 50, 100)]
    three = plot_learning_curve(train, evals, tmp_path / "a.png", title="t", solved_at=50)
    two = plot_learning_curve(
        train,
        [(s, {k: e[k] for k in ("loss", "accuracy")}) for s, e in evals],
        tmp_path / "b.png",
        title="t",
    )
    width3, width2 = Image.open(three).size[0], Image.open(two).size[0]
    assert three.read_bytes()[:8] == PNG and abs(width3 / width2 - 14.4 / 9.8) < 0.02
    line = summary_line(
        Summary("solved", 50, 0, {"loss": 2e-5, "wrong": 0.0, "sequences": 2560.0}, 50, tmp_path),
        32,
    )
    assert (
        line
        == "solved after 50 steps (1,600 sequences); test: loss 2e-05, wrong 0, sequences 2,560"
    )
