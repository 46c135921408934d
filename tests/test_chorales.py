"""The Bach-chorales task: piano rolls from note events, and the task over music21's corpus
(where music21, the optional `music` extra, is installed)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import chorales_cache

from lstm_jax.training.tasks import chorales, make_task
from lstm_jax.training.tasks.chorales import KEYS, LOWEST, piano_roll


def test_piano_roll_frames_are_quarter_notes_and_hold_every_sounding_pitch():
    # a half note C4 (60) from 0, a quarter E4 (64) at 1, an eighth G4 (67) at 2.5, and a
    # pitch below the piano's range (ignored)
    roll = piano_roll([(0.0, 2.0, 60), (1.0, 1.0, 64), (2.5, 0.5, 67), (0.0, 1.0, LOWEST - 1)])
    assert roll.shape == (3, KEYS)
    on = [sorted(np.flatnonzero(frame) + LOWEST) for frame in roll]
    # frame 2 starts at 2.0: the eighth note at 2.5 has not begun, so that frame is silent
    assert on == [[60], [60, 64], []]
    assert piano_roll([]).shape == (0, KEYS)


def test_chorales_task_batches_and_nll(tmp_path, monkeypatch):
    chorales_cache(monkeypatch, tmp_path)
    task = make_task("bach_chorales", max_files=10, max_length=12)
    batch = task.batch(0, 3, 4)
    assert batch.inputs.shape == (12, 4, KEYS) and batch.targets.shape == (12, 4, KEYS)
    # next-frame prediction: the target at t is the input at t + 1
    np.testing.assert_array_equal(batch.targets[:-1], batch.inputs[1:])
    assert 1 <= batch.inputs.sum(-1).max() <= 8  # four voices (some doubled or resting)
    test = task.test_set(0, 100)  # the 2 test chorales of the first 10 files
    assert test.inputs.shape[1] == 2
    chance = task.metrics(np.zeros_like(test.targets), test)["nll"]
    assert chance == pytest.approx(KEYS * np.log(2.0))  # every unit at p = 1/2
    assert (tmp_path / "bach_chorales_v1_10.npz").is_file()  # parsed once, then cached
    with pytest.raises(ValueError, match="split must be 'valid' or 'test'"):
        make_task("bach_chorales", split="train")


def test_without_music21_the_run_stops_before_touching_its_directory(tmp_path, monkeypatch, capsys):
    from lstm_jax.training import cli

    monkeypatch.setenv("LSTM_JAX_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(chorales.importlib.util, "find_spec", lambda name: None)
    out = tmp_path / "run"
    code = cli.main(["run", "bach_chorales", "--variant", "tiny", "--out", str(out)])
    assert code == cli.EXIT_BAD_INPUT
    assert "task: bach_chorales needs music21" in capsys.readouterr().err
    assert not out.exists()  # no config.yaml left behind
