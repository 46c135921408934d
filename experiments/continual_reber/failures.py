"""Where the continual-Reber nets that did not solve go wrong: each unsolved run of a suite is
loaded from its newest checkpoint and run over the first symbols of its own first test stream.

Each wrong prediction is placed in the embedded string ``B T|P <inner Reber string> T|P E``:

- *long-lag T/P*: after the inner string's E, the outer T or P seen ~10 symbols before;
- *E after the outer T/P* and *B after the final E*: the string's last two predictions;
- *inside the string*: everything else (the inner grammar, the first symbols).

A wrong output is *saturated* when it is below 0.01 or above 0.99: there the logistic unit's
slope σ'(z) < 0.01 scales its squared-error gradient down by more than 25 times its slope at
0.5, the flat spot where SGD hardly moves it.

    python experiments/continual_reber/failures.py [--runs runs/continual] [--symbols 5000]
    python experiments/continual_reber/failures.py --retest --runs R --suite S
        (the nets solved under `task.options.max_error`, re-tested by the 0.5 threshold)
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lstm_jax.training.config import load
from lstm_jax.training.load import load_run
from lstm_jax.training.tasks.reber import REBER_SYMBOLS

SUITE = "continual_Reber_Gers_et_al._2000_protocol"  # the sweep's directory of the paper suite
_B, _E = REBER_SYMBOLS.index("B"), REBER_SYMBOLS.index("E")
CLASSES = ("long-lag T/P", "E after the outer T/P", "B after the final E", "inside the string")


def classify(symbols: np.ndarray, wrong: np.ndarray) -> collections.Counter:
    """`{class: wrong predictions}`; `symbols` [T] input indices, `wrong` [T] bool (the
    prediction made after reading `symbols[t]`)."""
    counts: collections.Counter = collections.Counter()
    for t in np.flatnonzero(wrong[: len(symbols) - 2]):
        if t >= 1 and symbols[t] == _E and symbols[t + 2] == _E:
            counts[CLASSES[0]] += 1
        elif t >= 1 and symbols[t + 1] == _E and symbols[t - 1] == _E:
            counts[CLASSES[1]] += 1
        elif symbols[t] == _E and symbols[t + 1] == _B:
            counts[CLASSES[2]] += 1
        else:
            counts[CLASSES[3]] += 1
    return counts


def diagnose(run: Path, symbols: int) -> dict:
    """One unsolved run: its error classes and the fraction of its wrong outputs saturated."""
    net = load_run(run)
    test = net.task.test_set(net.config.training.seed, 1)
    cut = {f: getattr(test, f)[:symbols] for f in ("inputs", "targets", "mask")}
    for f in ("resets", "starts"):
        if getattr(test, f, None) is not None:
            cut[f] = getattr(test, f)[:symbols]
    test = test._replace(**cut)
    outputs = np.asarray(net.predict(test.inputs, test.lengths, test.resets))[:, 0]
    targets = np.asarray(cut["targets"])[:, 0] > 0.5
    wrong_units = (outputs > 0.5) != targets
    wrong = wrong_units.any(-1)
    values = outputs[wrong_units]
    counts = classify(np.asarray(cut["inputs"])[:, 0].argmax(-1), wrong)
    return {
        "wrong": int(wrong.sum()),
        "classes": dict(counts),
        "saturated": float(np.mean((values < 0.01) | (values > 0.99))) if values.size else 0.0,
    }


def retest_at_threshold(run: Path) -> dict[str, float]:
    """A net trained and tested with `task.options.max_error`, re-tested on its own 10 test
    streams by the 0.5 threshold (a symbol is right when {output > 0.5} is its successor set):
    the test metrics under the stricter criterion."""
    net = load_run(run)
    test = net.task.test_set(net.config.training.seed, net.config.training.eval_size)
    outputs = np.asarray(net.predict(test.inputs, test.lengths, test.resets))
    return dataclasses.replace(net.task, max_error=None).metrics(outputs, test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/continual"))
    parser.add_argument("--suite", default=SUITE, help="the sweep's directory of the suite")
    parser.add_argument("--symbols", type=int, default=5000, help="test symbols per net")
    parser.add_argument(
        "--retest",
        action="store_true",
        help="instead: re-test the solved nets trained with task.options.max_error by the "
        "0.5 threshold (all their test streams; --symbols for where the failing ones err)",
    )
    args = parser.parse_args()
    if args.retest:
        retest(args.runs / args.suite, args.symbols)
        return
    by_setting: dict[str, list[dict]] = {}
    for setting, seed, run in _runs(args.runs / args.suite, solved=False):
        row = {"seed": seed, **diagnose(run, args.symbols)}
        by_setting.setdefault(setting, []).append(row)
        print(setting, row, flush=True)
    print(f"\nunsolved nets, first {args.symbols:,} symbols of their first test stream:")
    for setting, rows in by_setting.items():
        only_lag = sum(set(r["classes"]) == {CLASSES[0]} for r in rows)
        saturated = sum(r["saturated"] > 0.5 for r in rows)
        print(
            f"{setting:24s} {len(rows):2d} unsolved: {only_lag:2d} err only at the long-lag T/P, "
            f"{saturated:2d} with most wrong outputs saturated (< 0.01 or > 0.99)"
        )


def retest(suite: Path, symbols: int) -> None:
    """Prints, per setting trained with `max_error`, how many of its solved nets the 0.5
    threshold also calls solved, and where (by `diagnose`) those it fails err."""
    by_setting: dict[str, list[tuple[int, dict]]] = {}
    for setting, seed, run in _runs(suite, solved=True):
        if load(run / "config.yaml").task.options.get("max_error") is None:
            continue
        row = retest_at_threshold(run)
        if row["streams_correct"] < 1:
            row["by_the_threshold"] = diagnose(run, symbols)
        by_setting.setdefault(setting, []).append((seed, row))
        print(setting, seed, row, flush=True)
    print("\nsolved nets trained and tested with max_error, re-tested by the 0.5 threshold:")
    for setting, rows in by_setting.items():
        kept = [seed for seed, row in rows if row["streams_correct"] == 1.0]
        worst = min(row["symbols_correct"] for _, row in rows)
        print(
            f"{setting}: {len(kept)} of {len(rows)} still solved (seeds {kept}); "
            f"lowest fraction of test symbols right {worst:.5f}"
        )


def _runs(suite: Path, solved: bool) -> Iterator[tuple[str, int, Path]]:
    """`(setting, seed, run)` of the finished runs in `suite` that did (not) solve, in order."""
    runs = ((p.name.rsplit("-seed", 1), p) for p in suite.glob("*-seed*"))
    for (setting, seed), run in sorted(runs, key=lambda r: (r[0][0], int(r[0][1]))):
        summary = run / "summary.json"  # none yet: a run still training
        if summary.exists() and (json.loads(summary.read_text())["status"] == "solved") == solved:
            yield setting, int(seed), run


if __name__ == "__main__":
    main()
