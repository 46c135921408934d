"""Peak memory of one forward + backward of mean(h²) on CPU: lstm_jax's fused and scan paths
against flax and PyTorch's `nn.LSTM`, at the benchmark shapes.

    python experiments/benchmarks/memory.py [--cells lstm] [--shapes all]

Each implementation runs in a fresh process (nothing left over from another): it builds the
params and inputs, makes one warm-up call (compiling), returns freed heap pages to the system
(`malloc_trim`), resets the process's resident-memory high-water mark (`/proc/self/clear_refs`)
and then makes one call. "peak MiB" = the high-water mark during that call minus the resident
memory just before it: what the pass itself needs on top of the params and inputs (outputs,
saved activations, workspace). For the JAX paths the program's temporary buffer as XLA plans
it (`memory_analysis()`) is printed beside it. Linux only (it reads `/proc/self/status`).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import re
import subprocess
import sys
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


def main() -> None:
    from benchmark import SHAPES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm"], choices=["lstm", "gru", "rnn"])
    parser.add_argument("--one", nargs=6, metavar="X", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child: IMPL (with '_' for spaces), CELL, T, B, I, H
        impl, cell_name, *shape = args.one
        print(json.dumps(measure(impl.replace("_", " "), cell_name, tuple(map(int, shape)))))
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


if __name__ == "__main__":
    main()
