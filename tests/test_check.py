"""Every experiment's `--check`: a fresh measurement against the committed record, under the
experiment's declared tolerances (`lstm_jax.reporting.check`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lstm_jax.reporting.check import (
    EXACT,
    MISSING,
    CheckError,
    Remeasured,
    Tolerance,
    check_record,
    compare,
    run_check,
)

RECORD = {
    "rows": [
        {"method": "full", "T": 1000, "temp_mib": 15.6674, "rss_mib": 369.07},
        {"method": "online", "T": 1000, "temp_mib": 0.2514, "rss_mib": 301.5},
    ]
}
TOLERANCES = {"*.temp_mib": EXACT, "*.rss_mib": Tolerance(rel=0.15)}


def _record(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RECORD))
    return path


def _remeasure(changes: dict[str, dict[str, float]]):
    """A re-measurement that finds the record's figures with `changes` applied."""

    def remeasure(record):
        recorded = {r["method"]: r for r in record["rows"]}
        now = {m: {**r, **changes.get(m, {})} for m, r in recorded.items()}
        return Remeasured("memory at T=1000", recorded, now)

    return remeasure


def test_a_figure_within_its_tolerance_passes(tmp_path):
    lines = []
    drift = _remeasure({"full": {"rss_mib": 369.07 * 1.14}})  # 14% of RSS, within 15%
    assert check_record(_record(tmp_path), drift, TOLERANCES, log=lines.append)
    assert lines == ["memory at T=1000: all 4 figures within tolerance of the record"]
    with pytest.raises(SystemExit) as done:
        run_check(_record(tmp_path), drift, TOLERANCES)
    assert done.value.code == 0


def test_a_figure_beyond_its_tolerance_fails_naming_the_row(tmp_path, capsys):
    lines = []
    changed = _remeasure({"online": {"temp_mib": 0.2515}, "full": {"rss_mib": 443.0}})
    assert not check_record(_record(tmp_path), changed, TOLERANCES, log=lines.append)
    assert lines == [
        "  full.rss_mib: recorded 369.07, now 443.0   <- differs (relative 0.15)",
        "  online.temp_mib: recorded 0.2514, now 0.2515   <- differs (exact)",
        "memory at T=1000: 2 of 4 figures differ from the record",
    ]
    with pytest.raises(SystemExit) as done:
        run_check(_record(tmp_path), changed, TOLERANCES)
    assert done.value.code == 1 and "online.temp_mib" in capsys.readouterr().out


def test_rows_missing_on_either_side_differ_unless_allowed():
    recorded = {"h": {"init": [1.0, 2.0], "trained": [3.0, 4.0]}, "status": "solved"}
    now = {"h": {"init": [1.0, 2.0]}, "status": "solved", "extra": 1.0}
    got = compare(recorded, now, {"h.*": Tolerance(rel=1e-9), "status": EXACT})
    missing = [("h.trained.0", MISSING), ("h.trained.1", MISSING)]
    assert [(d.row, d.now) for d in got.differences] == missing
    got = compare(recorded, now, {"*": EXACT}, missing_ok=("h.trained.*",))
    assert got.not_remade == ["h.trained.0", "h.trained.1"]
    assert [d.row for d in got.differences] == ["extra"]  # a figure the record lacks
    assert not compare(recorded, now, {"nothing.*": EXACT}).agrees  # nothing compared


def test_a_count_is_compared_as_a_fraction_of_another_row():
    count = {"wrong": Tolerance(abs=0.001, per="sequences"), "*": Tolerance(rel=0.01)}
    recorded = {"wrong": 6.0, "sequences": 10000.0}
    assert compare(recorded, {**recorded, "wrong": 16.0}, count).agrees  # 10 of 10,000
    assert not compare(recorded, {**recorded, "wrong": 17.0}, count).agrees


def test_a_record_that_cannot_be_checked_says_so(tmp_path):
    lines = []

    def old(record):
        raise CheckError("results.json was written before results recorded their arguments")

    assert not check_record(_record(tmp_path), old, TOLERANCES, log=lines.append)
    assert lines == ["results.json was written before results recorded their arguments"]
    assert not check_record(tmp_path / "none.json", old, TOLERANCES, log=lines.append)
    assert "does not exist" in lines[-1]
