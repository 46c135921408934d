"""Parallel vs sequential forms against sequence length: mLSTM (quadratic form) and minGRU /
minLSTM (associative scan) against the `lax.scan` of their steps, on this machine.

    python experiments/benchmarks/parallel_forms.py [--lengths 100 300 1000 3000 10000]
        [--batch 8] [--hidden 64] [--heads 4] [--repeats 5] [--max-quadratic 3000]

One forward + backward of `mean(h²)` (gradient with respect to the params), float32, the two
forms of one cell and length timed round-robin in one process (median of `--repeats` rounds),
ratio = parallel / scan (below 1: the parallel form is faster). The mLSTM's quadratic form
holds `[B, NH, T, T]` matrices, so it is skipped above `--max-quadratic` steps (the row says
so). Writes parallel_forms.json beside this script (or to --out).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from benchmark import interleaved_medians, write_record

import lstm_jax

CELLS = {
    "mlstm": lambda heads: lstm_jax.mlstm(heads=heads),
    "mingru": lambda heads: lstm_jax.mingru(),
    "minlstm": lambda heads: lstm_jax.minlstm(),
}


def pass_fn(cell, impl: str, steps: int, batch: int, hidden: int):
    """A jitted forward + backward of `mean(h²)` over `[T, B, H]` inputs, ready to call."""
    params = cell.init(jax.random.key(0), hidden, hidden)
    xs = jax.random.normal(jax.random.key(1), (steps, batch, hidden))

    @jax.jit
    def grad(params):
        return jax.grad(lambda p: jnp.mean(lstm_jax.unroll(cell, p, xs, impl=impl)[1] ** 2))(params)

    return lambda: jax.block_until_ready(grad(params))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 300, 1000, 3000, 10000])
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-quadratic", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    start, cpu_start = time.perf_counter(), time.process_time()
    rows = []
    print(f"jax {jax.__version__}, {jax.devices()}; B={args.batch}, H={args.hidden}")
    print(f"{'cell':8} {'T':>6} {'scan ms':>10} {'parallel ms':>12} {'parallel/scan':>14}")
    for name in args.cells:
        cell = CELLS[name](args.heads)
        for steps in args.lengths:
            if name == "mlstm" and steps > args.max_quadratic:
                print(f"{name:8} {steps:6d}  parallel skipped: [B, NH, T, T] over --max-quadratic")
                rows.append({"cell": name, "T": steps, "skipped": "max_quadratic"})
                continue
            fns = {
                impl: pass_fn(cell, impl, steps, args.batch, args.hidden)
                for impl in ("scan", "parallel")
            }
            med = interleaved_medians(fns, args.repeats)
            ratio = med["parallel"] / med["scan"]
            print(
                f"{name:8} {steps:6d} {1e3 * med['scan']:10.2f} {1e3 * med['parallel']:12.2f}"
                f" {ratio:14.2f}"
            )
            rows.append({"cell": name, "T": steps, **{f"{k}_s": v for k, v in med.items()}})
    write_record(args.out / "parallel_forms.json", rows, args, (start, cpu_start))


if __name__ == "__main__":
    main()
