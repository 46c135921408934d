"""Peak memory of one LSTM gradient computation as T grows: FULL BPTT, FULL with remat,
TRUNCATED BPTT (jax.grad) and the online eligibility-trace algorithm.

    python experiments/online_memory/benchmark.py [--lengths 1000 10000 100000]
    python experiments/online_memory/benchmark.py --check


Each (method, T) runs in a fresh subprocess, which reports its peak resident memory
(`resource.getrusage(...).ru_maxrss`) after one jit-compiled gradient computation, and XLA's
own count of the temporary buffers the compiled computation needs (arguments excluded).
B = 8, H = 64, I = 4, one output, squared error at every step, float32. The inputs and
targets themselves grow with T (`inputs_mib`, part of the RSS). Writes results.json beside
this script (or in --out) with its provenance; `--check` re-measures T = 1000 and compares:
XLA's temporary bytes exactly (they are a property of the compiled program), the peak RSS
within 15% (it depends on the allocator and the machine).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

from lstm_jax.reporting.check import EXACT, Remeasured, Tolerance, run_check
from lstm_jax.training.provenance import record_provenance

METHODS = ("full", "full_remat", "truncated", "online")
B, H, I, O = 8, 64, 4, 1


def worker(method: str, num_steps: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    import lstm_jax
    from lstm_jax.online import Readout
    from lstm_jax.online.traces import online_gradient

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
        "inputs_mib": (xs.nbytes + targets.nbytes) / 2**20,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "xla_temp_mib": stats.temp_size_in_bytes / 2**20,
        "xla_args_mib": stats.argument_size_in_bytes / 2**20,
    }


def measure(lengths: list[int]) -> dict[tuple[str, int], dict[str, float]]:
    """Every (method, T), each in a fresh process."""
    results = {}
    for method in METHODS:
        for num_steps in lengths:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", method, str(num_steps)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[method, num_steps] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def table(results: dict[tuple[str, int], dict[str, float]], lengths: list[int]) -> str:
    first = lengths[0]
    lines = [
        f"LSTM gradient, B={B}, H={H}, I={I}, float32; peak RSS of a fresh process (and net of "
        "the inputs, which grow with T) and XLA temp buffers",
        f"{'method':<12}{'T':>8}{'max RSS MiB':>13}{'vs T=' + str(first):>10}"
        f"{'net of inputs':>15}{'XLA temp MiB':>14}{'vs T=' + str(first):>10}",
    ]
    for method in METHODS:
        base = results[method, first]
        for num_steps in lengths:
            r = results[method, num_steps]
            net = (r["max_rss_mib"] - r["inputs_mib"]) / (base["max_rss_mib"] - base["inputs_mib"])
            lines.append(
                f"{method:<12}{num_steps:>8}{r['max_rss_mib']:>13.1f}"
                f"{r['max_rss_mib'] / base['max_rss_mib']:>10.3f}{net:>15.3f}"
                f"{r['xla_temp_mib']:>14.2f}"
                f"{r['xla_temp_mib'] / max(base['xla_temp_mib'], 1e-9):>10.2f}"
            )
    return "\n".join(lines)


CHECK_LENGTH = 1000
# XLA's temporary bytes are a property of the compiled program; the peak RSS depends on the
# allocator and the machine
CHECK_TOLERANCES = {"*.xla_temp_mib": EXACT, "*.max_rss_mib": Tolerance(rel=0.15)}


def remeasure(record: dict) -> Remeasured:
    """Every method at T = `CHECK_LENGTH`, recorded and now (to the record's 4 decimals)."""
    recorded = {f"{r['method']} T={r['T']}": r for r in record["rows"] if r["T"] == CHECK_LENGTH}
    now = {
        f"{method} T={num_steps}": {k: round(v, 4) for k, v in r.items()}
        for (method, num_steps), r in measure([CHECK_LENGTH]).items()
    }
    return Remeasured(f"peak memory at T={CHECK_LENGTH}", recorded, now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--check", action="store_true", help="re-measure T=1000; exit 1 if off")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return
    if args.check:
        run_check(args.out / "results.json", remeasure, CHECK_TOLERANCES)
    source = record_provenance("writing results.json")
    results = measure(args.lengths)
    print(table(results, args.lengths))
    rows = [
        {"method": m, "T": t, **{k: round(v, 4) for k, v in r.items()}}
        for (m, t), r in results.items()
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"provenance": source, "B": B, "H": H, "I": I, "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
