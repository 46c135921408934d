"""Training streams of the continual-Reber nets, counted from their logs.

Under `training.online.reset_on_error` every wrong prediction ends a training stream (the net is
reset and learns again from the next string), so the `errors` each chunk logs count the streams
that ended in it. Per setting: the streams each solved net needed, how many nets were solved
within `--budget` streams (Gers et al.'s budget as a secondary source gives it: 30,000), the
training symbols by which each net had used that many, and the streams the unsolved nets used in
all.

    python experiments/continual_reber/streams.py [--runs runs/continual] [--suite S]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from failures import SUITE

from lstm_jax.training.config import load


def count(run: Path, budget: int) -> dict:
    """One run: `streams` in all, `solved_after` (streams before its first passing test, or
    None), `budget_at` (chunk at which `budget` streams had ended, or None)."""
    streams, solved_after, budget_at = 0, None, None
    for line in (run / "metrics.jsonl").open():
        record = json.loads(line)
        if "eval" in record:
            if solved_after is None and record["eval"]["streams_correct"] == 1.0:
                solved_after = streams
            continue
        streams += record["errors"]
        if budget_at is None and streams >= budget:
            budget_at = record["step"]
    return {"streams": streams, "solved_after": solved_after, "budget_at": budget_at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/continual"))
    parser.add_argument("--suite", default=SUITE, help="the sweep's directory of the suite")
    parser.add_argument("--budget", type=int, default=30_000, help="training streams")
    args = parser.parse_args()
    by_setting: dict[str, list[dict]] = {}
    for run in sorted((args.runs / args.suite).glob("*-seed*")):
        if not load(run / "config.yaml").training.online.reset_on_error:
            continue  # it learns from every symbol: no training streams to count
        setting = run.name.rsplit("-seed", 1)[0]
        by_setting.setdefault(setting, []).append(count(run, args.budget))
    for setting, rows in by_setting.items():
        solved = sorted(r["solved_after"] for r in rows if r["solved_after"] is not None)
        within = sum(s <= args.budget for s in solved)
        at = sorted(r["budget_at"] for r in rows if r["budget_at"] is not None)
        unsolved = sorted(r["streams"] for r in rows if r["solved_after"] is None)
        print(
            f"{setting}: {len(solved)}/{len(rows)} solved, {within} within {args.budget:,} streams"
        )
        print(f"  streams until solved: {solved}")
        never = len(rows) - len(at)
        print(f"  chunk at which {args.budget:,} streams had ended: {at} ({never} never)")
        print(f"  streams in all, unsolved nets: {unsolved}")


if __name__ == "__main__":
    main()
