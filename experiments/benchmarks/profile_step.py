"""Where the time of one LSTM forward + backward goes, per XLA CPU thunk (kernel).

    python experiments/benchmarks/profile_step.py [--shape 100 32 128 128] [--gradient full]
        [--impl fused] [--passes 5]

Traces `--passes` calls of `jit(value_and_grad(mean(h²)))` with the JAX profiler (XLA's CPU
thunks report themselves with `--xla_cpu_enable_xprof_traceme`, set here before JAX starts) and
prints, for each thunk, how often it runs per pass, its mean duration and its share of the
pass. Thunks that run T times per pass are the bodies of the time loops; the rest run once
(the hoisted matmuls, buffer set-up). Then the size of the program's temporary buffer and
the minor page faults one pass takes.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import resource
import tempfile
from pathlib import Path

# Must precede the first JAX import: XLA reads its flags once, when the backend starts.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
).strip()

import jax
import jax.numpy as jnp

import lstm_jax


def thunk_times(trace_dir: Path) -> dict[str, tuple[int, float]]:
    """`{name: (count, total µs)}` of the complete events in the newest perfetto trace."""
    newest = sorted(trace_dir.glob("plugins/profile/*/perfetto_trace.json.gz"))[-1]
    data = json.loads(gzip.decompress(newest.read_bytes()))
    events = data["traceEvents"] if isinstance(data, dict) else data
    totals: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])
    for event in events:
        if event.get("ph") == "X":
            totals[event["name"]][0] += 1
            totals[event["name"]][1] += event.get("dur", 0.0)
    return {name: (n, us) for name, (n, us) in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[100, 32, 128, 128])
    parser.add_argument("--gradient", default="full", choices=["full", "truncated"])
    parser.add_argument("--impl", default="fused", choices=["fused", "scan"])
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    T, B, I, H = args.shape
    cell = lstm_jax.lstm()
    params = cell.init(jax.random.key(0), I, H)
    xs = jax.random.normal(jax.random.key(1), (T, B, I))

    def loss(params):
        ys = lstm_jax.unroll(cell, params, xs, gradient=args.gradient, impl=args.impl)[1]
        return jnp.mean(ys**2)

    grad = jax.jit(jax.value_and_grad(loss))
    jax.block_until_ready(grad(params))  # compile outside the trace
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            for _ in range(args.passes):
                jax.block_until_ready(grad(params))
        times = thunk_times(Path(tmp))
    # A pass is the wall time of one call up to its result (the Python-side wait spans it).
    pass_us = next(us for name, (n, us) in times.items() if "block_until_ready" in name)
    pass_us /= args.passes
    # Kernels only: not the Python frames ($...), the runtime's spans or the loops around them.
    runtime = ("$", "Pjit", "Common", "ThunkExecutor", "while")
    kernels = {name: t for name, t in times.items() if not name.startswith(runtime)}
    print(
        f"LSTM {args.impl} {args.gradient.upper()}, (T, B, I, H) = {tuple(args.shape)}: "
        f"{pass_us / 1e3:.2f} ms per pass (mean of {args.passes})"
    )
    print(f"{'thunk':<48}{'per pass':>9}{'µs each':>10}{'ms/pass':>9}{'share':>7}")
    ranked = sorted(kernels.items(), key=lambda kv: -kv[1][1])
    for name, (n, us) in ranked[: args.top]:
        per_pass = n / args.passes
        print(
            f"{name[:47]:<48}{per_pass:>9.0f}{us / n:>10.2f}"
            f"{us / args.passes / 1e3:>9.2f}{us / args.passes / pass_us:>7.0%}"
        )
    in_loop = sum(us for n, us in kernels.values() if n >= T * args.passes)
    once = sum(us for n, us in kernels.values() if n < T * args.passes)
    print(
        f"\nthunks run every step: {in_loop / args.passes / 1e3:.2f} ms per pass "
        f"({in_loop / args.passes / pass_us:.0%}); once per pass: "
        f"{once / args.passes / 1e3:.2f} ms ({once / args.passes / pass_us:.0%})"
    )
    # XLA's CPU runtime allocates the program's temporary buffer on every call; where the
    # allocator hands back fresh pages, each is faulted in (and zeroed by the kernel) again.
    temp = grad.lower(params).compile().memory_analysis().temp_size_in_bytes
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(args.passes):
        jax.block_until_ready(grad(params))
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / args.passes
    print(
        f"temporary buffer {temp / 2**20:.1f} MiB; minor page faults per pass {faults:.0f} "
        f"({faults * resource.getpagesize() / 2**20:.1f} MiB first touched)"
    )


if __name__ == "__main__":
    main()
