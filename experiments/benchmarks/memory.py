"""Memory of one forward + backward of mean(h²) on CPU: peak memory of lstm_jax's fused and
scan paths against flax and PyTorch's `nn.LSTM` at the benchmark shapes; with `--faults`, the
page faults a pass takes with glibc's defaults and with `training.host_memory`'s settings; with
`--remat`, what `remat=True` costs and saves on long sequences.

    python experiments/benchmarks/memory.py [--cells lstm] [--faults] [--remat]

Each implementation runs in a fresh process (nothing left over from another): it builds the
params and inputs, makes one warm-up call (compiling), returns freed heap pages to the system
(`malloc_trim`), resets the process's resident-memory high-water mark (`/proc/self/clear_refs`)
and then makes one call. "peak MiB" = the high-water mark during that call minus the resident
memory just before it: what the pass itself needs on top of the params and inputs (outputs,
saved activations, workspace). For the JAX paths the program's temporary buffer as XLA plans
it (`memory_analysis()`) is printed beside it. Linux only (it reads `/proc/self/status`).

`--faults`: the fused LSTM FULL pass at the two large shapes, each setting (glibc's malloc as
it is / `keep_freed_host_memory()`) in its own fresh process, the two alternated for `--rounds`
rounds: median ms of 5 passes and minor page faults per pass (`getrusage`), each setting's
range over the rounds. `--remat`: LSTM (B, I, H) = (16, 64, 64) at T = 1,000 and 10,000, the
fused pass, the fused pass with `remat=True` and the scan with `remat=True`, timed round-robin
in one process (host memory kept), with XLA's temporary buffer of each.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

IMPLS = ["ours fused FULL", "ours scan FULL", "flax", "torch"]


def _kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1))


def measure(impl: str, cell_name: str, shape: tuple[int, int, int, int]) -> dict:
    """In this process: the pass's peak resident memory beyond what was resident before it."""
    from benchmark import flax_rnn, ours, torch_rnn

    temp = None
    if impl == "torch":
        call = torch_rnn(cell_name, shape)
    elif impl == "flax":
        call = flax_rnn(cell_name, shape)
    else:
        gradient = "full"
        call = ours(cell_name, shape, gradient, impl.split()[1])
    call()  # compile and warm up
    if impl != "torch":
        temp = call.temp_bytes()  # the compiled program's temporary buffer
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _kib("VmRSS")
    call()
    peak = _kib("VmHWM") - before
    return {"peak_bytes": peak * 1024, "xla_temp_bytes": temp}


FAULT_SHAPES = [(100, 64, 256, 256), (50, 128, 512, 512)]
REMAT_LENGTHS = (1000, 10000)


def faults(keep: bool, shape: tuple[int, int, int, int], passes: int = 5) -> dict:
    """In this (fresh) process: median seconds and minor page faults per fused LSTM FULL pass."""
    if keep:  # before JAX starts its threads, as the trainer does
        from lstm_jax.training.host_memory import keep_freed_host_memory

        assert keep_freed_host_memory(), "mallopt refused (not glibc?)"
    import resource

    from benchmark import ours

    call = ours("lstm", shape, "full", "fused")
    call()  # compile and warm up
    seconds, start = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(passes):
        t0 = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - t0)
    minflt = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
    return {"seconds": statistics.median(seconds), "faults": minflt / passes}


def faults_table(rounds: int) -> None:
    settings = {"glibc defaults": "default", "memory kept": "keep"}
    print(f"\nfused LSTM FULL: ms and minor page faults per pass, {rounds} fresh processes each")
    print(f"{'T, B, I, H':<22}" + "".join(f"{name:>34}" for name in settings))
    for shape in FAULT_SHAPES:
        got = {name: [] for name in settings}
        for _ in range(rounds):  # alternated, so the machine's drift hits both alike
            for name, flag in settings.items():
                child = [sys.executable, __file__, "--one-faults", flag, *map(str, shape)]
                done = subprocess.run(child, capture_output=True, text=True, check=True)
                got[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = f"{shape!s:<22}"
        for runs in got.values():
            ms = sorted(1e3 * r["seconds"] for r in runs)
            pf = sorted(r["faults"] for r in runs)
            row += f"{ms[0]:>9.1f}-{ms[-1]:<7.1f}ms {pf[0]:>7,.0f}-{pf[-1]:<7,.0f}"
        print(row)


def remat_table(repeats: int) -> None:
    from benchmark import interleaved_medians, ours

    from lstm_jax.training.host_memory import keep_freed_host_memory

    keep_freed_host_memory()
    print("\nLSTM, B = 16, I = H = 64: ms per forward + backward, XLA temporary buffer (MiB)")
    impls = {  # name: (impl, remat)
        "fused": ("fused", False),
        "fused, remat": ("fused", True),
        "scan, remat": ("scan", True),
    }
    print(f"{'T':<8}" + "".join(f"{name:>26}" for name in impls))
    for steps in REMAT_LENGTHS:
        calls = {
            name: ours("lstm", (steps, 16, 64, 64), "full", impl, remat=remat)
            for name, (impl, remat) in impls.items()
        }
        temps = {name: call.temp_bytes() for name, call in calls.items()}
        seconds = interleaved_medians(calls, repeats)
        print(
            f"{steps:<8,}"
            + "".join(f"{1e3 * seconds[n]:>14.1f} ms {temps[n] / 2**20:>7.1f}" for n in impls)
        )


def main() -> None:
    from benchmark import SHAPES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm"], choices=["lstm", "gru", "rnn"])
    parser.add_argument("--faults", action="store_true", help="the page-fault table as well")
    parser.add_argument("--remat", action="store_true", help="the remat table as well")
    parser.add_argument("--rounds", type=int, default=4, help="fresh processes per setting")
    parser.add_argument("--one", nargs=6, metavar="X", help=argparse.SUPPRESS)
    parser.add_argument("--one-faults", nargs=5, metavar="X", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child: IMPL (with '_' for spaces), CELL, T, B, I, H
        impl, cell_name, *shape = args.one
        print(json.dumps(measure(impl.replace("_", " "), cell_name, tuple(map(int, shape)))))
        return
    if args.one_faults:  # the child: keep|default, T, B, I, H
        flag, *shape = args.one_faults
        print(json.dumps(faults(flag == "keep", tuple(map(int, shape)))))
        return
    try:
        import torch  # noqa: F401

        impls = IMPLS
    except ImportError:
        impls = IMPLS[:-1]
    print(
        f"{'cell':<6}{'T, B, I, H':<22}{'impl':<18}{'peak MiB':>10}{'XLA temp MiB':>14}"
        f"{'vs torch':>10}"
    )
    for cell_name in args.cells:
        for shape in SHAPES:
            rows = {}
            for impl in impls:
                child = [sys.executable, __file__, "--one", impl.replace(" ", "_"), cell_name]
                done = subprocess.run(
                    [*child, *map(str, shape)], capture_output=True, text=True, check=True
                )
                rows[impl] = json.loads(done.stdout.strip().splitlines()[-1])
            ref = rows.get("torch", {}).get("peak_bytes")
            for impl, row in rows.items():
                temp = row["xla_temp_bytes"]
                print(
                    f"{cell_name:<6}{shape!s:<22}{impl:<18}{row['peak_bytes'] / 2**20:>10.1f}"
                    + (f"{temp / 2**20:>14.1f}" if temp is not None else f"{'-':>14}")
                    + (f"{row['peak_bytes'] / ref:>10.2f}" if ref else f"{'-':>10}")
                )
    if args.faults:
        faults_table(args.rounds)
    if args.remat:
        remat_table(7)


if __name__ == "__main__":
    main()
