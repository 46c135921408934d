"""What a sweep's outcomes come to: the per-setting statistics of sequences to success, the
success rate with its Wilson interval, the text table and the strip figure."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from lstm_jax.training.sweeps.outcome import Outcome


class Stats(NamedTuple):
    """Sequences-to-success of one setting over its seeds (unsolved runs count as infinite)."""

    runs: int
    solved: int
    diverged: int
    median: float  # over all runs; inf when half or more did not solve
    mean: float  # over the solved runs (the 1997 paper's statistic); inf if none solved
    low: float  # fastest solved run (inf if none)
    high: float  # slowest run (inf if any did not solve)


def _sequences(o: Outcome) -> float:
    """The run's sequences to success; infinite when it did not solve."""
    return math.inf if o.solved_at_sequences is None else float(o.solved_at_sequences)


def stats(outcomes: Sequence[Outcome]) -> dict[str, Stats]:
    """`{label: Stats}` in first-seen label order.

    >>> o = Outcome("a", 0, "solved", 10, 80, 10, 80, {}, [], None, 0.0, "")
    >>> stats([o, o._replace(seed=1, solved_at_sequences=None)])["a"].median
    inf
    """
    by_label: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_label.setdefault(o.label, []).append(o)
    result = {}
    for label, group in by_label.items():
        seqs = sorted(_sequences(o) for o in group)
        n = len(seqs)
        median = seqs[n // 2] if n % 2 else (seqs[n // 2 - 1] + seqs[n // 2]) / 2
        result[label] = Stats(
            runs=n,
            solved=sum(o.solved_at_step is not None for o in group),
            diverged=sum(o.status == "diverged" for o in group),
            median=median,
            mean=statistics.fmean(done)
            if (done := [x for x in seqs if x < math.inf])
            else math.inf,
            low=seqs[0],
            high=seqs[-1],
        )
    return result


def wilson_interval(solved: int, runs: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z = 1.96) of a success rate seen as `solved` of
    `runs`: what a published percentage can be compared with at this many runs.

    >>> [round(x, 3) for x in wilson_interval(9, 10)]
    [0.596, 0.982]
    """
    if runs == 0:
        return 0.0, 1.0
    p = solved / runs
    centre = (p + z * z / (2 * runs)) / (1 + z * z / runs)
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / (1 + z * z / runs)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_text(solved: int, runs: int) -> str:
    """`9/10 (60-98%)`: the count and its 95% Wilson interval.

    >>> rate_text(9, 10)
    '9/10 (60-98%)'
    """
    low, high = wilson_interval(solved, runs)
    return f"{solved}/{runs} ({100 * low:.0f}-{100 * high:.0f}%)"


def fmt_count(x: float) -> str:
    """12,300 / 1.2M style; '-' for infinity (not solved).

    >>> fmt_count(12300), fmt_count(2_500_000), fmt_count(math.inf)
    ('12,300', '2.50M', '-')
    """
    if x == float("inf"):
        return "-"
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x:,.0f}"


def table(outcomes: Sequence[Outcome], metric: str | None = None, title: str = "") -> str:
    """A text table, one row per setting: runs solved (with the 95% Wilson interval of the
    rate), sequences to success (mean of the solved runs, median, fastest, slowest; '-' = not
    solved within the budget) and the median final test `metric`.

    >>> o = Outcome("a", 0, "solved", 10, 80, 10, 80, {"wrong": 0.0}, [], None, 0.0, "")
    >>> print(table([o], "wrong").splitlines()[1])  # doctest: +NORMALIZE_WHITESPACE
    a  1/1 (21-100%)  80  80  80  80  0
    """
    head = (
        f"{'setting':<24}{'solved (95% CI)':>18}{'mean*':>11}{'median':>11}{'fastest':>11}"
        f"{'slowest':>11}"
    )
    if metric:
        head += f"  {'final ' + metric + ' (median)':>30}"
    lines = [title, head] if title else [head]
    for label, s in stats(outcomes).items():
        row = (
            f"{label:<24}{rate_text(s.solved, s.runs):>18}{fmt_count(s.mean):>11}"
            f"{fmt_count(s.median):>11}{fmt_count(s.low):>11}{fmt_count(s.high):>11}"
        )
        if metric:
            values = [o.final_eval.get(metric, math.nan) for o in outcomes if o.label == label]
            row += f"  {statistics.median(values):>30.4g}"
        lines.append(row)
    lines.append("* mean over the solved runs; '-' = not solved within the budget")
    if any(s.diverged for s in stats(outcomes).values()):
        lines.append(
            "diverged: "
            + ", ".join(f"{k} {s.diverged}" for k, s in stats(outcomes).items() if s.diverged)
        )
    return "\n".join(lines)


def plot_sequences(
    results: Mapping[str, Sequence[Outcome]], png: str | Path, *, title: str, unit: str
) -> Path:
    """One panel per suite, one point per run at its sequences to success (`plot_strips`).

    >>> plot_sequences({"adding": outcomes}, "s.png", title="", unit="sequences")  # doctest: +SKIP
    PosixPath('s.png')
    """
    from lstm_jax.reporting.plotting import plot_strips

    panels = {}
    for name, outcomes in results.items():
        panel: dict[str, list[float]] = {}
        for o in outcomes:
            panel.setdefault(o.label, []).append(_sequences(o))
        panels[name] = panel
    return plot_strips(panels, png, title=title, ylabel=unit)
