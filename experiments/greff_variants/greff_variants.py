"""Greff et al. (2015) LSTM variants on our tasks (issue 6, experiment 6).

Vanilla LSTM (forget gate, peepholes, tanh squashing) and its eight one-change variants (NIG,
NFG, NOG, NIAF, NOAF, NP, CIFG, FGR; `lstm_jax/cells/lstm/`), each trained at every learning
rate of a search over several seeds on each task (Greff et al. searched hyperparameters per
variant and compared each variant's best trials). Reported per variant and rate: runs solved,
training sequences until success, and the median final test metric; then each variant's best
rate, and a ranking of the variants at their best rates.

The Bach chorales (`--tasks "Bach chorales"`, the optional extra `music`) have no success
criterion: each run's validation NLL is read at every epoch, the epoch with the lowest is its
early-stopping point, each variant's best rate is the one with the lowest median of those, and
that rate's seeds are re-trained on the test split up to their chosen epochs (the same updates:
the split only changes what is evaluated) to give the test NLL the variants are ranked by.

    python experiments/greff_variants/greff_variants.py [--seeds 3] [--workers 2] [--tasks ...]
        [--rates 0.001 0.003 0.01 0.03 0.1]   (default: each task's grid, RATES; with no
        value: the configs' own rate)

Writes results.json and sequences_to_success.png beside this file (or in --out).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from lstm_jax.reporting.plotting import plot_strips
from lstm_jax.training.run_log import curves, records
from lstm_jax.training.sweeps import (
    Outcome,
    Run,
    Suite,
    compare,
    experiment_parser,
    run_check,
    stats,
    sweep,
    write_report,
)
from lstm_jax.training.trainer import METRICS

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
    # real data, as Greff et al.'s JSB Chorales: scored by NLL per frame, not by success
    "Bach chorales": Suite("configs/bach_chorales.yaml", ("model.gradient=full",), "nll"),
}
SCORED = {"Bach chorales": "nll"}  # tasks ranked by a test metric (lower is better)
# a run of the continual task costs ~10x one of the others: fewer seeds keep this under 30 min
MAX_SEEDS = {"continual Reber": 3}
# the recorded search: the two sequence tasks (continual Reber is ~10x the cost per run)
DEFAULT_TASKS = ("embedded Reber", "temporal order 6a")
# Adam, log-spaced around each config's own rate (0.01 for the synthetic tasks, 0.001 music)
RATES = {
    "embedded Reber": (0.001, 0.003, 0.01, 0.03, 0.1),
    "temporal order 6a": (0.001, 0.003, 0.01, 0.03, 0.1),
    "continual Reber": (0.001, 0.003, 0.01, 0.03, 0.1),
    "Bach chorales": (0.0001, 0.0003, 0.001, 0.003, 0.01),
}
VARIANTS = ("vanilla", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")


def _label(variant: str, rate: float | None) -> str:
    return variant if rate is None else f"{variant}, lr {rate:g}"


def _rate_override(rate: float | None) -> tuple[str, ...]:
    return () if rate is None else (f"optimizer.learning_rate={rate}",)


def early_stop(outcome: Outcome, metric: str) -> tuple[int, float]:
    """(step, value) of the evaluation with the lowest `metric`: the run's early-stopping point."""
    return min(((step, m[metric]) for step, m in outcome.evals), key=lambda e: (e[1], e[0]))


def _score_on_test(
    name: str, chosen: dict[str, list[Outcome]], args, metric: str
) -> dict[str, list[Outcome]]:
    """Each variant's chosen runs re-trained on the test split up to their early-stopping steps:
    `{variant: outcomes}`, whose final evaluation is the test `metric` at that step."""
    suite = TASKS[name]
    runs = [
        Run(
            f"{o.label}, test",
            o.seed,
            (
                *o.overrides,
                "task.options.split=test",
                f"training.steps={early_stop(o, metric)[0]}",
            ),
        )
        for outcomes in chosen.values()
        for o in outcomes
    ]
    done = sweep(
        suite.config,
        runs,
        out_dir=args.runs / (name.replace(" ", "_") + "_test"),
        variant=args.variant,
        workers=args.workers,
    )
    # the claim that makes this honest: the test run trained exactly as the validation run did
    source = {(o.label, o.seed): o for outcomes in chosen.values() for o in outcomes}
    for o in done:
        got = curves(records(Path(o.out_dir) / METRICS))[0]
        valid = source[(o.label.removesuffix(", test"), o.seed)]
        want = [e for e in curves(records(Path(valid.out_dir) / METRICS))[0] if e[0] <= o.steps]
        if got != want:
            raise RuntimeError(f"{o.out_dir} did not train as {valid.out_dir} did")
    return {
        v: [o for o in done if o.label == f"{outcomes[0].label}, test"]
        for v, outcomes in chosen.items()
    }


def _scored_ranking(name, outcomes, rates, args) -> tuple[list[str], dict, dict]:
    """A task without a success criterion: each variant's best rate by the median validation
    `metric` at the runs' early-stopping points; then the test `metric` of those runs at the same
    steps. Returns (variants best first, the test outcomes, {variant: best label})."""
    metric = SCORED[name]
    by_label: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_label.setdefault(o.label, []).append(o)
    print(f"\n{name}: validation {metric} at each run's best epoch (median over seeds)")
    best_label = {}
    for v in VARIANTS:
        medians = {}
        for rate in rates:
            label = _label(v, rate)
            stops = [early_stop(o, metric) for o in by_label[label]]
            medians[label] = statistics.median(value for _, value in stops)
            print(
                f"  {label:<18} {medians[label]:8.4f}   per seed: "
                + ", ".join(f"{value:.4f} @ step {step}" for step, value in stops)
            )
        best_label[v] = min(medians, key=medians.get)
    tested = _score_on_test(name, {v: by_label[best_label[v]] for v in VARIANTS}, args, metric)
    test_median = {
        v: statistics.median(o.final_eval[metric] for o in runs) for v, runs in tested.items()
    }
    print(f"\n{name}: each variant at its best rate, test {metric} at the validation's step")
    for v in sorted(VARIANTS, key=test_median.get):
        values = [o.final_eval[metric] for o in tested[v]]
        print(
            f"  {best_label[v]:<18} test {metric} median {test_median[v]:.4f} "
            f"({min(values):.4f}-{max(values):.4f}); steps {[o.steps for o in tested[v]]}"
        )
    return sorted(VARIANTS, key=test_median.get), tested, best_label


def _solved_ranking(name, outcomes, rates) -> tuple[list[str], dict[str, list[float]]]:
    """Rank by (runs solved desc, median sequences asc, fastest run asc: breaks ties between
    settings that solved too few runs for a finite median), each variant at its best rate."""
    s = stats(outcomes)
    best_label = {
        v: min(
            (_label(v, rate) for rate in rates),
            key=lambda label: (-s[label].solved, s[label].median, s[label].low),
        )
        for v in VARIANTS
    }
    best = {v: s[best_label[v]] for v in VARIANTS}
    if len(rates) > 1:
        print(f"\n{name}: best rate per variant")
        for v in VARIANTS:
            print(f"  {best_label[v]:<16}: {best[v].solved}/{best[v].runs} solved")
    panel = {
        best_label[v]: [
            math.inf if o.solved_at_sequences is None else float(o.solved_at_sequences)
            for o in outcomes
            if o.label == best_label[v]
        ]
        for v in VARIANTS
    }
    order = sorted(VARIANTS, key=lambda v: (-best[v].solved, best[v].median, best[v].low))
    return order, panel


def main() -> None:
    parser = experiment_parser(__doc__, Path(__file__).parent, "runs/greff_variants", 3)
    parser.add_argument("--tasks", nargs="*", choices=list(TASKS), default=list(DEFAULT_TASKS))
    parser.add_argument(
        "--rates",
        nargs="*",
        type=float,
        default=None,
        help="a learning-rate search: every variant at each rate (Greff et al. searched per "
        "variant); each variant is then ranked by its best rate. Default: each task's grid "
        "(RATES); with no value: the configs' own rate only",
    )
    args = parser.parse_args()
    if args.check:
        run_check(args)
    tasks = {name: TASKS[name] for name in args.tasks}
    results, rates_of = {}, {}
    for name, task in tasks.items():
        rates_of[name] = RATES[name] if args.rates is None else (args.rates or [None])
        settings = {
            _label(v, rate): (f"model.variant={v}", *_rate_override(rate))
            for v in VARIANTS
            for rate in rates_of[name]
        }
        results |= compare(
            {name: task},
            settings,
            seeds=min(args.seeds, MAX_SEEDS.get(name, args.seeds)),
            runs_dir=args.runs,
            variant=args.variant,
            workers=args.workers,
        )
    ranks: dict[str, list[int]] = {v: [] for v in VARIANTS}
    panels: dict[str, dict[str, list[float]]] = {}  # each variant at its best rate, per task
    scores: dict[str, dict[str, list[float]]] = {}  # the same for the scored tasks' metric
    reported, suites = dict(results), dict(tasks)
    for name, outcomes in results.items():
        if name in SCORED:
            order, tested, best_label = _scored_ranking(name, outcomes, rates_of[name], args)
            reported[f"{name}, test"] = [o for runs in tested.values() for o in runs]
            suites[f"{name}, test"] = tasks[name]._replace(
                overrides=(*tasks[name].overrides, "task.options.split=test")
            )
            scores[name] = {
                best_label[v]: [o.final_eval[SCORED[name]] for o in tested[v]] for v in VARIANTS
            }
        else:
            order, panels[name] = _solved_ranking(name, outcomes, rates_of[name])
        for rank, v in enumerate(order, 1):
            ranks[v].append(rank)
    write_report(
        reported,
        suites,
        args.out,
        title="Greff et al. (2015) variants: training until success, one point per seed",
        unit="training sequences (continual Reber: 100-symbol chunks)",
        variant=args.variant,
    )
    if panels and any(len(r) > 1 for r in rates_of.values()):
        # every rate in one panel is unreadable: each variant's best rate
        plot_strips(
            panels,
            args.out / "sequences_to_success.png",
            title="Greff et al. (2015) variants at their best learning rates, one point per seed",
            ylabel="training sequences until solved",
        )
    if scores:
        plot_strips(
            scores,
            args.out / "test_nll.png",
            title="best rate per variant: test NLL, one point per seed",
            ylabel="NLL per frame (nats)",
            logy=False,
        )
    print(f"\nranking (mean rank over {len(results)} tasks; 1 = best)")
    for v in sorted(VARIANTS, key=lambda v: sum(ranks[v]) / len(ranks[v])):
        mean = sum(ranks[v]) / len(ranks[v])
        print(f"{v:<8}{mean:>6.1f}   per task: {ranks[v]}")


if __name__ == "__main__":
    main()
