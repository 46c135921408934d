"""An experiment's `--check`: a fresh measurement against its committed `results.json`.

Each experiment declares what its check re-measures (a `remeasure` function of the record that
returns the recorded figures and the fresh ones, laid out alike) and how closely each figure
must agree (`Tolerance`s by row pattern). `check_record` compares them and names every row that
differs; `run_check` is the script's `--check`: it exits 0 when everything agrees, else 1.

Rows are the paths of the leaves of nested dicts and lists, joined by dots (`final_eval.mse`,
`per_lag_h.LSTM bias 1.10`). A row is compared under the first pattern (`fnmatch`, declaration
order) it matches; a row no pattern matches is not compared.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn


class Tolerance(NamedTuple):
    """How far a fresh figure may lie from the recorded one: `|now - recorded| <= max(abs ×
    scale, rel × |recorded|)`, where `scale` is the recorded figure of the row `per` (1 without
    one; 0 when the record lacks it). The default is exact; non-numbers (a status, None) must
    be equal."""

    rel: float = 0.0
    abs: float = 0.0
    per: str | None = None  # e.g. a count of wrong sequences as a fraction of the test set's


EXACT = Tolerance()
Tolerances = Mapping[str, Tolerance]


class CheckError(ValueError):
    """A record that cannot be re-checked (it lacks what the check re-measures from)."""


class Remeasured(NamedTuple):
    """What a check re-measured: `what` names it; `recorded` and `now` are the figures (nested
    dicts and lists) from the record and from the fresh measurement, laid out alike."""

    what: str
    recorded: Any
    now: Any


MISSING = "(missing)"  # a Difference's side that lacks the row


class Difference(NamedTuple):
    row: str
    recorded: Any  # MISSING where the record lacks the row
    now: Any  # MISSING where the fresh measurement lacks it
    tolerance: Tolerance


class Comparison(NamedTuple):
    """`compared` rows, those of them that differ, and the recorded rows the fresh measurement
    could not make here (allowed by `missing_ok`)."""

    compared: int
    differences: list[Difference]
    not_remade: list[str]

    @property
    def agrees(self) -> bool:
        return self.compared > 0 and not self.differences


def rows(tree: Any, prefix: str = "") -> dict[str, Any]:
    """`{dotted path: leaf}` of nested dicts, lists and tuples.

    >>> rows({"final_eval": {"mse": 0.1}, "curve": [1, 2]})
    {'final_eval.mse': 0.1, 'curve.0': 1, 'curve.1': 2}
    """
    if isinstance(tree, Mapping):
        items = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, list | tuple):
        items = [(str(i), v) for i, v in enumerate(tree)]
    else:
        return {prefix: tree}
    found: dict[str, Any] = {}
    for key, value in items:
        found.update(rows(value, f"{prefix}.{key}" if prefix else key))
    return found


def tolerance_of(row: str, tolerances: Tolerances) -> Tolerance | None:
    """The tolerance of the first pattern `row` matches, or None (not compared).

    >>> tolerance_of("final_eval.mse", {"steps": EXACT, "final_eval.*": Tolerance(rel=0.01)})
    Tolerance(rel=0.01, abs=0.0, per=None)
    """
    return next((t for p, t in tolerances.items() if fnmatch.fnmatchcase(row, p)), None)


def within(recorded: Any, now: Any, tolerance: Tolerance, scale: float = 1.0) -> bool:
    """Whether `now` agrees with `recorded` under `tolerance` (`scale`: the `per` row's figure).

    >>> within(0.35597, 0.35583, Tolerance(rel=0.01)), within("solved", "budget", EXACT)
    (True, False)
    """
    if not (_number(recorded) and _number(now)):
        return recorded == now
    if recorded == now or (math.isnan(recorded) and math.isnan(now)):
        return True
    return abs(now - recorded) <= max(tolerance.abs * scale, tolerance.rel * abs(recorded))


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def compare(
    recorded: Any, now: Any, tolerances: Tolerances, *, missing_ok: Sequence[str] = ()
) -> Comparison:
    """The rows of `recorded` and `now` that a tolerance covers, compared. A recorded row the
    fresh measurement lacks is a difference unless it matches a `missing_ok` pattern; a fresh
    row the record lacks is one too.

    >>> got = compare({"loss": 0.5, "steps": 10}, {"loss": 0.52, "steps": 10}, {"*": EXACT})
    >>> got.compared, [d.row for d in got.differences]
    (2, ['loss'])
    """
    want, got = rows(recorded), rows(now)
    compared, differences, not_remade = 0, [], []
    for row in dict.fromkeys([*want, *got]):
        tolerance = tolerance_of(row, tolerances)
        if tolerance is None:
            continue
        if row not in got and any(fnmatch.fnmatchcase(row, p) for p in missing_ok):
            not_remade.append(row)
            continue
        compared += 1
        scale = want.get(tolerance.per, 0.0) if tolerance.per else 1.0
        if row not in want or row not in got:
            differences.append(
                Difference(row, want.get(row, MISSING), got.get(row, MISSING), tolerance)
            )
        elif not within(want[row], got[row], tolerance, scale if _number(scale) else 0.0):
            differences.append(Difference(row, want[row], got[row], tolerance))
    return Comparison(compared, differences, not_remade)


def describe(what: str, comparison: Comparison) -> list[str]:
    """The lines a check prints: one per row that differs, the rows not re-made, a verdict.

    >>> describe("run 0", compare({"steps": 10}, {"steps": 12}, {"*": EXACT}))[0]
    '  steps: recorded 10, now 12   <- differs (exact)'
    """
    lines = [
        f"  {d.row}: recorded {_shown(d.recorded)}, now {_shown(d.now)}   <- differs "
        f"({_tolerance_text(d.tolerance)})"
        for d in comparison.differences
    ]
    if comparison.not_remade:
        parents = "; ".join(dict.fromkeys(r.rsplit(".", 1)[0] for r in comparison.not_remade))
        lines.append(f"  not re-made here ({len(comparison.not_remade)} rows): {parents}")
    n, k = comparison.compared, len(comparison.differences)
    if n == 0:
        lines.append(f"{what}: nothing compared (no row matches a declared tolerance)")
    elif k:
        lines.append(f"{what}: {k} of {n} figures differ from the record")
    else:
        lines.append(f"{what}: all {n} figures within tolerance of the record")
    return lines


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) and value is not MISSING else str(value)


def _tolerance_text(t: Tolerance) -> str:
    parts = [f"relative {t.rel:g}"] if t.rel else []
    if t.abs:
        parts.append(f"absolute {t.abs:g}" + (f" × {t.per}" if t.per else ""))
    return ", ".join(parts) or "exact"


def check_record(
    path: str | Path,
    remeasure: Callable[[dict[str, Any]], Remeasured],
    tolerances: Tolerances,
    *,
    missing_ok: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> bool:
    """Reads the record at `path`, re-measures (`remeasure(record)`), compares under
    `tolerances` and logs `describe`'s lines; True when every compared figure agrees. A
    missing record, or one `remeasure` cannot re-check (a `CheckError`), is logged and False.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "results.json"
    >>> _ = path.write_text('{"cos": 0.5}')
    >>> check_record(path, lambda r: Remeasured("cos", r, {"cos": 0.500001}),
    ...              {"cos": Tolerance(abs=1e-5)})
    cos: all 1 figures within tolerance of the record
    True
    """
    path = Path(path)
    if not path.is_file():
        log(f"{path} does not exist: run the experiment to write the record it checks")
        return False
    try:
        remeasured = remeasure(json.loads(path.read_text()))
    except CheckError as err:
        log(str(err))
        return False
    comparison = compare(remeasured.recorded, remeasured.now, tolerances, missing_ok=missing_ok)
    for line in describe(remeasured.what, comparison):
        log(line)
    return comparison.agrees


def run_check(
    path: str | Path,
    remeasure: Callable[[dict[str, Any]], Remeasured],
    tolerances: Tolerances,
    *,
    missing_ok: Sequence[str] = (),
) -> NoReturn:
    """An experiment script's `--check`: `check_record`, then exit 0 if it agrees, else 1.

    >>> run_check("/nonexistent/results.json", lambda r: r, {})
    Traceback (most recent call last):
    SystemExit: 1
    """
    ok = check_record(path, remeasure, tolerances, missing_ok=missing_ok)
    raise SystemExit(0 if ok else 1)
