"""Peak memory of one LSTM gradient computation as T grows: FULL BPTT, FULL with remat,
TRUNCATED BPTT (jax.grad) and the online eligibility-trace algorithm.

    python experiments/online_memory/benchmark.py [--lengths 1000 10000 100000]

Each (method, T) runs in a fresh subprocess, which reports its peak resident memory
(`resource.getrusage(...).ru_maxrss`) after one jit-compiled gradient computation, and XLA's
own count of the temporary buffers the compiled computation needs (arguments excluded).
B = 8, H = 64, I = 4, one output, squared error at every step, float32.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

METHODS = ("full", "full_remat", "truncated", "online")
B, H, I, O = 8, 64, 4, 1


def worker(method: str, num_steps: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    import lstm_jax
    from lstm_jax.driver import Readout
    from lstm_jax.gradients.online import online_gradient

    cell = lstm_jax.lstm()
    k_p, k_r, k_x, k_y = jax.random.split(jax.random.key(0), 4)
    params = cell.init(k_p, I, H)
    readout = Readout(w=jax.random.normal(k_r, (H, O)) / H**0.5, b=jnp.zeros(O))
    xs = jax.random.normal(k_x, (num_steps, B, I))
    targets = jax.random.normal(k_y, (num_steps, B, O))

    def squared_error(prediction, target):
        return 0.5 * jnp.sum((prediction - target) ** 2)

    if method == "online":

        def grad_fn(params, readout, xs, targets):
            g = online_gradient(cell, params, readout, xs, targets, squared_error)
            return g.params, g.readout
    else:
        mode = "truncated" if method == "truncated" else "full"
        remat = method == "full_remat"

        def loss(params, readout, xs, targets):
            _, hs = lstm_jax.unroll(cell, params, xs, gradient=mode, remat=remat)
            return jnp.sum(jax.vmap(squared_error)(hs @ readout.w + readout.b, targets))

        grad_fn = jax.grad(loss, argnums=(0, 1))

    compiled = jax.jit(grad_fn).lower(params, readout, xs, targets).compile()
    stats = compiled.memory_analysis()
    jax.block_until_ready(compiled(params, readout, xs, targets))
    return {
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "xla_temp_mib": stats.temp_size_in_bytes / 2**20,
        "xla_args_mib": stats.argument_size_in_bytes / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return
    results = {}
    for method in METHODS:
        for num_steps in args.lengths:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", method, str(num_steps)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[method, num_steps] = json.loads(out.stdout.strip().splitlines()[-1])
    first = args.lengths[0]
    print(
        f"LSTM gradient, B={B}, H={H}, I={I}, float32; "
        "peak RSS of a fresh process and XLA temp buffers"
    )
    print(
        f"{'method':<12}{'T':>8}{'max RSS MiB':>13}{'vs T=' + str(first):>10}"
        f"{'XLA temp MiB':>14}{'vs T=' + str(first):>10}"
    )
    for method in METHODS:
        for num_steps in args.lengths:
            r, base = results[method, num_steps], results[method, first]
            print(
                f"{method:<12}{num_steps:>8}{r['max_rss_mib']:>13.1f}"
                f"{r['max_rss_mib'] / base['max_rss_mib']:>10.2f}"
                f"{r['xla_temp_mib']:>14.2f}"
                f"{r['xla_temp_mib'] / max(base['xla_temp_mib'], 1e-9):>10.2f}"
            )


if __name__ == "__main__":
    main()
