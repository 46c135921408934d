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
