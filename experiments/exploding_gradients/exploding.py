"""Pascanu, Mikolov & Bengio (2013), §4.1 and Figure 7: the temporal order problem with an
Elman RNN of 50 units under their three initialisations (sigmoid, basic tanh, smart tanh) and
three training methods: plain SGD, SGD with gradient-norm clipping (SGD-C, their Algorithm 1)
and SGD with clipping and their regulariser Ω (SGD-CR), at several sequence lengths, 5 seeds per
point, success = under 1% wrong of 10,000 test sequences (`configs/exploding_gradients.yaml`).

An extra setting of ours, labelled as such, starts `R` at 2 × an orthogonal matrix (every
singular value 2: the exploding start) to show the explosion and what clipping does to it.

    python experiments/exploding_gradients/exploding.py [--seeds 5] [--lengths 50 100]
        [--workers 2] [--out DIR] [--check]

Every run logs the global gradient norm (before clipping) at every step; results.json keeps
per run its status, the step it was solved at, its final test and a summary of that trace.
Writes results.json and grad_norms.png.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from lstm_jax.reporting.plotting import plot_curves
from lstm_jax.training.sweeps import (
    Outcome,
    experiment_parser,
    grid,
    rate_text,
    report_provenance,
    run_check,
    stats,
    sweep,
)

# Pascanu et al. §4.1: W_rec, W_in, W_out ~ N(0, 0.01²) with sigmoid units; N(0, 0.1²) with
# tanh units; "smart tanh": W_in, W_out ~ N(0, 0.01²), W_rec sparse (15 nonzero incoming
# weights per unit) at spectral radius 0.95. Biases 0 in all three.
INITS = {
    "sigmoid": (
        "model.options={activation: sigmoid, recurrent_init: normal, recurrent_scale: 0.01, "
        "input_scale: 0.01}",
        "model.readout_std=0.01",
    ),
    "basic tanh": (
        "model.options={recurrent_init: normal, recurrent_scale: 0.1, input_scale: 0.1}",
        "model.readout_std=0.1",
    ),
    "smart tanh": (
        "model.options={recurrent_init: sparse, recurrent_scale: 0.95, input_scale: 0.01}",
        "model.readout_std=0.01",
    ),
}
# their Figure 7's three curves: MSGD ("with no momentum" in §4.1), MSGD-C, MSGD-CR (α = 4)
METHODS = {
    "SGD": ("optimizer.clip_norm=null", "training.omega.weight=0.0"),
    "SGD-C": ("optimizer.clip_norm=1.0", "training.omega.weight=0.0"),
    "SGD-CR": ("optimizer.clip_norm=1.0", "training.omega.weight=4.0"),
}
# ours, not the paper's: R = 2 x orthogonal (every singular value 2), at the shortest length
EXTRA = {
    f"R=2 orth (ours), {method}": (
        "model.options={recurrent_init: orthogonal, recurrent_scale: 2.0}",
        "model.readout_std=0.1",
        *METHODS[method],
    )
    for method in ("SGD", "SGD-C")
}
# grad_norms.png: the extra rows (explosion, and clipping) and smart tanh without / with Ω
_PLOTTED = ("smart tanh, SGD-C", "smart tanh, SGD-CR")
TRACE_BLOCK = 50  # results.json keeps the max of every 50 steps, not every step


def settings_for(length: int, shortest: int) -> dict[str, tuple[str, ...]]:
    """Every init × method at `length` (plus our extra rows at the shortest length)."""
    task = (f"task.options.length={length}",)
    paper = {
        f"{init}, {method}": (*task, *INITS[init], *METHODS[method])
        for init in INITS
        for method in METHODS
    }
    extra = {label: (*task, *o) for label, o in EXTRA.items()} if length == shortest else {}
    return paper | extra


def summarised(o: Outcome) -> dict:
    """One run for results.json: its outcome and a summary of its gradient-norm trace."""
    norms = o.grad_norms or []
    finite = [g for g in norms if math.isfinite(g)]
    blocks = [norms[i : i + TRACE_BLOCK] for i in range(0, len(norms), TRACE_BLOCK)]
    return {
        "label": o.label,
        "seed": o.seed,
        "overrides": list(o.overrides),
        "status": o.status,
        "steps": o.steps,
        "solved_at_step": o.solved_at_step,
        "final_eval": o.final_eval,  # a diverged run: its last evaluation before it diverged
        "train_wall_s": o.train_wall_s,
        "train_cpu_s": o.train_cpu_s,
        "commit": o.commit,
        "grad_norm": {
            "max": max(finite, default=math.nan),
            "median": statistics.median(finite) if finite else math.nan,
            "steps_above_10": sum(g > 10 for g in finite),
            f"trace_max_per_{TRACE_BLOCK}_steps": [float(f"{max(b):.4g}") for b in blocks],
        },
    }


def print_table(suite: str, outcomes: list[Outcome]) -> None:
    print(f"\n{suite}")
    print(
        f"{'setting':<28}{'solved (95% CI)':>17}{'mean updates*':>15}{'diverged':>9}"
        f"{'max |g|':>10}{'median |g|':>11}{'final wrong (median)':>22}"
    )
    for label, s in stats(outcomes).items():
        runs = [o for o in outcomes if o.label == label]
        norms = [g for o in runs for g in (o.grad_norms or []) if math.isfinite(g)]
        wrong = [o.final_eval.get("wrong", math.nan) for o in runs]
        solved = [o.solved_at_step for o in runs if o.solved_at_step is not None]
        mean = f"{statistics.fmean(solved):,.0f}" if solved else "-"
        print(
            f"{label:<28}{rate_text(s.solved, s.runs):>17}{mean:>15}{s.diverged:>6}/{s.runs:<2}"
            f"{max(norms, default=math.nan):>10.3g}"
            f"{statistics.median(norms) if norms else math.nan:>11.3g}"
            f"{statistics.median(wrong):>22,.0f}"
        )
    print("* over the solved runs; '-': none solved within the budget")


def main() -> None:
    parser = experiment_parser(__doc__, Path(__file__).parent, "runs/exploding_gradients", 5)
    parser.add_argument("--config", default="configs/exploding_gradients.yaml")
    parser.add_argument("--lengths", nargs="+", type=int, default=[50, 100])
    args = parser.parse_args()
    if args.check:
        run_check(args)
    results: dict[str, list[Outcome]] = {}
    for length in args.lengths:
        results[f"temporal order T={length}"] = sweep(
            args.config,
            grid(settings_for(length, min(args.lengths)), range(args.seeds)),
            variant=args.variant,
            out_dir=args.runs / f"temporal_order_T{length}",
            workers=args.workers,
            keep_grad_norms=True,
        )
    record = {
        "provenance": report_provenance(results, args.variant),
        "suites": {
            suite: {
                "config": args.config,
                "overrides": [],
                "stats": {k: s._asdict() for k, s in stats(outcomes).items()},
                "runs": [summarised(o) for o in outcomes],
            }
            for suite, outcomes in results.items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(record))
    print(f"Elman RNN, H = 50, SGD 0.01, batch 20; {args.seeds} seeds per row")
    for suite, outcomes in results.items():
        print_table(suite, outcomes)
    shortest = results[f"temporal order T={min(args.lengths)}"]
    first = {o.label: o for o in shortest if o.seed == 0}
    plot_curves(
        {f"{label}, seed 0": first[label].grad_norms or [] for label in (*EXTRA, *_PLOTTED)},
        args.out / "grad_norms.png",
        title=f"Global gradient norm per SGD step (before clipping), T={min(args.lengths)}",
        xlabel="step",
        ylabel="‖g‖",
    )


if __name__ == "__main__":
    main()
