"""One forward + backward of mean(h²) on a GPU: lstm_jax against cuDNN (PyTorch's `nn.LSTM` /
`nn.GRU` and JAX's own `jax.experimental.rnn.lstm`) and flax, in float32 and bfloat16, with
the peak memory of each.

    python experiments/benchmarks/gpu_benchmark.py [--cells lstm gru] [--repeats 20]
        [--out results.json] [--smoke]

Runs on JAX's default backend (and PyTorch on CUDA when it has one). Time: the median of
`--repeats` calls after a warm-up, the implementations of a shape timed round-robin, every
call synchronised (`block_until_ready`, `torch.cuda.synchronize`). Memory beyond the params and
inputs: for JAX the compiled program's temporaries plus outputs (`memory_analysis()`, what XLA
reserves), for PyTorch `max_memory_allocated()` during the call minus the memory held before it.
bfloat16: params and inputs in bfloat16, the matmuls as XLA (or cuDNN, PyTorch) runs them for
bfloat16 operands, the loss taken in float32. `--smoke`: tiny shapes, 2 repeats, any backend:
what `gpu_check.sh` runs on a machine without a GPU, to test the code.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from functools import partial
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from benchmark import FLAX_CELLS, SHAPES, interleaved_medians

import lstm_jax

GPU_SHAPES = [*SHAPES, (100, 256, 512, 512), (1000, 64, 1024, 1024)]
SMOKE_SHAPES = [(8, 4, 8, 8), (16, 2, 4, 8)]
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _timed_jax(loss, args):
    """`(call, peak bytes)`: a jitted value_and_grad w.r.t. the first argument."""
    grad = jax.jit(jax.value_and_grad(loss))
    compiled = grad.lower(*args).compile()
    memory = compiled.memory_analysis()
    peak = None
    if memory is not None:
        peak = int(memory.temp_size_in_bytes + memory.output_size_in_bytes)
    return (lambda: jax.block_until_ready(compiled(*args))), peak


def ours(cell_name, shape, dtype, gradient, impl):
    T, B, I, H = shape
    cell = {"lstm": lstm_jax.lstm, "gru": lstm_jax.gru}[cell_name]()
    params = cell.init(jax.random.key(0), I, H, dtype)
    xs = jax.random.normal(jax.random.key(1), (T, B, I), dtype)

    def loss(params, xs):
        ys = lstm_jax.unroll(cell, params, xs, gradient=gradient, impl=impl)[1]
        return jnp.mean(ys.astype(jnp.float32) ** 2)

    return _timed_jax(loss, (params, xs))


def flax_rnn(cell_name, shape, dtype):
    T, B, I, H = shape
    cell = FLAX_CELLS[cell_name][1](features=H, dtype=dtype)
    module = nn.RNN(cell, time_major=True)
    xs = jax.random.normal(jax.random.key(1), (T, B, I), dtype)
    # initialised in float32 (the orthogonal init's QR has no bfloat16 kernel), then cast
    variables = jax.tree.map(lambda v: v.astype(dtype), module.init(jax.random.key(0), xs))

    def loss(variables, xs):
        return jnp.mean(module.apply(variables, xs).astype(jnp.float32) ** 2)

    return _timed_jax(loss, (variables, xs))


def jax_cudnn_lstm(shape, dtype):
    """JAX's cuDNN LSTM (`jax.experimental.rnn`; GPU only), batch-major as it requires."""
    from jax.experimental import rnn

    T, B, I, H = shape
    weights = rnn.init_lstm_weight(jax.random.key(0), I, H, 1, False).astype(dtype)
    xs = jax.random.normal(jax.random.key(1), (B, T, I), dtype)
    zeros = jnp.zeros((1, B, H), dtype)
    lengths = jnp.full((B,), T, jnp.int32)

    def loss(weights, xs):
        ys, _, _ = rnn.lstm(xs, zeros, zeros, weights, lengths, I, H, 1, 0.0, False)
        return jnp.mean(ys.astype(jnp.float32) ** 2)

    return _timed_jax(loss, (weights, xs))


def torch_rnn(cell_name, shape, dtype_name):
    """PyTorch's fused RNN (cuDNN on CUDA); `(call, peak bytes)`."""
    import torch

    T, B, I, H = shape
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, dtype_name)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell_name](I, H).to(device, dtype)
    xs = torch.randn(T, B, I, device=device, dtype=dtype)

    def step():
        module.zero_grad(set_to_none=True)
        ys, _ = module(xs)
        (ys.float() ** 2).mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    peak = None
    if device == "cuda":
        step()
        module.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        peak = torch.cuda.max_memory_allocated() - before
    return step, peak


def _torch_version():
    try:
        import torch
    except ImportError:
        return None, False
    return torch.__version__, torch.cuda.is_available()


def run(cells, shapes, repeats, on_gpu, torch_version) -> list[dict]:
    rows = []
    for cell_name in cells:
        for dtype_name, dtype in DTYPES.items():
            print(f"\n{cell_name.upper()} {dtype_name}: ms per forward+backward, peak MiB")
            print(
                f"{'T, B, I, H':<24}{'impl':<30}{'ms':>9}{'vs cuDNN':>10}{'vs flax':>9}{'MiB':>9}"
            )
            for shape in shapes:
                runs = {
                    "ours default FULL": partial(ours, cell_name, shape, dtype, "full", "auto"),
                    "ours scan FULL": partial(ours, cell_name, shape, dtype, "full", "scan"),
                    "ours default TRUNCATED": partial(
                        ours, cell_name, shape, dtype, "truncated", "auto"
                    ),
                    "flax": partial(flax_rnn, cell_name, shape, dtype),
                }
                if on_gpu and cell_name == "lstm":
                    runs["jax cuDNN (experimental.rnn)"] = partial(jax_cudnn_lstm, shape, dtype)
                if torch_version:
                    runs["torch nn." + cell_name.upper()] = partial(
                        torch_rnn, cell_name, shape, dtype_name
                    )
                calls, peaks = {}, {}
                for name, make in runs.items():
                    try:
                        calls[name], peaks[name] = make()
                    except Exception as err:  # an unsupported dtype or shape: say so, go on
                        print(
                            f"{shape!s:<24}{name:<30}  unsupported: {type(err).__name__}: "
                            f"{str(err).splitlines()[0][:80]}"
                        )
                seconds = interleaved_medians(calls, repeats)
                ref = seconds.get("torch nn." + cell_name.upper())
                flax_s = seconds.get("flax")
                for name, s in seconds.items():
                    peak = peaks.get(name)
                    print(
                        f"{shape!s:<24}{name:<30}{s * 1e3:>9.3f}"
                        + (f"{s / ref:>10.2f}" if ref else f"{'-':>10}")
                        + (f"{s / flax_s:>9.2f}" if flax_s else f"{'-':>9}")
                        + (f"{peak / 2**20:>9.1f}" if peak is not None else f"{'-':>9}")
                    )
                    rows.append(
                        {
                            "cell": cell_name,
                            "dtype": dtype_name,
                            "shape": shape,
                            "impl": name,
                            "ms": s * 1e3,
                            "vs_torch": s / ref if ref else None,
                            "peak_bytes": peak,
                        }
                    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, any backend")
    args = parser.parse_args()
    torch_version, torch_cuda = _torch_version()
    on_gpu = jax.default_backend() == "gpu"
    device = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {device.device_kind} ({jax.default_backend()}), torch "
        f"{torch_version} (CUDA: {torch_cuda}), {platform.node()}"
    )
    if not on_gpu and not args.smoke:
        sys.exit("no GPU backend in JAX: run on a GPU machine, or pass --smoke to test the code")
    shapes = SMOKE_SHAPES if args.smoke else GPU_SHAPES
    rows = run(args.cells, shapes, 2 if args.smoke else args.repeats, on_gpu, torch_version)
    if args.out:
        record = {
            "device": device.device_kind,
            "backend": jax.default_backend(),
            "jax": jax.__version__,
            "torch": torch_version,
            "rows": rows,
        }
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
