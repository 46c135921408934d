"""Gers, Schmidhuber & Cummins (2000): the continual embedded Reber grammar (issue 6, exp. 4).

One stream of embedded Reber strings with no resets between them. The 1997 LSTM (no forget
gate) must learn to reset itself and cannot; the forget gate lets it; an external reset at each
string's start (the carry zeroed: the task made non-continual) is the upper baseline. Three
settings of `configs/continual_reber.yaml`, several seeds each; a run is solved when every test
stream is predicted without one error.

    python experiments/continual_reber/continual_reber.py [--seeds 10] [--workers 2]

Writes results.json and sequences_to_success.png beside this file (or in --out).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lstm_jax.training.sweep import Suite, compare, write_report

TASKS = {"continual embedded Reber": Suite("configs/continual_reber.yaml", (), "streams_correct")}
SETTINGS = {
    "no forget gate": ("model.variant=1997",),
    "forget gate": ("model.variant=1997", "model.options.forget_gate=true"),
    "no forget gate, reset": ("model.variant=1997", "task.options.external_reset=true"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variant", help="a variant of the config, e.g. tiny (the tests)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--runs", type=Path, default=Path("runs/continual_reber"))
    args = parser.parse_args()
    results = compare(
        TASKS,
        SETTINGS,
        seeds=args.seeds,
        runs_dir=args.runs,
        variant=args.variant,
        workers=args.workers,
    )
    write_report(
        results,
        TASKS,
        args.out,
        title=f"Continual embedded Reber: training until solved ({args.seeds} seeds)",
        unit="training chunks (one stream x chunk_length symbols)",
    )


if __name__ == "__main__":
    main()
