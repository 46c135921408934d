"""Greff et al. (2015) LSTM variants on our tasks (issue 6, experiment 6).

Vanilla LSTM (forget gate, peepholes, tanh squashing) and its eight one-change variants (NIG,
NFG, NOG, NIAF, NOAF, NP, CIFG, FGR; `lstm_jax/cells/lstm/`) are trained with the same
hyperparameters on each task over several seeds. Reported per variant: runs solved, training
sequences until success, and the median final test metric; the script ends with a ranking by
median sequences.

    python experiments/greff_variants/greff_variants.py [--seeds 5] [--workers 2] [--tasks ...]
        [--rates 0.001 0.003 0.01 0.03 0.1]   (a per-variant learning-rate search)

Writes results.json and sequences_to_success.png beside this file (or in --out).
"""

from __future__ import annotations

from pathlib import Path

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
VARIANTS = ("vanilla", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")


def _label(variant: str, rate: float | None) -> str:
    return variant if rate is None else f"{variant}, lr {rate:g}"


def _rate_override(rate: float | None) -> tuple[str, ...]:
    return () if rate is None else (f"optimizer.learning_rate={rate}",)


def main() -> None:
    parser = experiment_parser(__doc__, Path(__file__).parent, "runs/greff_variants", 5)
    parser.add_argument("--tasks", nargs="*", choices=list(TASKS), default=list(TASKS))
    parser.add_argument(
        "--rates",
        nargs="*",
        type=float,
        default=[],
        help="a learning-rate search: every variant at each rate (Greff et al. searched per "
        "variant); each variant is then ranked by its best rate. Default: the configs' rate",
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
    for name, outcomes in results.items():
        s = stats(outcomes)
        best = {  # each variant at its best rate (the only rate without --rates)
            v: min(
                (s[_label(v, rate)] for rate in args.rates or [None]),
                key=lambda x: (-x.solved, x.median, x.low),
            )
            for v in VARIANTS
        }
        if args.rates:
            print(f"\n{name}: best rate per variant")
            for v in VARIANTS:
                rate = next(r for r in args.rates if s[_label(v, r)] is best[v])
                print(f"  {v:<8} lr {rate:g}: {best[v].solved}/{best[v].runs} solved")
        order = sorted(VARIANTS, key=lambda v: (-best[v].solved, best[v].median, best[v].low))
        for rank, v in enumerate(order, 1):
            ranks[v].append(rank)
    print(f"\nranking (mean rank over {len(results)} tasks; 1 = best)")
    for v in sorted(VARIANTS, key=lambda v: sum(ranks[v]) / len(ranks[v])):
        mean = sum(ranks[v]) / len(ranks[v])
        print(f"{v:<8}{mean:>6.1f}   per task: {ranks[v]}")


if __name__ == "__main__":
    main()
