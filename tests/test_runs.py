"""`lstm-jax show` and `compare`: tables, PNGs and the per-lag view of a finished run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstm_jax.training import checkpoint, cli, runs
from lstm_jax.training.config import ConfigError, load
from lstm_jax.training.trainer import build, init_state, train

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
    state, _ = checkpoint.load(run.path, init_state(build(run.config)))
    # lag 0: L = Σ ŷ_T with a linear readout, so ∂L/∂h_T = W_out[:, 0] for every sequence
    w = np.asarray(state.params.readout.w)[:, 0]
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
