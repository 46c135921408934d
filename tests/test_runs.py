"""`lstm-jax show` and `compare`: tables, PNGs and the per-lag view of a finished run;
`load_run`, a run's trained model; the pictures' marks and legends drawn from real runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstm_jax.cells.registry import build_cell
from lstm_jax.training import cli, load_run, model, runs
from lstm_jax.training.config import ConfigError, load
from lstm_jax.training.trainer import Diverged, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    paths = []
    # the first also logs to TensorBoard (tensorboardX is in the test extras)
    for name, extra in (
        ("lstm", ("training.tensorboard=true",)),
        ("gru", ("model.cell=gru", "model.variant=null")),
    ):
        config = load(ROOT / "configs/quickstart.yaml", "tiny", extra)
        train(config, base / name, progress=False, log=lambda _: None)
        paths.append(base / name)
    return paths


def test_show_prints_the_summary_and_writes_both_views(two_runs, tmp_path, capsys):
    assert cli.main(["show", str(two_runs[0]), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "status                 budget" in out and "steps                  20 of 20" in out
    assert "test wrong" in out and "zero at every lag past 0 (not drawn): ∂L/∂h (truncated)" in out
    for name in ("learning_curve.png", "per_lag_gradients.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name


def test_per_lag_view_of_a_trained_net(two_runs):
    run = runs.read(two_runs[0])
    curves = runs.per_lag_norms(run, sequences=4)
    # lag 0: L = Σ ŷ_T with a linear readout, so ∂L/∂h_T = W_out[:, 0] for every sequence
    w = np.asarray(load_run(run.path).params.readout.w)[:, 0]
    for mode in ("full", "truncated"):
        np.testing.assert_allclose(curves[f"∂L/∂h ({mode})"][1][0], np.linalg.norm(w), rtol=1e-5)
    # lag 1, the cell state with h held fixed: only the direct path c_{T-1} -> c_T, which
    # both modes keep; further back the truncated gradient loses the paths through h
    full, cut = curves["∂L/∂c (full)"][1], curves["∂L/∂c (truncated)"][1]
    np.testing.assert_allclose(full[1], cut[1], rtol=1e-5)
    assert not np.allclose(full[2:], cut[2:])


def test_compare_tables_shared_values_once_and_plots(two_runs, tmp_path, capsys):
    png = tmp_path / "c.png"
    assert cli.main(["compare", *map(str, two_runs), "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "all runs: task adding(length=20, variant=1997)" in out
    table = out.split("\n")
    header = next(line for line in table if line.startswith("run "))
    assert "model" in header and "task" not in header  # only what differs is a column
    assert sum(line.startswith(str(p)) for p in two_runs for line in table) == 2
    assert png.stat().st_size > 10_000


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """A run whose loss is NaN at step 2 (plain SGD at a step size of 1e30)."""
    out = tmp_path_factory.mktemp("runs") / "diverged"
    extra = ("optimizer.name=sgd", "optimizer.learning_rate=1e30", "optimizer.clip_norm=null")
    with pytest.raises(Diverged):
        train(load(ROOT / "configs/quickstart.yaml", "tiny", extra), out, progress=False)
    return out


@pytest.mark.parametrize("which", [0, 1])
def test_load_run_predicts_what_the_trainer_evaluated(two_runs, which):
    """The loaded net's outputs on the test set give the metrics of the trainer's last
    evaluation (step 20, the newest checkpoint), for the LSTM and the GRU run."""
    run = runs.read(two_runs[which])
    net = load_run(run.path)
    assert (net.step, net.config, net.path) == (20, run.config, run.path)
    m = run.config.model
    assert net.cell == build_cell(m.cell, m.variant, m.options)
    t = net.config.training
    test = net.task.test_set(t.seed, t.eval_size)
    outputs = net.predict(test.inputs, test.lengths, test.resets)
    assert outputs.shape == (*test.inputs.shape[:2], net.task.output_size)
    loss = model.LOSSES[net.task.loss](outputs, test.targets, test.mask)
    metrics = {"loss": float(loss), **net.task.metrics(np.asarray(outputs), test)}
    assert run.evals[-1][0] == 20
    for key, value in run.evals[-1][1].items():
        np.testing.assert_allclose(metrics[key], value, rtol=1e-5, err_msg=key)


def test_show_marks_where_and_why_a_run_diverged(diverged, tmp_path, capsys, drawn):
    """The status names the reason; the learning curve marks step 2 in every panel, red, and
    says why in its title; the one logged step is a visible dot."""
    assert cli.main(["show", str(diverged), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "diverged: loss became nan (gradient norm nan) at step 2" in out
    assert "per-lag gradients: no checkpoint yet" in out
    png = runs.plot_learning_curve(runs.read(diverged), tmp_path / "curve.png")
    assert png == tmp_path / "curve.png" and png.is_file()
    fig = drawn[-1]
    assert "loss became nan (gradient norm nan) at step 2" in fig._suptitle.get_text()
    panels = [ax for ax in fig.axes if ax.get_lines()]
    assert {ax.get_ylabel() for ax in panels} == {"loss", "gradient norm"}
    for ax in panels:
        mark = next(line for line in ax.get_lines() if line.get_label() == "diverged at step 2")
        assert list(mark.get_xdata()) == [2, 2] and mark.get_color() == "C3"
        dot = next(line for line in ax.get_lines() if line.get_label().startswith("train"))
        assert list(dot.get_xdata()) == [1] and dot.get_marker() not in ("None", "")


def test_compare_names_what_differs_and_shows_one_step_runs(two_runs, diverged, tmp_path, drawn):
    """The legend says what sets each run apart, not its path; a diverged run's single
    training step is a marker."""
    found = [runs.read(path) for path in (*two_runs, diverged)]
    assert runs.labels(found[:2]) == [
        "cell: lstm, variant: standard, tensorboard: True",
        "cell: gru, variant: None, tensorboard: False",
    ]
    # the same config: the directory, its whole path where two share a name
    other, twin = (found[0]._replace(path=Path("/x", name)) for name in ("other", "lstm"))
    assert runs.labels([found[0], other]) == ["lstm", "other"]
    assert runs.labels([found[0], twin]) == [str(two_runs[0]), "/x/lstm"]
    assert runs.labels([found[0]] * 2) == [f"{two_runs[0]} [1]", f"{two_runs[0]} [2]"]
    third = runs.labels([found[1], found[2]])[1]
    assert third.startswith("cell: lstm, variant: standard, optimizer: sgd, learning_rate: 1e+30")
    assert third.endswith(" (diverged)")
    path = runs.plot_compare(found, tmp_path)  # a directory: compare.png in it
    assert path == tmp_path / "compare.png" and path.is_file()
    legend = [t.get_text() for t in drawn[-1].legends[0].get_texts()]
    assert legend == runs.labels(found)
    loss = next(ax for ax in drawn[-1].axes if ax.get_title() == "training loss")
    one = next(line for line in loss.get_lines() if line.get_label() == legend[2])
    assert list(one.get_xdata()) == [1] and one.get_marker() not in ("None", "")


def test_compare_prints_the_path_it_wrote(two_runs, tmp_path, capsys, drawn):
    """`--out DIR/c` writes `c.png` and says so; every test-metric line has markers."""
    assert cli.main(["compare", *map(str, two_runs), "--out", str(tmp_path / "c")]) == 0
    assert f"curves: {tmp_path / 'c.png'}\n" in capsys.readouterr().out
    assert (tmp_path / "c.png").is_file() and not (tmp_path / "c").exists()
    for ax in drawn[-1].axes:
        for line in ax.get_lines():
            if ax.get_title() != "training loss":
                assert line.get_marker() not in ("None", ""), (ax.get_title(), line.get_label())


@pytest.mark.parametrize("value", ["0", "-3"])
def test_show_refuses_a_non_positive_sequences(two_runs, value, capsys):
    assert cli.main(["show", str(two_runs[0]), "--sequences", value]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == f"error: --sequences must be a whole number >= 1 (test sequences), got {value}\n"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ('{"step": "abc", "loss": 0.1, "grad_norm": 1.0}', '"step" to be an integer, got "abc"'),
        ('{"step": 3, "loss": "0.1", "grad_norm": 1.0}', '"loss" to be a number, got "0.1"'),
        ('{"step": 3, "eval": {"loss": null}}', '"loss" to be a number, got null'),
        ("[3, 0.1]", "a JSON object, got [3, 0.1]"),
    ],
)
def test_show_of_a_record_of_the_wrong_type(two_runs, tmp_path, capsys, record, expected):
    """A few lines naming the file, the line and what was expected; exit code 2."""
    (tmp_path / "config.yaml").write_text((two_runs[0] / "config.yaml").read_text())
    lines = (two_runs[0] / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "metrics.jsonl").write_text("\n".join([*lines[:2], record, *lines[2:]]) + "\n")
    assert cli.main(["show", str(tmp_path), "--no-gradients"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'metrics.jsonl'} line 3: expected {expected}\n")
    assert record in err and len(err.splitlines()) <= 4


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under `path`: (size, modification time)."""
    found = sorted(path.rglob("*"))
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in found}


def test_show_and_compare_leave_the_runs_as_they_were(two_runs, diverged, tmp_path):
    """Only their PNGs are written, outside the runs; nothing in a run changes, no lock."""
    before = [_tree(path) for path in (*two_runs, diverged)]
    assert cli.main(["show", str(two_runs[0]), "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["show", str(diverged), "--out", str(tmp_path / "b")]) == 0
    args = ["compare", *map(str, two_runs), str(diverged), "--out", str(tmp_path / "c.png")]
    assert cli.main(args) == 0
    assert [_tree(path) for path in (*two_runs, diverged)] == before


def test_show_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert cli.main(["show", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    assert "is not a run directory (no config.yaml" in capsys.readouterr().err


def _events(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of TensorBoard event files (TFRecord framing: length, its CRC, data, CRC)."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            size = int.from_bytes(data[at : at + 8], "little")
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + size])
            at += 12 + size + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_events_hold_the_logged_metrics(two_runs):
    scalars = _events(two_runs[0] / "tensorboard")
    run = runs.read(two_runs[0])
    steps, losses = zip(*scalars["train/loss"], strict=True)
    assert list(steps) == [s for s, _ in run.train]
    np.testing.assert_allclose(losses, [v for _, v in run.train], rtol=1e-6)
    assert [s for s, _ in scalars["test/wrong"]] == [s for s, _ in run.evals]
    assert [v for _, v in scalars["test/wrong"]] == [e["wrong"] for _, e in run.evals]
    assert "train/grad_norm" in scalars


def test_tensorboard_without_tensorboardx_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "tensorboardX", None)  # as if not installed
    config = load(ROOT / "configs/quickstart.yaml", "tiny", ("training.tensorboard=true",))
    with pytest.raises(ConfigError, match=r"pip install 'lstm-jax\[tensorboard\]'"):
        train(config, tmp_path, progress=False, log=lambda _: None)
    assert not (tmp_path / "metrics.jsonl").exists()
