"""Per-lag gradient norms of the sLSTM against the LSTM: at initialisation on random inputs, and
after training on parity (the nets of experiments/xlstm_formal_languages, when their runs are
there), full and truncated, with the sLSTM's truncated closed form checked on the way.

    python experiments/gradient_flow/slstm_vs_lstm.py [--seq-len 200] [--runs runs/formal_languages]
    python experiments/gradient_flow/slstm_vs_lstm.py --check

`L = Σ h_T` of the (first) layer; `‖∂L/∂h_k‖` and `‖∂L/∂c_k‖` by `diagnostics.per_lag_norms`
(float64: products of 200 forget factors underflow float32). For the sLSTM, `c` is its
stabilised cell state, so `‖∂L/∂c_k‖` is scaled by `exp(m_k)` against the plain one; the
truncated curve equals `diagnostics.slstm_truncated_path` (the product of the stabilised forget
factors) and the script records the largest relative gap. Writes slstm_per_lag_h.png,
slstm_per_lag_c.png and slstm_results.json beside this script (or in --out).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from gradient_flow import CHECK_TOLERANCES, batch_mean, remeasurer  # the script beside

import lstm_jax
from lstm_jax import diagnostics
from lstm_jax.reporting.check import run_check
from lstm_jax.reporting.plotting import plot_curves
from lstm_jax.training.load import load_run
from lstm_jax.training.provenance import record_provenance
from lstm_jax.training.tasks import ParityCheck

jax.config.update("jax_enable_x64", True)

# run directory in the formal-language sweep → curve name
TRAINED = {"LSTM_lr_0.01": "LSTM", "sLSTM_lr_0.01": "sLSTM"}
# `--check`: the curves of the trained nets are re-made only where their run directories are
NOT_HERE = ("per_lag_?.parity-trained: *",)


def curves(cell, params, xs, name: str, per_h: dict, per_c: dict) -> None:
    """Full and truncated per-lag norms of `cell` on `xs` into `per_h` / `per_c`."""
    for mode in ("full", "truncated"):
        norms = diagnostics.per_lag_norms(cell, params, xs, gradient=mode)
        if mode == "full":  # truncated: ∂L/∂h_k = 0 for k < T (h_k feeds only cut inputs)
            per_h[name] = batch_mean(norms.h)
        per_c[f"{name}, {mode}"] = batch_mean(norms.c)


def truncated_gap(cell, params, xs) -> float:
    """Largest relative gap between the truncated ‖∂L/∂c_k‖ and the sLSTM's closed form."""
    measured = diagnostics.per_lag_gradients(cell, params, xs, gradient="truncated")
    path = diagnostics.slstm_truncated_path(cell, params, xs)
    want = measured.h[-1] * path.c  # ∂L/∂h_T ⊙ o_T / n_T ⊙ ∏ f'_j
    scale = jnp.maximum(jnp.abs(want), 1e-300)
    return float(jnp.max(jnp.abs(measured.c[:-1] - want) / scale))


def trained_first_layer(run_dir: Path) -> tuple[object, object, dict] | None:
    """`(cell, first-layer params in float64, summary)` of a finished run, or None."""
    if not (run_dir / "summary.json").is_file():
        return None
    run = load_run(run_dir)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), run.params.rnn[0])
    return run.cell, params, json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=Path("runs/formal_languages/parity"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--check", action="store_true", help="recompute and compare")
    args = parser.parse_args()
    if args.check:
        remeasure = remeasurer(__file__, "slstm_results.json", ("per_lag_h", "per_lag_c"))
        path = args.out / "slstm_results.json"
        run_check(path, remeasure, CHECK_TOLERANCES, missing_ok=NOT_HERE)
    clock = (time.perf_counter(), time.process_time())
    source = record_provenance()

    key_x, key_p = jax.random.split(jax.random.key(args.seed))
    xs = jax.random.normal(key_x, (args.seq_len, args.batch, args.inputs), jnp.float64)
    setups = {
        "LSTM (forget bias 1)": lstm_jax.lstm(forget_bias=1.0),
        "sLSTM (σ forget, bias 3-6)": lstm_jax.slstm(heads=args.heads),
        "sLSTM (exp forget, bias 3-6)": lstm_jax.slstm(heads=args.heads, forget_gate="exp"),
    }
    per_h, per_c, gaps = {}, {}, {}
    for name, cell in setups.items():
        params = cell.init(key_p, args.inputs, args.hidden, jnp.float64)
        curves(cell, params, xs, f"init: {name}", per_h, per_c)
        if name.startswith("sLSTM"):
            gaps[f"init: {name}"] = truncated_gap(cell, params, xs)

    # After training: the first layer of the parity nets (seed 0) on test-length strings.
    trained = {}
    task = ParityCheck(test_min_length=args.seq_len, test_max_length=args.seq_len)
    strings = jnp.asarray(task.test_set(args.seed, args.batch).inputs, jnp.float64)
    for label, name in TRAINED.items():
        found = trained_first_layer(args.runs / f"{label}-seed0")
        if found is None:
            print(f"no finished run {args.runs / f'{label}-seed0'}: trained curves left out")
            continue
        cell, params, summary = found
        curves(cell, params, strings, f"parity-trained: {name}", per_h, per_c)
        trained[name] = summary["final_eval"]
        if name == "sLSTM":
            gaps[f"parity-trained: {name}"] = truncated_gap(cell, params, strings)

    out = args.out
    title = f"L = Σ h_T, T={args.seq_len}, H={args.hidden}"
    plot_curves(
        per_h,
        out / "slstm_per_lag_h.png",
        title=f"‖∂L/∂h_(T-lag)‖ (full), {title}",
        xlabel="lag",
        ylabel="batch-mean norm",
    )
    plot_curves(
        {k: [0.0, *v[1:]] for k, v in per_c.items()},  # lag 0: ∂L/∂c_T = 0 by definition
        out / "slstm_per_lag_c.png",
        title=f"‖∂L/∂c_(T-lag)‖, {title}",
        xlabel="lag",
        ylabel="batch-mean norm",
    )
    lags = [lag for lag in (1, 10, 50, 100, 199) if lag < args.seq_len]
    results = {
        "provenance": {
            **source,
            "wall_s": time.perf_counter() - clock[0],
            "cpu_s": time.process_time() - clock[1],
        },
        "args": {k: str(v) for k, v in vars(args).items() if k not in ("out", "check")},
        "per_lag_h": {n: {lag: c[lag] for lag in lags} for n, c in per_h.items()},
        "per_lag_c": {n: {lag: c[lag] for lag in lags} for n, c in per_c.items()},
        "truncated_c_vs_closed_form_max_relative_gap": gaps,
        "trained_nets_final_eval": trained,
    }
    (out / "slstm_results.json").write_text(json.dumps(results, indent=2))
    for key, table in (("‖∂L/∂h‖ full", results["per_lag_h"]), ("‖∂L/∂c‖", results["per_lag_c"])):
        print(f"{key} (batch mean), T={args.seq_len}")
        print(f"{'setup':<46}" + "".join(f"{'lag ' + str(lag):>11}" for lag in lags))
        for name, row in table.items():
            print(f"{name:<46}" + "".join(f"{row[lag]:>11.2e}" for lag in lags))
    for name, gap in gaps.items():
        print(f"{name}: truncated ‖∂L/∂c_k‖ vs closed form, max relative gap {gap:.1e}")


if __name__ == "__main__":
    main()
