"""Eager (un-jitted) calls of `unroll` and of `jax.grad` of it: the fused path (the default,
`impl="auto"`) against the scan path, in one process.

    python experiments/benchmarks/eager.py [--cells lstm gru rnn] [--repeats 50]

What a user who never writes `jax.jit` pays per call: `unroll(cell, params, xs)` and
`jax.grad(lambda p: mean(unroll(cell, p, xs)[1] ** 2))(params)`, called as they are. Each path
is compiled once per static configuration (its first call, shown as "first s", includes the
compile), so later calls only dispatch and run. float32; the four calls of a shape timed
round-robin (one call of each per round, median of `--repeats` rounds after one warm-up), so the
machine's drift hits every column alike; ratio = fused / scan (issue 29's target: a second
eager `unroll` call at most 3x the scan path's). Writes eager.json beside this script (or to
--out).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
from benchmark import CELLS, interleaved_medians, write_record

import lstm_jax

SHAPES = [(50, 4, 32, 32), (100, 32, 128, 128)]  # (T, B, I, H)
TARGET = 3.0  # a second eager unroll call of the default path, at most this x the scan path's


def eager_calls(cell, shape: tuple[int, int, int, int]) -> dict[str, Callable[[], None]]:
    """`{"<call> <impl>": f}`: eager `unroll` and `jax.grad` of it, for the scan path and the
    default (fused) path, each blocking until its result is ready."""
    steps, batch, inputs, hidden = shape
    params = cell.init(jax.random.key(0), inputs, hidden)
    xs = jax.random.normal(jax.random.key(1), (steps, batch, inputs))
    calls = {}
    for impl in ("scan", "auto"):
        name = "fused" if impl == "auto" else impl

        def run(impl=impl):
            jax.block_until_ready(lstm_jax.unroll(cell, params, xs, impl=impl))

        def grad(impl=impl):
            def loss(p):
                return jnp.mean(lstm_jax.unroll(cell, p, xs, impl=impl)[1] ** 2)

            jax.block_until_ready(jax.grad(loss)(params))

        calls[f"unroll {name}"], calls[f"grad {name}"] = run, grad
    return calls


def first_call_seconds(calls: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Wall seconds of each call's first run (trace and compile included)."""
    seconds = {}
    for name, fn in calls.items():
        start = time.perf_counter()
        fn()
        seconds[name] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm"], choices=list(CELLS))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    start, cpu_start = time.perf_counter(), time.process_time()
    print(f"jax {jax.__version__}, {jax.devices()}; eager calls, float32")
    print(
        f"{'cell':5} {'T, B, I, H':20} {'call':7} {'scan ms':>9} {'fused ms':>9}"
        f" {'fused/scan':>11} {'first s (scan, fused)':>22}"
    )
    rows = []
    for cell_name in args.cells:
        cell = CELLS[cell_name]()
        for shape in SHAPES:
            calls = eager_calls(cell, shape)
            first = first_call_seconds(calls)
            med = interleaved_medians(calls, args.repeats)
            for call in ("unroll", "grad"):
                scan, fused = med[f"{call} scan"], med[f"{call} fused"]
                print(
                    f"{cell_name:5} {shape!s:20} {call:7} {1e3 * scan:9.3f} {1e3 * fused:9.3f}"
                    f" {fused / scan:11.2f} {first[f'{call} scan']:10.2f},"
                    f" {first[f'{call} fused']:10.2f}"
                )
                rows.append(
                    {
                        "cell": cell_name,
                        "shape": list(shape),
                        "call": call,
                        "scan_s": scan,
                        "fused_s": fused,
                        "ratio": fused / scan,
                        "first_scan_s": first[f"{call} scan"],
                        "first_fused_s": first[f"{call} fused"],
                    }
                )
    unroll_ratios = [r["ratio"] for r in rows if r["call"] == "unroll"]
    worst = max(unroll_ratios)
    verdict = "met" if worst <= TARGET else "NOT met"
    print(f"eager unroll fused/scan at most {worst:.2f} (target <= {TARGET}): {verdict}")
    write_record(args.out / "eager.json", rows, args, (start, cpu_start))


if __name__ == "__main__":
    main()
