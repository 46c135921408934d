"""Exploding gradients with and without gradient-norm clipping (Pascanu et al. 2013; issue 6,
experiment 5).

An Elman RNN whose recurrent matrix starts with every singular value at 2 trains with plain SGD
on the adding problem (T = 50), for several seeds, without clipping and with Algorithm 1
(clip_norm = 1). Each run goes through the library's trainer, which logs the global gradient
norm at every step and stops a run whose loss becomes NaN or infinite.

    python experiments/exploding_gradients/exploding.py [--seeds 5] [--out DIR]

Writes results.json and grad_norms.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from lstm_jax.config import load
from lstm_jax.plotting import plot_curves
from lstm_jax.train import Diverged, train

CONDITIONS = {"no clipping": "null", "clipping at 1 (Algorithm 1)": "1.0"}


def one_run(config: str, variant: str | None, seed: int, clip: str) -> dict:
    cfg = load(config, variant, (f"training.seed={seed}", f"optimizer.clip_norm={clip}"))
    with tempfile.TemporaryDirectory() as out:
        try:
            summary = train(cfg, out, progress=False, log=lambda s: None)
            status, final = summary.status, summary.final_eval
        except Diverged:
            status, final = "diverged", {}
        records = [
            json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()
        ]
    norms = [r["grad_norm"] for r in records if "grad_norm" in r]
    return {
        "seed": seed,
        "status": status,
        "steps": len(norms),
        "correct_fraction": final.get("correct_fraction"),
        "grad_norms": norms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/exploding_gradients.yaml")
    parser.add_argument("--variant", help="a variant of the config, e.g. tiny (for the tests)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    results = {
        name: [one_run(args.config, args.variant, seed, clip) for seed in range(args.seeds)]
        for name, clip in CONDITIONS.items()
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results))

    print(f"Elman RNN, R = 2 x orthogonal, SGD, adding (Pascanu) T=50; {args.seeds} seeds")
    print(
        f"{'condition':<30}{'diverged':>9}{'steps run (median)':>20}{'max |g|':>11}"
        f"{'median |g|':>12}{'steps |g|>10':>14}{'test correct':>14}"
    )
    for name, runs in results.items():
        norms = [g for r in runs for g in r["grad_norms"]]
        finite = [g for g in norms if g == g and g != float("inf")]
        diverged = sum(r["status"] == "diverged" for r in runs)
        correct = [r["correct_fraction"] for r in runs if r["correct_fraction"] is not None]
        print(
            f"{name:<30}{diverged:>6}/{len(runs):<2}"
            f"{statistics.median(r['steps'] for r in runs):>20.0f}"
            f"{max(finite):>11.3g}{statistics.median(finite):>12.3g}"
            f"{sum(g > 10 for g in finite):>14}"
            f"{(statistics.median(correct) if correct else float('nan')):>14.3f}"
        )
    print("\nper seed: status, steps run, max |g|, test correct")
    for name, runs in results.items():
        cells = "; ".join(
            f"{r['seed']}: {r['status']}, {r['steps']}, {max(r['grad_norms'] or [0]):.3g}, "
            f"{'-' if r['correct_fraction'] is None else format(r['correct_fraction'], '.3f')}"
            for r in runs
        )
        print(f"{name:<30}{cells}")
    plot_curves(
        {f"{name}, seed 0": results[name][0]["grad_norms"] for name in CONDITIONS},
        args.out / "grad_norms.png",
        title="Global gradient norm per SGD step (before clipping), seed 0",
        xlabel="step",
        ylabel="‖g‖",
    )


if __name__ == "__main__":
    main()
