"""Gers, Schmidhuber & Cummins (2000): the continual embedded Reber grammar.

One stream of embedded Reber strings with no resets between them. Three suites:

- **Gers et al. 2000 protocol** (`configs/continual_reber_2000.yaml`): 4 blocks of 2 cells,
  weights U[±0.2], block-wise gate biases, SGD 0.5 after every symbol from the 1997 traces
  (`training.learner: online`), a training stream that ends at its first error (the net reset),
  the four published settings: no forget gate, forget gate, forget gate with a decaying
  learning rate, no forget gate with an external reset at each string's start.
- **the same, "squared error < 0.49 is right"** (`--seeds-loose`): a step is right when every
  output's squared error is below 0.49 (one secondary reading of the paper's criterion)
  instead of {output > 0.5} being the successor set; it decides stream ends and tests.
- **modern set-up** (`configs/continual_reber.yaml`, our extension, not the paper's): Adam,
  16 streams in windows of 100 symbols, a restart every 10,000 symbols.

A run is solved when all 10 test streams of 100,000 symbols are predicted without one error.
The table gives each rate with its 95% Wilson interval, to set beside the published ones.

    python experiments/continual_reber/continual_reber.py [--seeds 30] [--seeds-modern 10]
        [--seeds-loose 10] [--pilots 10]
    python experiments/continual_reber/continual_reber.py --check

Writes results.json and sequences_to_success.png beside this file (or in --out).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lstm_jax.training.sweeps import Suite, compare, experiment_parser, run_check, write_report

PAPER = "continual Reber, Gers et al. 2000 protocol"
MODERN = "continual Reber, modern set-up"
SUITES = {
    PAPER: Suite("configs/continual_reber_2000.yaml", (), "streams_correct"),
    MODERN: Suite("configs/continual_reber.yaml", (), "streams_correct"),
}
_NO_FORGET = ("model.options.forget_gate=false",)
SETTINGS = {
    PAPER: {
        "no forget gate": _NO_FORGET,
        "forget gate": (),
        "forget gate, decay": ("optimizer.schedule=exponential",),
        "no forget gate, reset": (*_NO_FORGET, "task.options.external_reset=true"),
    },
    MODERN: {
        "no forget gate": ("model.variant=1997",),
        "forget gate": ("model.variant=1997", "model.options.forget_gate=true"),
        "no forget gate, reset": ("model.variant=1997", "task.options.external_reset=true"),
    },
}
# Pilots for the external reset's and the decay's shortfalls (6/30 against 74%, 12/30 against
# 62%): one change to a paper setting at a time, 10 nets each at a tenth of the budget.
# `gate_inputs=false`: only the cell outputs feed back (the 2000 paper's "cell outputs fully
# connected to the cell inputs, all gates and the output units", as we recall it) instead of
# every unit's activation (1997); `reset_on_error=false`: the net learns from every symbol, not
# only up to a training stream's first error.
PILOTS = "continual Reber, pilots (3 million symbols)"
SUITES[PILOTS] = Suite(
    "configs/continual_reber_2000.yaml", ("training.steps=3000",), "streams_correct"
)
_RESET = (*_NO_FORGET, "task.options.external_reset=true")
_EVERY = ("training.online.reset_on_error=false",)
SETTINGS[PILOTS] = {
    "reset": _RESET,
    "reset, cell outputs fed back only": (*_RESET, "model.options.gate_inputs=false"),
    "reset, learning from every symbol": (*_RESET, *_EVERY),
    "forget gate": (),
    "forget gate, learning from every symbol": _EVERY,
    "no forget gate, learning from every symbol": (*_NO_FORGET, *_EVERY),
    # the decay's schedule is our reading; a ten times faster one (x0.05 by 3M symbols)
    "forget gate, decay x0.99 per 10,000 symbols": (
        "optimizer.schedule=exponential",
        "optimizer.decay_steps=10000",
    ),
    # the error criterion: "squared error of every output below 0.49" as one secondary source
    # reads the paper (ours: the set {output > 0.5}); it decides where training streams end
    # and the tests
    **{
        f"{name}, squared error < 0.49 is right": (*overrides, "task.options.max_error=0.7")
        for name, overrides in {
            "reset": _RESET,
            "no forget gate": _NO_FORGET,
            "forget gate": (),
            "forget gate, decay": ("optimizer.schedule=exponential",),
        }.items()
    },
}
# The paper suite again with the error criterion "squared error of every output below 0.49"
# (task.options.max_error=0.7, one secondary source's reading; ours: the set {output > 0.5}),
# for the stream ends and the tests. Without the forget gate it stays unsolved (pilot: 0/10).
LOOSE = "continual Reber, Gers et al. 2000 protocol, squared error < 0.49 is right"
SUITES[LOOSE] = Suite(
    "configs/continual_reber_2000.yaml", ("task.options.max_error=0.7",), "streams_correct"
)
SETTINGS[LOOSE] = {k: v for k, v in SETTINGS[PAPER].items() if k != "no forget gate"}
PUBLISHED = "published (100 nets): reset 74% > forget gate + decay 62% > forget gate 18% > none 0%"


def run_and_report(args: argparse.Namespace, plan: dict[str, int], out: Path, what: str) -> None:
    """Trains (or reads back) `{suite: seeds}` and writes one report of them in `out`."""
    suites = dict(SUITES)
    if args.variant is not None:  # a config variant (the tests' tiny) brings its own budget
        suites[PILOTS] = SUITES[PILOTS]._replace(overrides=())
    results = {}
    for name, seeds in plan.items():
        if seeds:
            results |= compare(
                {name: suites[name]},
                SETTINGS[name],
                seeds=seeds,
                runs_dir=args.runs,
                variant=args.variant,
                workers=args.workers,
            )
    if results:
        write_report(
            results,
            {name: suites[name] for name in results},
            out,
            title=f"Continual embedded Reber{what}: training chunks until solved",
            unit="training chunks (one stream x chunk_length symbols)",
            variant=args.variant,
        )


def main() -> None:
    parser = experiment_parser(__doc__, Path(__file__).parent, "runs/continual_reber", 30)
    parser.add_argument("--seeds-modern", type=int, default=10, help="seeds of the modern suite")
    parser.add_argument(
        "--pilots", type=int, default=0, help="seeds of the pilots (report in OUT/pilots)"
    )
    parser.add_argument(
        "--seeds-loose", type=int, default=0, help="seeds of the squared-error-criterion suite"
    )
    args = parser.parse_args()
    if args.check:
        run_check(args)
    run_and_report(args, {PILOTS: args.pilots}, args.out / "pilots", ", pilots")
    plan = {PAPER: args.seeds, LOOSE: args.seeds_loose, MODERN: args.seeds_modern}
    run_and_report(args, plan, args.out, "")
    print(PUBLISHED)


if __name__ == "__main__":
    main()
