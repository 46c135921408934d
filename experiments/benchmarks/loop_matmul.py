"""The wall at small shapes: the rate of a matmul inside a sequential loop, XLA against PyTorch.

    python experiments/benchmarks/loop_matmul.py [--steps 100] [--batch 32] [--hidden 128]

The recurrent product of an LSTM step is `[B, H] × [H, 4H]`; the loop cannot batch it over
time. This times T such products, each feeding the next through `tanh` (the dependency the
recurrence has), as one jitted `lax.scan` and as a PyTorch loop (when torch is installed), and
the same FLOPs as one `[T·B, H] × [H, 4H]` product, round-robin in one process. Their ratio is
what a JAX LSTM can at best do at this shape on this CPU, whatever its gate arithmetic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from benchmark import interleaved_medians

from lstm_jax.training.host_memory import keep_freed_host_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    keep_freed_host_memory()
    T, B, H = args.steps, args.batch, args.hidden
    r = jax.random.normal(jax.random.key(0), (H, 4 * H)) / H**0.5
    h0 = jax.random.normal(jax.random.key(1), (B, H))
    xs = jax.random.normal(jax.random.key(2), (T * B, H))

    @jax.jit
    def loop(r, h):
        def step(h, _):
            z = h @ r
            return jnp.tanh(z[:, :H]), None  # the next step reads this step's product

        return jax.lax.scan(step, h, length=T)[0]

    one_product = jax.jit(lambda r, x: x @ r)
    fns = {
        "XLA: lax.scan of T products": lambda: loop(r, h0).block_until_ready(),
        "XLA: one [T·B, H] product": lambda: one_product(r, xs).block_until_ready(),
    }
    try:
        import torch

        rt, ht = torch.tensor(jax.device_get(r)), torch.tensor(jax.device_get(h0))

        def torch_loop():
            h = ht
            with torch.no_grad():
                for _ in range(T):
                    h = torch.tanh((h @ rt)[:, :H])
            return h

        fns["PyTorch: loop of T products"] = torch_loop
    except ImportError:
        pass
    seconds = interleaved_medians(fns, args.repeats)
    flops = 2 * T * B * H * 4 * H
    shapes = f"[{B}, {H}] x [{H}, {4 * H}]"
    print(f"T={T} products of {shapes} ({flops / 1e9:.3f} GFLOP), {jax.devices()}")
    for name, s in seconds.items():
        print(f"{name:<32}{s * 1e3:>9.3f} ms{flops / s / 1e9:>9.1f} GFLOP/s")


if __name__ == "__main__":
    main()
