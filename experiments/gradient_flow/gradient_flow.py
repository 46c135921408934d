"""Per-lag gradient norms at initialisation: Elman RNN, LSTM (forget bias 0 and 1, full and
truncated) and GRU on random inputs, plus the LSTM's A/B/C/D terms and cell-state spectra.

    python experiments/gradient_flow/gradient_flow.py [--seq-len 200] [--out DIR]

Writes per_lag_h.png, per_lag_c.png, jacobian_terms.png, forget_product.png and results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp

import lstm_jax
from lstm_jax import diagnostics
from lstm_jax.cells.lstm import trace_parts
from lstm_jax.reporting.check import Remeasured, Tolerance, run_check
from lstm_jax.reporting.plotting import plot_curves
from lstm_jax.training.provenance import ALLOW_DIRTY, record_provenance

jax.config.update("jax_enable_x64", True)  # products of 200 forget gates underflow float32


def batch_mean(norms: jax.Array, reverse: bool = True) -> list[float]:
    """Batch-mean norm per lag (index 0 = lag 0, i.e. the last step)."""
    mean = jnp.mean(norms, axis=1)
    return (mean[::-1] if reverse else mean).tolist()


# float64 and the same program: a re-run agrees to rounding
CHECK_TOLERANCES = {"*": Tolerance(rel=1e-9)}
CHECKED = ("per_lag_h", "per_lag_c", "term_means_over_time")


def rerun_script(script: str, name: str, record: dict) -> dict:
    """The record `name` that `script` writes when re-run with the arguments `record` holds
    (`--out` a temporary directory)."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in record["args"].items()]
    with tempfile.TemporaryDirectory() as tmp:
        # the re-run's record is a temporary file, not a committed one: any tree may write it
        env = {**os.environ, ALLOW_DIRTY: "1"}
        subprocess.run([sys.executable, script, *flags, "--out", tmp], check=True, env=env)
        return json.loads((Path(tmp) / name).read_text())


def remeasurer(script: str, name: str, keys: tuple[str, ...]) -> Callable[[dict], Remeasured]:
    """`--check`'s re-measurement of `script`'s record `name`: the script re-run as the record
    says, its `keys` recorded and now."""

    def remeasure(record: dict) -> Remeasured:
        now = rerun_script(script, name, record)
        return Remeasured(name, {k: record[k] for k in keys}, {k: now[k] for k in keys})

    return remeasure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument(
        "--check",
        action="store_true",
        help="recompute --out/results.json and compare; exit 1 if not",
    )
    args = parser.parse_args()
    if args.check:
        remeasure = remeasurer(__file__, "results.json", CHECKED)
        run_check(args.out / "results.json", remeasure, CHECK_TOLERANCES)
    clock = (time.perf_counter(), time.process_time())
    source = record_provenance()  # before this run writes its own (tracked) outputs

    key_x, key_p = jax.random.split(jax.random.key(args.seed))
    xs = jax.random.normal(key_x, (args.seq_len, args.batch, args.inputs), jnp.float64)
    setups = {
        "Elman RNN": (lstm_jax.rnn(), "full"),
        "GRU": (lstm_jax.gru(), "full"),
        "LSTM bias 0": (lstm_jax.lstm(forget_bias=0.0), "full"),
        "LSTM bias 1": (lstm_jax.lstm(forget_bias=1.0), "full"),
        "LSTM bias 1, truncated": (lstm_jax.lstm(forget_bias=1.0), "truncated"),
        "LSTM chrono": (lstm_jax.lstm(chrono=args.seq_len), "full"),
        "LSTM chrono, truncated": (lstm_jax.lstm(chrono=args.seq_len), "truncated"),
    }
    per_h, per_c = {}, {}
    for name, (cell, mode) in setups.items():
        params = cell.init(key_p, args.inputs, args.hidden, jnp.float64)
        norms = diagnostics.per_lag_norms(cell, params, xs, gradient=mode)
        h = norms.h if isinstance(norms, lstm_jax.LSTMCarry) else norms
        if mode == "full":  # truncated: ∂L/∂h_k = 0 for k < T (h_k only feeds cut gate inputs)
            per_h[name] = batch_mean(h)
        if isinstance(norms, lstm_jax.LSTMCarry):
            per_c[name] = batch_mean(norms.c)  # lag 0 is zero by definition: left out of the plot

    # The seeds' claim: under truncation the error on c_k is ∂L/∂h_T ⊙ o_T ⊙ k'(c_T) ⊙ ∏ f_j.
    cell = lstm_jax.lstm(forget_bias=1.0)
    params = cell.init(key_p, args.inputs, args.hidden, jnp.float64)
    zero = cell.initial_carry((args.batch,), args.hidden, jnp.float64)
    steps = trace_parts(cell, params, xs, zero)
    fs = steps.f  # [T, B, H], fs[j] = f at step j + 1
    head = steps.o[-1] * (1 - steps.kc[-1] ** 2)  # ∂L/∂h_T ⊙ o_T ⊙ k'(c_T), with ∂L/∂h_T = 1
    suffix = jnp.cumprod(fs[::-1], axis=0)[::-1]  # suffix[k] = ∏_{j=k+1..T} f_j, k = 0..T-1
    predicted = jnp.linalg.norm(head * suffix, axis=-1)  # [T, B]
    measured = diagnostics.per_lag_norms(cell, params, xs, gradient="truncated").c[:-1]
    max_rel_gap = float(jnp.max(jnp.abs(measured - predicted) / predicted))
    # Curves indexed by lag, lag 0 (c_T, zero by definition) left out of the log plots.
    forget = {
        "measured ‖∂L/∂c_k‖ (truncated)": [0.0, *batch_mean(measured)],
        "closed form ‖∂L/∂h_T ⊙ o_T ⊙ k'(c_T) ⊙ ∏ f_j‖": [0.0, *batch_mean(predicted)],
        "mean forget-gate product ∏ f_j": [0.0, *jnp.mean(suffix, axis=(1, 2))[::-1].tolist()],
    }

    terms = diagnostics.jacobian_term_norms(cell, params, xs)
    term_means = {f"‖{n}_t‖₂": v for n, v in diagnostics.summary(terms).items() if n != "P"}
    sv = diagnostics.cell_state_product_singular_values(cell, params, xs[:, :4])  # [T, 4, H]
    spectra = {
        "largest singular value of ∂c_T/∂c_k (full)": [
            0.0,
            *jnp.mean(sv[..., 0], 1)[::-1].tolist(),
        ],
        "smallest singular value (full)": [0.0, *jnp.mean(sv[..., -1], 1)[::-1].tolist()],
    }

    out = args.out
    plot_curves(
        per_h,
        out / "per_lag_h.png",
        title=f"‖∂L/∂h_(T-lag)‖, L = Σ h_T, T={args.seq_len}, H={args.hidden}",
        xlabel="lag",
        ylabel="batch-mean norm",
    )
    plot_curves(
        per_c,
        out / "per_lag_c.png",
        title="LSTM: ‖∂L/∂c_(T-lag)‖ (error carried by the cell state)",
        xlabel="lag",
        ylabel="batch-mean norm",
    )
    plot_curves(
        {**forget, **spectra},
        out / "forget_product.png",
        title="Truncated LSTM (bias 1): the cell-state error is the forget-gate product",
        xlabel="lag",
        ylabel="value",
    )
    plot_curves(
        term_means,
        out / "jacobian_terms.png",
        title="LSTM (bias 1): spectral norms of the terms of ∂c_t/∂c_{t-1}",
        xlabel="step t",
        ylabel="batch-mean norm",
    )

    lags = [lag for lag in (1, 10, 50, 100, 199) if lag < args.seq_len]
    table = {name: {lag: curve[lag] for lag in lags} for name, curve in per_h.items()}
    results = {
        "provenance": {
            **source,
            "wall_s": time.perf_counter() - clock[0],
            "cpu_s": time.process_time() - clock[1],
        },
        "args": {k: str(v) for k, v in vars(args).items() if k not in ("out", "check")},
        "per_lag_h": table,
        "per_lag_c": {name: {lag: curve[lag] for lag in lags} for name, curve in per_c.items()},
        "truncated_c_vs_closed_form_max_relative_gap": max_rel_gap,
        "term_means_over_time": {name: sum(v[1:]) / len(v[1:]) for name, v in term_means.items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"‖∂L/∂h_(T-lag)‖ (batch mean), T={args.seq_len}")
    print(f"{'setup':<36}" + "".join(f"{'lag ' + str(lag):>11}" for lag in lags))
    for name, row in table.items():
        print(f"{name:<36}" + "".join(f"{row[lag]:>11.2e}" for lag in lags))
    print(f"truncated ‖∂L/∂c_k‖ vs forget-gate closed form: max relative gap {max_rel_gap:.1e}")
    for name, value in results["term_means_over_time"].items():
        print(f"time-mean {name}: {value:.3f}")


if __name__ == "__main__":
    main()
