"""Plots: `plot_curves` (lines, x/y pairs or plain sequences) and `plot_strips` (one point per
run, unsolved runs on a line of their own) write real PNGs; learning curves and the overlay of
runs draw every point, each unit in its own panel, no line twice (checked on the figures'
data, captured as they are saved)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lstm_jax.reporting.plotting import plot_curves, plot_learning_curve, plot_runs, plot_strips

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
    from lstm_jax.reporting.plotting import plot_learning_curve
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


def _lines(ax) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{label: (x, y)}` of the data lines of `ax` (not the vertical marks)."""
    return {
        line.get_label(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
        for line in ax.get_lines()
        if not line.get_label().startswith(("solved", "diverged", "_"))
    }


def _panel(fig, label: str):
    """The axes of `fig` holding the line `label`."""
    return next(ax for ax in fig.axes if label in _lines(ax))


# A solved 1997-style run: `wrong` falls to 0; loss and mse are the same series (float32 and
# float64 of one number); the test-set size is a constant.
SOLVED = [
    (s, {"loss": l, "mse": l * (1 + 1e-8), "wrong": w, "sequences": 2560.0})
    for s, l, w in ((100, 0.04, 1200.0), (200, 1e-3, 300.0), (300, 2e-4, 82.0), (400, 7e-5, 0.0))
]


@pytest.mark.parametrize(
    ("wrong", "scale"), [((1200, 300, 82, 0), "linear"), ((2560, 30, 2, 0), "symlog")]
)
def test_learning_curve_draws_the_final_zero_count(tmp_path, drawn, wrong, scale):
    """The run ends at 0 wrong, not at 82: zero is drawn, on a linear axis or (values across
    decades) at the foot of a symlog one."""
    evals = [(s, {**e, "wrong": float(w)}) for (s, e), w in zip(SOLVED, wrong, strict=True)]
    train = (list(range(1, 401)), list(np.geomspace(0.3, 1e-4, 400)))
    plot_learning_curve(train, evals, tmp_path / "c.png", title="t", solved_at=400)
    ax = _panel(drawn[-1], "test wrong")
    x, y = _lines(ax)["test wrong"]
    assert list(x) == [100, 200, 300, 400] and list(y) == list(wrong)
    assert ax.get_yscale() == scale and ax.get_ylim()[0] <= 0 < ax.get_ylim()[1]


def test_learning_curve_has_no_twin_or_constant_line(tmp_path, drawn):
    """Test loss = test mse is one line named for both; the test-set size is in the title."""
    plot_learning_curve(None, SOLVED, tmp_path / "c.png", title="run")
    fig = drawn[-1]
    every = [line for ax in fig.axes for line in _lines(ax).items()]
    assert [label for label, _ in every] == ["test loss = test mse", "test wrong"]
    assert "test set: 2,560 sequences" in fig._suptitle.get_text()
    for ax in fig.axes:
        series = [tuple(y) for _, y in _lines(ax).values()]
        assert len(series) == len(set(series))


def test_learning_curve_gives_each_unit_its_panel(tmp_path, drawn):
    """Bits per character are not counts: a panel of their own, named by the unit."""
    evals = [(s, {"loss": 3.0 / s, "bits_per_char": 4.3 / s, "accuracy": s / 10}) for s in (1, 2)]
    plot_learning_curve(([1, 2], [3.1, 1.4]), evals, tmp_path / "c.png", title="t")
    units = {ax.get_ylabel(): sorted(_lines(ax)) for ax in drawn[-1].axes if _lines(ax)}
    assert units == {
        "loss": ["test loss", "train loss"],
        "bits per character": ["test bits_per_char"],
        "fraction": ["test accuracy"],
    }
    plot_learning_curve(None, [], tmp_path / "g.png", title="t", train={"grad_norm": ([1], [2.0])})
    assert [ax.get_ylabel() for ax in drawn[-1].axes] == ["gradient norm"]


def test_every_sparse_series_has_markers(tmp_path, drawn):
    """A run with one training step and one evaluation is two dots, in both pictures."""
    evals = [(1, {"loss": 0.3, "wrong": 5.0})]
    plot_learning_curve(([1], [0.26]), evals, tmp_path / "a.png", title="t")
    plot_runs(
        {"seed: 0": ([(s, 1.0 / s) for s in range(1, 300)], []), "seed: 1": ([(1, 0.26)], evals)},
        tmp_path / "b.png",
        title="t",
    )
    for fig in drawn:
        for ax in fig.axes:
            for line in ax.get_lines():
                if len(line.get_xdata()) <= 50:
                    assert line.get_marker() not in ("None", None, ""), line.get_label()


def test_runs_overlay_merges_twin_metrics_and_writes_the_path_it_returns(tmp_path, drawn):
    """One panel for test loss = mse, none for the test-set size; a name without ".png" gets
    it appended, and the path returned is the file written."""
    runs = {f"seed: {k}": ([(1, 0.5), (2, 0.4)], SOLVED) for k in (0, 1)}
    path = plot_runs(runs, tmp_path / "compare", title="2 runs")
    assert path == tmp_path / "compare.png" and path.read_bytes()[:8] == PNG
    titles = [ax.get_title() for ax in drawn[-1].axes if ax.get_lines()]
    assert titles == ["training loss", "test loss = mse", "test wrong"]
    wrong = next(ax for ax in drawn[-1].axes if ax.get_title() == "test wrong")
    assert all(0.0 in line.get_ydata() for line in wrong.get_lines())
    assert [t.get_text() for t in drawn[-1].legends[0].get_texts()] == ["seed: 0", "seed: 1"]


def test_equal_curves_are_one_line_named_for_both(tmp_path, drawn):
    """∂L/∂c under the full and the truncated gradient of a saturated net coincide: one line,
    both names, instead of one line hidden under the other."""
    curves = {"full": [1.0, 0.1, 0.01], "truncated": [1.0, 0.1, 0.01], "other": [2.0, 0.3, 0.1]}
    plot_curves(curves, tmp_path / "c.png", title="t", xlabel="lag", ylabel="norm")
    assert [line.get_label() for line in drawn[-1].axes[0].get_lines()] == [
        "full = truncated",
        "other",
    ]
