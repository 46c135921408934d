"""The `--check` of a recorded sweep: the cheapest run of its `results.json` (fewest steps)
re-trained in a temporary directory and compared with the record by `reporting.check`.

Status, steps and the step it was solved at must be equal; the final test metrics agree
within `CHECK_RTOL`, and counts of wrong sequences within `CHECK_COUNT_FRACTION` of the test
sequences. Exact equality would hold on one machine only: float rounding differs between CPUs
and XLA's code generation, and training an RNN amplifies it (the exploding-gradients check run
ends at loss 0.35597 / 6 wrong on one machine, 0.35583 / 6 and 0.3545 / 4 of 10,000 on two
others, at the same code).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lstm_jax.reporting.check import EXACT, CheckError, Remeasured, Tolerance, check_record
from lstm_jax.training.sweeps.records import rounded

CHECK_RTOL = 0.01  # final test metrics, relative
CHECK_COUNT_FRACTION = 0.001  # counts ("wrong"): of the test set's sequences
TOLERANCES = {
    "status": EXACT,
    "steps": EXACT,
    "solved_at_step": EXACT,
    "final_eval.wrong": Tolerance(abs=CHECK_COUNT_FRACTION, per="final_eval.sequences"),
    "final_eval.*": Tolerance(rel=CHECK_RTOL),
}
COMPARED = ("status", "steps", "solved_at_step", "final_eval")


def cheapest(record: dict[str, Any], path: str | Path) -> tuple[str, dict[str, Any]]:
    """`(suite, run)` of the recorded run with the fewest steps (the first of equals).

    >>> cheapest({"suites": {"t": {"runs": [{"steps": 9}, {"steps": 3}]}}}, "results.json")
    ('t', {'steps': 3})
    """
    candidates = [
        (run["steps"], name, run)
        for name, suite in record["suites"].items()
        for run in suite["runs"]
    ]
    if not candidates:
        raise ValueError(f"{path} records no runs")
    _, name, run = min(candidates, key=lambda c: c[0])
    return name, run


def retrain(config_path: str, variant: str | None, overrides: tuple[str, ...]) -> dict[str, Any]:
    """The `summary.json` of the config's run trained afresh in a temporary directory (a
    diverged run too).

    >>> retrain("configs/quickstart.yaml", "tiny", ("training.seed=0",))["status"]  # doctest: +SKIP
    'budget'
    """
    from lstm_jax.training.config import load
    from lstm_jax.training.trainer import Diverged, train

    config = load(config_path, variant, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.suppress(Diverged):
            train(config, Path(tmp) / "check", progress=False, log=lambda _: None)
        return json.loads((Path(tmp) / "check" / "summary.json").read_text())


def remeasure(
    record: dict[str, Any], path: str | Path, log: Callable[[str], None] = print
) -> Remeasured:
    """The cheapest recorded run of the sweep `record` (read from `path`) against a re-run;
    a CheckError for a record written before results recorded their provenance and overrides.

    >>> remeasure(json.load(open("results.json")), "results.json").what  # doctest: +SKIP
    'adding T=100 / linear output seed 0'
    """
    if "provenance" not in record or "suites" not in record:
        raise CheckError(
            f"{path} was written before results recorded their provenance and each run's "
            "overrides, so it cannot be re-checked; re-run the experiment to write one that can"
        )
    name, run = cheapest(record, path)
    log(f"re-running {name} / {run['label']} seed {run['seed']} ({run['steps']} steps)")
    config = record["suites"][name]["config"]
    summary = retrain(config, record["provenance"]["variant"], tuple(run["overrides"]))
    summary["final_eval"] = summary["final_eval"] or {}
    return Remeasured(
        f"{name} / {run['label']} seed {run['seed']}",
        {key: rounded(run[key]) for key in COMPARED},
        {key: rounded(summary[key]) for key in COMPARED},
    )


def check_report(path: str | Path, *, log: Callable[[str], None] = print) -> bool:
    """Re-trains the cheapest recorded run of the `results.json` at `path` and compares it
    with the record under `TOLERANCES`; True if it agrees (each sweep experiment's `--check`).

    >>> check_report("experiments/adding_1997/results.json")  # doctest: +SKIP
    re-running adding T=100 / linear output seed 0 (...)
    adding T=100 / linear output seed 0: all 7 figures within tolerance of the record
    True
    """
    return check_record(path, lambda record: remeasure(record, path, log), TOLERANCES, log=log)
