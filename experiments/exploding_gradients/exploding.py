"""Exploding gradients with and without gradient-norm clipping (Pascanu et al. 2013; issue 6,
experiment 5).

An Elman RNN whose recurrent matrix starts orthogonal times 2 (every singular value 2) or times 1
trains with plain SGD on the adding problem (T = 50) and on temporal order (T = 50-55), for
several seeds, without clipping and with Algorithm 1 (clip_norm = 1). Each run goes through the
library's trainer, which logs the global gradient norm at every step and stops a run whose loss
becomes NaN or infinite.

    python experiments/exploding_gradients/exploding.py [--seeds 5] [--workers 2] [--out DIR]

Writes results.json and grad_norms.png.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from lstm_jax.diagnostics.plotting import plot_curves
from lstm_jax.training.provenance import provenance
from lstm_jax.training.sweep import Outcome, experiment_parser, grid, run_check, sweep

# R's singular values at initialisation (2: explosion possible; 1: orthogonal, on the edge)
# crossed with clipping off / Algorithm 1 at threshold 1.
CONDITIONS = {
    "R=2 orth, no clipping": ("optimizer.clip_norm=null",),
    "R=2 orth, clipping at 1": ("optimizer.clip_norm=1.0",),
    "R=1 orth, no clipping": ("model.options.recurrent_scale=1.0", "optimizer.clip_norm=null"),
    "R=1 orth, clipping at 1": ("model.options.recurrent_scale=1.0", "optimizer.clip_norm=1.0"),
}
# the plot: explosion (adding, R = 2) and clipping making the difference (temporal order, R = 1)
PLOTTED = (
    ("adding T=50", "R=2 orth, no clipping"),
    ("adding T=50", "R=2 orth, clipping at 1"),
    ("temporal order T=50", "R=1 orth, no clipping"),
    ("temporal order T=50", "R=1 orth, clipping at 1"),
)
TASKS = {
    "adding T=50": (),
    # the 1997 task shortened to 50-55 steps (relevant symbols at steps 5-10 and 25-30)
    "temporal order T=50": (
        "task.name=temporal_order",
        "task.options={min_length: 50, max_length: 55}",
    ),
}


TRACE_BLOCK = 50  # results.json keeps the max of every 50 steps: 7.5 MB -> 70 kB


def as_record(o: Outcome) -> dict:
    """One run for the table and plot: the gradient norm of every step (before clipping)."""
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
        "grad_norms": o.grad_norms,
    }


def summarised(record: dict) -> dict:
    """`record` with its per-step norms replaced by summary figures and a block-max trace."""
    norms = record["grad_norms"]
    finite = [g for g in norms if math.isfinite(g)]
    blocks = [norms[i : i + TRACE_BLOCK] for i in range(0, len(norms), TRACE_BLOCK)]
    summary = {
        "max": max(finite, default=math.nan),
        "median": statistics.median(finite) if finite else math.nan,
        "steps_above_10": sum(g > 10 for g in finite),
        f"trace_max_per_{TRACE_BLOCK}_steps": [float(f"{max(b):.4g}") for b in blocks],
    }
    return {k: v for k, v in record.items() if k != "grad_norms"} | {"grad_norm": summary}


def main() -> None:
    parser = experiment_parser(__doc__, Path(__file__).parent, "runs/exploding_gradients", 5)
    parser.add_argument("--config", default="configs/exploding_gradients.yaml")
    args = parser.parse_args()
    if args.check:
        run_check(args)
    results = {}
    for task, task_overrides in TASKS.items():
        settings = {name: (*task_overrides, *clip) for name, clip in CONDITIONS.items()}
        outcomes = sweep(
            args.config,
            grid(settings, range(args.seeds)),
            variant=args.variant,
            out_dir=args.runs / task.replace(" ", "_").replace("=", ""),
            workers=args.workers,
            keep_grad_norms=True,
        )
        results[task] = {
            name: [as_record(o) for o in outcomes if o.label == name] for name in CONDITIONS
        }
    args.out.mkdir(parents=True, exist_ok=True)
    every = [r for by_condition in results.values() for rs in by_condition.values() for r in rs]
    record = {
        "provenance": {
            **provenance(),
            "variant": args.variant,
            "commits_of_runs": sorted({str(r["commit"]) for r in every}),
            "train_wall_s": sum(r["train_wall_s"] or 0.0 for r in every),
            "train_cpu_s": sum(r["train_cpu_s"] or 0.0 for r in every),
        },
        "suites": {
            task: {
                "config": args.config,
                "overrides": [],
                "runs": [summarised(r) for rs in by_condition.values() for r in rs],
            }
            for task, by_condition in results.items()
        },
    }
    (args.out / "results.json").write_text(json.dumps(record))

    print(f"Elman RNN, H = 50, plain SGD 0.05, batch 32; {args.seeds} seeds per row")
    print(
        f"{'task, condition':<46}{'diverged':>9}{'solved':>8}{'max |g|':>11}"
        f"{'median |g|':>12}{'steps |g|>10':>14}  final test (median)"
    )
    for task, by_condition in results.items():
        for name, runs in by_condition.items():
            norms = [g for r in runs for g in r["grad_norms"]]
            finite = [g for g in norms if math.isfinite(g)]
            diverged = sum(r["status"] == "diverged" for r in runs)
            solved = sum(r["solved_at_step"] is not None for r in runs)
            finals = [r["final_eval"] for r in runs if r["final_eval"]]
            key = "correct_fraction" if "correct_fraction" in (finals or [{}])[0] else "accuracy"
            final = statistics.median(f[key] for f in finals) if finals else math.nan
            print(
                f"{task + ', ' + name:<46}{diverged:>6}/{len(runs):<2}{solved:>5}/{len(runs):<2}"
                f"{max(finite):>11.3g}{statistics.median(finite):>12.3g}"
                f"{sum(g > 10 for g in finite):>14}  {key} {final:.3f}"
            )
    print("\nper seed: status, steps run (or step solved), max |g|")
    for task, by_condition in results.items():
        for name, runs in by_condition.items():
            cells = "; ".join(
                f"{r['seed']}: {r['status']}, {r['steps']}, {max(r['grad_norms'] or [0]):.3g}"
                if r["solved_at_step"] is None
                else f"{r['seed']}: solved at {r['solved_at_step']}, {max(r['grad_norms']):.3g}"
                for r in runs
            )
            print(f"{task + ', ' + name:<46}{cells}")
    plot_curves(
        {
            f"{task}, {name}, seed 0": results[task][name][0]["grad_norms"]
            for task, name in PLOTTED
            if task in results
        },
        args.out / "grad_norms.png",
        title="Global gradient norm per SGD step (before clipping), seed 0",
        xlabel="step",
        ylabel="‖g‖",
    )


if __name__ == "__main__":
    main()
