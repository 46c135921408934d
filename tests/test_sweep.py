"""Sweeps: grids of runs, outcomes read from the run directories, statistics and tables."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lstm_jax.reporting.check import compare
from lstm_jax.training.config import ConfigError
from lstm_jax.training.sweeps import records, rerun, runner, summary
from lstm_jax.training.sweeps.grid import Run, grid, run_dir
from lstm_jax.training.sweeps.outcome import Outcome
from lstm_jax.training.sweeps.summary import stats, table

QUICKSTART = str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml")


def _outcome(label: str, seed: int, solved_at: int | None, status: str = "solved") -> Outcome:
    return Outcome(
        label,
        seed,
        status,
        100,
        800,
        None if solved_at is None else solved_at // 8,
        solved_at,
        {"wrong": float(seed)},
        [],
        None,
        0.0,
        "",
    )


def test_grid_is_settings_times_seeds_with_the_seed_set():
    runs = grid({"a": ("model.gradient=full",), "b": ()}, range(2))
    assert runs == [
        Run("a", 0, ("model.gradient=full", "training.seed=0")),
        Run("a", 1, ("model.gradient=full", "training.seed=1")),
        Run("b", 0, ("training.seed=0",)),
        Run("b", 1, ("training.seed=1",)),
    ]
    assert run_dir("/x", Run("no forget gate, reset", 3)) == Path("/x/no_forget_gate_reset-seed3")


def test_stats_count_unsolved_runs_as_infinite():
    outcomes = [
        _outcome("a", 0, 800),
        _outcome("a", 1, 1600),
        _outcome("a", 2, None, "budget"),
        _outcome("b", 0, None, "diverged"),
        _outcome("b", 1, 400),
    ]
    s = stats(outcomes)
    assert list(s) == ["a", "b"]
    assert s["a"] == summary.Stats(
        runs=3, solved=2, diverged=0, median=1600, mean=1200, low=800, high=math.inf
    )
    assert s["b"].median == math.inf and s["b"].diverged == 1 and s["b"].low == 400
    text = table(outcomes, "wrong")
    assert "a" in text and "2/3" in text and "1,600" in text and "diverged: b 1" in text
    assert summary.fmt_count(2_500_000) == "2.50M" and summary.fmt_count(math.inf) == "-"
    # Wilson 95% intervals: 0 of 10 still allows ~28%; 9 of 10 excludes 50%
    low, high = summary.wilson_interval(0, 10)
    assert low == 0.0 and 0.27 < high < 0.29
    low, high = summary.wilson_interval(9, 10)
    assert 0.59 < low < 0.60 and 0.98 < high < 0.99
    assert "60-98%" in summary.rate_text(9, 10)


def test_sweep_trains_each_run_and_reads_finished_ones_back(tmp_path):
    runs = grid({"full": ("model.gradient=full",), "truncated": ()}, range(2))
    first = runner.sweep(
        QUICKSTART,
        runs,
        variant="tiny",
        out_dir=tmp_path,
        workers=1,
        keep_grad_norms=True,
        log=lambda _: None,
    )
    assert [(o.label, o.seed) for o in first] == [(r.label, r.seed) for r in runs]
    for o in first:
        assert o.status in ("budget", "solved") and o.steps == 20 and o.sequences == 160
        assert [s for s, _ in o.evals] == [10, 20] and len(o.grad_norms) == 20
        assert o.final_eval == o.evals[-1][1]
    # the two seeds are different runs; a second sweep reads the same outcomes back
    assert first[0].grad_norms != first[1].grad_norms
    again = runner.sweep(
        QUICKSTART,
        runs,
        variant="tiny",
        out_dir=tmp_path,
        workers=1,
        keep_grad_norms=True,
        log=lambda _: None,
    )
    assert [o._replace(wall_s=0) for o in again] == [o._replace(wall_s=0) for o in first]
    # a run recorded before a config field existed (so its config.yaml lacks it) is read back
    saved = run_dir(tmp_path, runs[1]) / "config.yaml"
    lines = saved.read_text().splitlines(True)  # drop the `omega:` section and its fields
    start = next(i for i, line in enumerate(lines) if line.strip() == "omega:")
    depth = len(lines[start]) - len(lines[start].lstrip())
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if len(lines[i]) - len(lines[i].lstrip()) <= depth
        ),
        len(lines),
    )
    saved.write_text("".join(lines[:start] + lines[end:]))
    older = runner.sweep(
        QUICKSTART,
        runs[1:2],
        variant="tiny",
        out_dir=tmp_path,
        workers=1,
        keep_grad_norms=True,
        log=lambda _: None,
    )
    assert older[0]._replace(wall_s=0) == first[1]._replace(wall_s=0)
    # a run cut short (its checkpoint written, no summary) resumes and ends as it would have
    cut = run_dir(tmp_path, runs[0])
    (cut / "summary.json").unlink()
    resumed = runner.sweep(
        QUICKSTART, runs[:1], variant="tiny", out_dir=tmp_path, workers=1, log=lambda _: None
    )[0]
    assert (resumed.status, resumed.steps, resumed.final_eval) == (
        first[0].status,
        first[0].steps,
        first[0].final_eval,
    )
    # a directory holding another config's run is not silently reused
    other = [Run("full", 0, ("model.gradient=full", "training.seed=0", "model.hidden_size=4"))]
    with pytest.raises(FileExistsError, match="holds a finished run of another config"):
        runner.sweep(QUICKSTART, other, variant="tiny", out_dir=tmp_path, workers=1)


def test_sweep_in_spawned_workers_equals_one_process(tmp_path):
    runs = grid({"truncated": ()}, range(2))
    one = runner.sweep(
        QUICKSTART,
        runs,
        variant="tiny",
        out_dir=tmp_path / "1",
        workers=1,
        keep_grad_norms=True,
        log=lambda _: None,
    )
    two = runner.sweep(
        QUICKSTART,
        runs,
        variant="tiny",
        out_dir=tmp_path / "2",
        workers=2,
        keep_grad_norms=True,
        log=lambda _: None,
    )
    assert [o.grad_norms for o in one] == [o.grad_norms for o in two]
    assert [o.final_eval for o in one] == [o.final_eval for o in two]


def test_sweep_rejects_bad_runs_before_training(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'hiden_size'"):
        runner.sweep(QUICKSTART, [Run("x", 0, ("model.hiden_size=3",))], out_dir=tmp_path)
    with pytest.raises(ValueError, match="distinct"):
        runner.sweep(QUICKSTART, [Run("x", 0), Run("x", 0)], out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_records_refuse_a_dirty_checkout_unless_allowed(tmp_path, monkeypatch):
    from lstm_jax.training import provenance

    monkeypatch.setattr(provenance, "git_commit", lambda: "abc123+dirty")
    monkeypatch.setattr(provenance, "_git", lambda *args: "lstm_jax/cells/gru.py")
    monkeypatch.delenv(provenance.ALLOW_DIRTY, raising=False)
    with pytest.raises(provenance.DirtyTreeError, match=r"uncommitted changes \(lstm_jax/cells"):
        provenance.record_provenance("writing results.json")
    with pytest.raises(provenance.DirtyTreeError, match="training runs into"):
        runner.sweep(QUICKSTART, [Run("x", 0)], variant="tiny", out_dir=tmp_path, workers=1)
    assert not (tmp_path / "x-seed0").exists()  # refused before any training
    monkeypatch.setenv(provenance.ALLOW_DIRTY, "1")
    recorded = provenance.record_provenance()
    assert recorded["commit"] == "abc123+dirty" and recorded["diff_sha256"] is not None
    # a report of runs trained from a dirty tree is refused too, naming a run
    dirty_run = Outcome("x", 0, "solved", 1, 1, 1, 1, {}, [], None, 0.0, "runs/x-seed0")
    monkeypatch.delenv(provenance.ALLOW_DIRTY)
    monkeypatch.setattr(provenance, "git_commit", lambda: "abc123")
    with pytest.raises(provenance.DirtyTreeError, match=r"1 of 1 runs were trained from a"):
        records.report_provenance({"t": [dirty_run._replace(commit="abc123+dirty")]}, None)
    assert records.report_provenance({"t": [dirty_run._replace(commit="abc123")]}, None)


def test_an_interrupted_run_is_not_finished(tmp_path):
    # Ctrl-C leaves a summary with status "interrupted": the sweep resumes it, not reads it
    (tmp_path / "summary.json").write_text('{"status": "interrupted"}')
    assert not runner.finished(tmp_path)
    (tmp_path / "summary.json").write_text('{"status": "budget"}')
    assert runner.finished(tmp_path)


def test_check_tolerates_rounding_drift_but_not_a_different_result():
    recorded = {"loss": 0.35597, "accuracy": 0.9994, "wrong": 6.0, "sequences": 10000.0}

    def agrees(now: dict[str, float]) -> bool:
        got = compare({"final_eval": recorded}, {"final_eval": now}, rerun.TOLERANCES)
        return got.agrees

    # the same code on two other machines (float rounding amplified by training)
    assert agrees({**recorded, "loss": 0.35583})
    assert agrees({**recorded, "loss": 0.3545, "wrong": 4.0, "accuracy": 0.9996})
    assert not agrees({**recorded, "wrong": 17.0})  # 0.11% of 10,000
    assert not agrees({**recorded, "loss": 0.36})  # 1.1%
    assert not agrees({"loss": 0.35597})  # metrics missing
