"""Greff et al. (2015) LSTM variants on our tasks (issue 6, experiment 6).

Vanilla LSTM (forget gate, peepholes, tanh squashing) and its eight one-change variants (NIG,
NFG, NOG, NIAF, NOAF, NP, CIFG, FGR; `lstm_jax/cells/lstm/`), each trained at every learning
rate of a search over several seeds on each task (Greff et al. searched hyperparameters per
variant and compared each variant's best trials). Reported per variant and rate: runs solved,
training sequences until success, and the median final test metric; then each variant's best
rate, and a ranking of the variants at their best rates.

    python experiments/greff_variants/greff_variants.py [--seeds 3] [--workers 2] [--tasks ...]
        [--rates 0.001 0.003 0.01 0.03 0.1]   (--rates with no value: the configs' own rate)

Writes results.json and sequences_to_success.png beside this file (or in --out).
"""

from __future__ import annotations

import math
from pathlib import Path

from lstm_jax.diagnostics.plotting import plot_strips
from lstm_jax.training.sweep import (
    Suite,
    compare,
    experiment_parser,
    run_check,
    stats,
    write_report,
)

# Full BPTT as Greff et al.; the configs' own cells (the 1997 LSTM) are replaced per variant.
TASKS = {
    "embedded Reber": Suite(
        "configs/embedded_reber.yaml", ("model.gradient=full",), "strings_correct"
    ),
    "temporal order 6a": Suite("configs/temporal_order.yaml", ("model.gradient=full",), "wrong"),
    # the one task here that needs forgetting (full BPTT within each 100-symbol window)
    "continual Reber": Suite(
        "configs/continual_reber.yaml", ("model.gradient=full",), "streams_correct"
    ),
}
# a run of the continual task costs ~10x one of the others: fewer seeds keep this under 30 min
MAX_SEEDS = {"continual Reber": 3}
# the recorded search: the two sequence tasks (continual Reber is ~10x the cost per run)
DEFAULT_TASKS = ("embedded Reber", "temporal order 6a")
RATES = (0.001, 0.003, 0.01, 0.03, 0.1)  # Adam, log-spaced around both configs' own rates
VARIANTS = ("vanilla", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")


def _label(variant: str, rate: float | None) -> str:
    return variant if rate is None else f"{variant}, lr {rate:g}"


def _rate_override(rate: float | None) -> tuple[str, ...]:
    return () if rate is None else (f"optimizer.learning_rate={rate}",)


def main() -> None:
    parser = experiment_parser(__doc__, Path(__file__).parent, "runs/greff_variants", 3)
    parser.add_argument("--tasks", nargs="*", choices=list(TASKS), default=list(DEFAULT_TASKS))
    parser.add_argument(
        "--rates",
        nargs="*",
        type=float,
        default=list(RATES),
        help="a learning-rate search: every variant at each rate (Greff et al. searched per "
        "variant); each variant is then ranked by its best rate. With no value: the configs' "
        "own rate only",
    )
    args = parser.parse_args()
    if args.check:
        run_check(args)
    tasks = {name: TASKS[name] for name in args.tasks}
    settings = {
        _label(v, rate): (f"model.variant={v}", *_rate_override(rate))
        for v in VARIANTS
        for rate in args.rates or [None]
    }
    results = {}
    for name, task in tasks.items():
        results |= compare(
            {name: task},
            settings,
            seeds=min(args.seeds, MAX_SEEDS.get(name, args.seeds)),
            runs_dir=args.runs,
            variant=args.variant,
            workers=args.workers,
        )
    write_report(
        results,
        tasks,
        args.out,
        title="Greff et al. (2015) variants: training until success, one point per seed",
        unit="training sequences (continual Reber: 100-symbol chunks)",
        variant=args.variant,
    )
    # rank per task by (runs solved desc, median sequences asc, fastest run asc: breaks ties
    # between settings that solved too few runs for a finite median); then the mean rank
    ranks: dict[str, list[int]] = {v: [] for v in VARIANTS}
    panels: dict[str, dict[str, list[float]]] = {}  # each variant at its best rate, per task
    for name, outcomes in results.items():
        s = stats(outcomes)
        best_label = {  # each variant at its best rate (the only rate without --rates)
            v: min(
                (_label(v, rate) for rate in args.rates or [None]),
                key=lambda label: (-s[label].solved, s[label].median, s[label].low),
            )
            for v in VARIANTS
        }
        best = {v: s[best_label[v]] for v in VARIANTS}
        if args.rates:
            print(f"\n{name}: best rate per variant")
            for v in VARIANTS:
                print(f"  {best_label[v]:<16}: {best[v].solved}/{best[v].runs} solved")
        panels[name] = {
            best_label[v]: [
                math.inf if o.solved_at_sequences is None else float(o.solved_at_sequences)
                for o in outcomes
                if o.label == best_label[v]
            ]
            for v in VARIANTS
        }
        order = sorted(VARIANTS, key=lambda v: (-best[v].solved, best[v].median, best[v].low))
        for rank, v in enumerate(order, 1):
            ranks[v].append(rank)
    if len(args.rates) > 1:  # every rate in one panel is unreadable: each variant's best rate
        plot_strips(
            panels,
            args.out / "sequences_to_success.png",
            title="Greff et al. (2015) variants at their best learning rates, one point per seed",
            ylabel="training sequences until solved",
        )
    print(f"\nranking (mean rank over {len(results)} tasks; 1 = best)")
    for v in sorted(VARIANTS, key=lambda v: sum(ranks[v]) / len(ranks[v])):
        mean = sum(ranks[v]) / len(ranks[v])
        print(f"{v:<8}{mean:>6.1f}   per task: {ranks[v]}")


if __name__ == "__main__":
    main()
