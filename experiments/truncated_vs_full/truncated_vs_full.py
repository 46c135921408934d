"""Truncated vs full gradient under the 1997 paper's protocol: sequences until success.

Each task's paper-protocol config is trained with `model.gradient=truncated` (the 1997 LSTM
gradient, `lstm_jax/modes.py`: error flows back through time only along the cell
state) and `model.gradient=full` (BPTT through every path), everything else equal, over
`--seeds` seeds. A run succeeds at the paper's training-set rule (the 2,000 most recent
training sequences right); a run that never does counts as infinite.

- adding T = 100 (`configs/adding_1997.yaml` with a linear output unit: with the paper's
  sigmoid output no run reaches the rule within 5x the paper's budget, see
  `experiments/adding_1997`). The truncated runs are those of `experiments/adding_1997`.
- temporal order 6a (`configs/temporal_order_1997.yaml`, the paper's sigmoid output units).

    python experiments/truncated_vs_full/truncated_vs_full.py [--seeds 10] [--workers 2]
    python experiments/truncated_vs_full/truncated_vs_full.py --check

Writes results.json and sequences_to_success.png beside this file (or in --out); run
directories go to --runs (an interrupted sweep resumes there).
"""

from __future__ import annotations

from pathlib import Path

from lstm_jax.training.paired import describe, paired_test
from lstm_jax.training.sweeps import (
    Outcome,
    Suite,
    compare,
    experiment_parser,
    run_check,
    write_report,
)

TASKS = {
    "adding T=100": (
        Suite("configs/adding_1997.yaml", ("task.options.length=100",), "wrong"),
        {
            # labels as in experiments/adding_1997, so the truncated runs are read back
            "linear output": ("model.output=identity", "model.gradient=truncated"),
            "linear output, full": ("model.output=identity", "model.gradient=full"),
        },
    ),
    "temporal order 6a": (
        Suite("configs/temporal_order_1997.yaml", (), "wrong_1997"),
        {"truncated": ("model.gradient=truncated",), "full": ("model.gradient=full",)},
    ),
}


def main() -> None:
    parser = experiment_parser(__doc__, Path(__file__).parent, "runs/paper_protocol", 10)
    parser.add_argument("--tasks", nargs="*", choices=list(TASKS), default=list(TASKS))
    args = parser.parse_args()
    if args.check:
        run_check(args)
    results = {}
    for name in args.tasks:
        suite, modes = TASKS[name]
        results.update(
            compare(
                {name: suite},
                modes,
                seeds=args.seeds,
                runs_dir=args.runs,
                variant=args.variant,
                workers=args.workers,
            )
        )
    analysis = {name: paired(name, outcomes) for name, outcomes in results.items()}
    write_report(
        results,
        {name: TASKS[name][0] for name in results},
        args.out,
        title=f"Training sequences until the 1997 rule, truncated vs full ({args.seeds} seeds)",
        variant=args.variant,
        analysis={"paired truncated - full": analysis},
    )


def paired(task: str, outcomes: list[Outcome]) -> dict:
    """The paired test of the task's truncated setting against its full one (same seeds, same
    data, same initial weights): sequences until the 1997 rule, truncated minus full."""
    truncated, full = TASKS[task][1]  # each task lists its truncated setting first
    runs = {
        label: {o.seed: o.solved_at_sequences for o in outcomes if o.label == label}
        for label in (truncated, full)
    }
    try:
        test = paired_test(runs[truncated], runs[full])
    except ValueError as err:  # fewer than 3 seeds where both met the rule (tiny variants)
        print(f"{task}: no paired test: {err}")
        return {"error": str(err)}
    print(f"{task}: {describe(test, 'truncated', 'full', 'sequences')}")
    return test._asdict()


if __name__ == "__main__":
    main()
