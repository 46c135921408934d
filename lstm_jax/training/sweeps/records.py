"""A sweep's committed record: `results.json` with its provenance (the commit writing it, the
commits and training time of its runs), every outcome and the per-setting statistics."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lstm_jax.training.provenance import ALLOW_DIRTY, DirtyTreeError, record_provenance
from lstm_jax.training.sweeps.grid import Suite
from lstm_jax.training.sweeps.outcome import Outcome
from lstm_jax.training.sweeps.summary import plot_sequences, stats


def to_json(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Outcomes as JSON-ready dicts (run directories left out: they are machine-local).

    >>> to_json([Outcome("a", 0, "budget", 1, 8, None, None, {}, [], None, 0.0, "r")])[0]["label"]
    'a'
    """
    return [{k: v for k, v in o._asdict().items() if k != "out_dir"} for o in outcomes]


def rounded(value: Any) -> Any:
    """`value` with every float (in nested dicts and lists) rounded to 5 significant digits.

    >>> rounded({"loss": 0.123456789, "curve": [1.0000049, 2]})
    {'loss': 0.12346, 'curve': [1.0, 2]}
    """
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


def report_provenance(
    results: Mapping[str, Sequence[Outcome]], variant: str | None
) -> dict[str, Any]:
    """A report's provenance: the commit and package versions writing it, the config variant,
    the commits that trained its runs (a run read back keeps its own) and their summed training
    wall and CPU time. A DirtyTreeError when a run was trained from uncommitted changes (unless
    `ALLOW_DIRTY` is set).

    >>> report_provenance({"t": outcomes}, None)["commits_of_runs"]  # doctest: +SKIP
    ['816dd29...']
    """
    every = [o for outcomes in results.values() for o in outcomes]
    dirty = sorted({o.out_dir for o in every if str(o.commit).endswith("+dirty")})
    if dirty and os.environ.get(ALLOW_DIRTY) != "1":
        raise DirtyTreeError(
            f"{len(dirty)} of {len(every)} runs were trained from a checkout with uncommitted "
            f"changes (e.g. {dirty[0]}); re-train them from a clean tree, or set "
            f"{ALLOW_DIRTY}=1 to record them anyway"
        )
    return {
        **record_provenance("writing results.json"),
        "variant": variant,
        "commits_of_runs": sorted({str(o.commit) for o in every}),
        "train_wall_s": sum(o.train_wall_s or 0.0 for o in every),
        "train_cpu_s": sum(o.train_cpu_s or 0.0 for o in every),
    }


def write_report(
    results: Mapping[str, Sequence[Outcome]],
    suites: Mapping[str, Suite],
    out: str | Path,
    *,
    title: str,
    unit: str = "training sequences",
    variant: str | None = None,
    analysis: Mapping[str, Any] | None = None,
) -> None:
    """`results.json` (provenance, every outcome and the per-setting stats) and
    `sequences_to_success.png` (one panel per task, one point per run) in `out`.

    The provenance is `report_provenance`'s. `analysis` (e.g. paired tests) is stored as it is
    under its own key. Metrics are kept to 5 significant digits: a committed record, not a
    checkpoint.

    >>> write_report({"t": outcomes}, {"t": Suite("c.yaml")}, "out", title="")  # doctest: +SKIP
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"provenance": report_provenance(results, variant)}
    record["suites"] = {
        name: {
            "config": suites[name].config,
            "overrides": list(suites[name].overrides),
            "stats": {k: s._asdict() for k, s in stats(outcomes).items()},
            "runs": to_json(outcomes),
        }
        for name, outcomes in results.items()
    }
    if analysis:
        record["analysis"] = dict(analysis)
    (out / "results.json").write_text(json.dumps(rounded(record)))
    plot_sequences(results, out / "sequences_to_success.png", title=title, unit=unit)
