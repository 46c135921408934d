"""Speed of one forward + backward pass of mean(h²) (gradient w.r.t. the params): lstm_jax's
fused and scan paths, FULL and TRUNCATED, against flax and, when installed, PyTorch.

    python experiments/benchmarks/benchmark.py [--cells lstm gru rnn] [--repeats 10]

float32, median wall time of `--repeats` calls after a warm-up, the implementations timed
round-robin, everything in one process.
`GEMM x` is the time over the GEMM limit: the matmul FLOPs the pass needs (`matmul_flops`) at
the f32 matmul rate measured here on a large square product. Then compile time of
`jit(grad(...))` against T. `pip install torch` (CPU build) adds the PyTorch columns; it is
never a dependency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

import lstm_jax
from lstm_jax.training.host_memory import keep_freed_host_memory

SHAPES = [(100, 32, 128, 128), (100, 64, 256, 256), (1000, 16, 64, 64), (50, 128, 512, 512)]
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
CELLS = {"lstm": lstm_jax.lstm, "gru": lstm_jax.gru, "rnn": lstm_jax.rnn}
FLAX_CELLS = {
    "lstm": ("OptimizedLSTMCell", nn.OptimizedLSTMCell),
    "gru": ("GRUCell", nn.GRUCell),
    "rnn": ("SimpleCell", nn.SimpleCell),
}


def matmul_flops(cell_name: str, shape: tuple[int, int, int, int], full: bool) -> int:
    """Matmul FLOPs of value_and_grad w.r.t. the params (`xs` needs no gradient):
    forward `X W` and `h R` (2·T·B·(I+H)·G·H), backward `dW = Xᵀ D`, `dR = H_prevᵀ D` (the same
    again) and, under FULL only, the recurrent `dh_{t-1} = D Rᵀ` (2·T·B·G·H·H): TRUNCATED cuts
    it, which bounds TRUNCATED / FULL below by 2(I+H) / (2(I+H) + H) at the GEMM limit."""
    T, B, I, H = shape
    per_gate_row = 2 * T * B * GATES[cell_name] * H
    return per_gate_row * (2 * (I + H) + (H if full else 0))


def write_record(
    path: Path, rows: list, args: argparse.Namespace, start: tuple[float, float]
) -> None:
    """A benchmark's JSON record at `path`: provenance (from a clean tree), wall and CPU time
    since `start` (`(perf_counter, process_time)`), the arguments and the measured rows."""
    from lstm_jax.training.provenance import record_provenance

    record = {
        "provenance": {
            **record_provenance(),
            "wall_s": time.perf_counter() - start[0],
            "cpu_s": time.process_time() - start[1],
        },
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": rows,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))


def interleaved_medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed round-robin (one call of each per round) so that
    the machine's drift over the measurement hits every column alike."""
    for fn in fns.values():
        fn()  # warm-up (and compile)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_peak(repeats: int) -> float:
    """Measured f32 GEMM rate (FLOP/s) on a 2048 x 2048 product."""
    n = 2048
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    seconds = interleaved_medians({"gemm": lambda: f(a).block_until_ready()}, repeats)["gemm"]
    return 2 * n**3 / seconds


def ours(cell_name, shape, gradient, impl, lib=lstm_jax, remat=False):
    """A jitted forward + backward of mean(h²); `lib` is lstm_jax, or an earlier revision of it
    (`compare_revisions.py`, which never asks for `remat`: older revisions lack it)."""
    T, B, I, H = shape
    cell = {"lstm": lib.lstm, "gru": lib.gru, "rnn": lib.rnn}[cell_name]()
    params = cell.init(jax.random.key(0), I, H)
    xs = jax.random.normal(jax.random.key(1), (T, B, I))
    options = {"remat": True} if remat else {}

    def loss(params):
        ys = lib.unroll(cell, params, xs, gradient=gradient, impl=impl, **options)[1]
        return jnp.mean(ys**2)

    grad = jax.jit(jax.value_and_grad(loss))
    return _with_temp(lambda: jax.block_until_ready(grad(params)), grad, params)


def _with_temp(call, grad, args):
    """`call`, with `call.temp_bytes()`: the compiled program's temporary buffer (`memory.py`)."""
    call.temp_bytes = lambda: grad.lower(args).compile().memory_analysis().temp_size_in_bytes
    return call


def flax_rnn(cell_name, shape):
    T, B, I, H = shape
    module = nn.RNN(FLAX_CELLS[cell_name][1](features=H), time_major=True)
    xs = jax.random.normal(jax.random.key(1), (T, B, I))
    variables = module.init(jax.random.key(0), xs)

    def loss(variables):
        return jnp.mean(module.apply(variables, xs) ** 2)

    grad = jax.jit(jax.value_and_grad(loss))
    return _with_temp(lambda: jax.block_until_ready(grad(variables)), grad, variables)


def torch_rnn(cell_name, shape):
    import torch

    T, B, I, H = shape
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell_name](I, H)
    xs = torch.randn(T, B, I)

    def step():
        module.zero_grad()
        ys, _ = module(xs)
        (ys**2).mean().backward()

    return step


def compile_seconds(cell_name, impl, steps: int) -> float:
    cell = CELLS[cell_name]()
    params = cell.init(jax.random.key(0), 16, 32)
    xs = jnp.zeros((steps, 8, 16))

    def loss(params):
        return jnp.mean(lstm_jax.unroll(cell, params, xs, impl=impl)[1] ** 2)

    start = time.perf_counter()
    jax.jit(jax.grad(loss)).lower(params).compile()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--malloc-default",
        action="store_true",
        help="leave glibc's malloc as it is (default: lstm_jax.training.host_memory's settings)",
    )
    args = parser.parse_args()
    kept = False if args.malloc_default else keep_freed_host_memory()
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    peak = matmul_peak(args.repeats)
    print(f"jax {jax.__version__}, devices {jax.devices()}, torch {torch_version}")
    print(f"freed host memory kept for reuse (training.host_memory): {kept}")
    print(f"measured f32 GEMM peak: {peak / 1e9:.1f} GFLOP/s (2048^3 product)")
    for cell_name in args.cells:
        flax_name = FLAX_CELLS[cell_name][0]
        print(
            f"\n{cell_name.upper()}: ms per forward+backward; "
            f"ratio = time / torch.nn.{cell_name.upper()}"
        )
        header = (
            f"{'T, B, I, H':<22}{'impl':<28}{'ms':>9}{'vs torch':>10}{'vs flax':>9}{'GEMM x':>8}"
        )
        print(header)
        for shape in SHAPES:
            gemm_full = matmul_flops(cell_name, shape, full=True) / peak
            gemm_truncated = matmul_flops(cell_name, shape, full=False) / peak
            runs = {
                "ours fused FULL": ours(cell_name, shape, "full", "fused"),
                "ours scan FULL": ours(cell_name, shape, "full", "scan"),
                "ours fused TRUNCATED": ours(cell_name, shape, "truncated", "fused"),
                "ours scan TRUNCATED": ours(cell_name, shape, "truncated", "scan"),
                f"flax {flax_name}": flax_rnn(cell_name, shape),
            }
            if torch_version:
                runs[f"torch nn.{cell_name.upper()}"] = torch_rnn(cell_name, shape)
            repeats = max(3, args.repeats // (4 if shape[-1] >= 512 else 1))
            seconds = interleaved_medians(runs, repeats)
            ref_torch = seconds.get(f"torch nn.{cell_name.upper()}")
            ref_flax = seconds[f"flax {flax_name}"]
            for name, s in seconds.items():
                gemm = gemm_truncated if "TRUNCATED" in name else gemm_full
                vs_torch = f"{s / ref_torch:>10.2f}" if ref_torch else f"{'-':>10}"
                print(
                    f"{shape!s:<22}{name:<28}{s * 1e3:>9.2f}{vs_torch}"
                    f"{s / ref_flax:>9.2f}{s / gemm:>8.2f}"
                )
            full, trunc = seconds["ours fused FULL"], seconds["ours fused TRUNCATED"]
            print(
                f"{'':<22}{'fused TRUNCATED / FULL':<28}{trunc / full:>9.2f}"
                f"   (bound at the GEMM limit: {gemm_truncated / gemm_full:.2f})"
            )
    print("\ncompile time of jit(grad(mean(h²))) vs T (LSTM, B=8, I=16, H=32), seconds")
    print(
        f"{'impl':<8}"
        + "".join(f"{'T=' + str(t):>10}" for t in (100, 1000, 10000))
        + f"{'1e4/1e2':>10}"
    )
    for impl in ("fused", "scan"):
        times = [compile_seconds("lstm", impl, t) for t in (100, 1000, 10000)]
        print(
            f"{impl:<8}" + "".join(f"{s:>10.3f}" for s in times) + f"{times[-1] / times[0]:>10.2f}"
        )


if __name__ == "__main__":
    main()
