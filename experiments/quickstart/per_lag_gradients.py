"""How far back does the error reach? Per-lag input-gradient norms, full vs truncated.

For a loss on the last output only, L = Σ_j h_T[j], prints ‖∂L/∂x_{T-lag}‖ (mean over the
batch) for several lags, for an Elman RNN, an LSTM (forget-gate bias 0 and 1) and a GRU, each
under full BPTT and the truncated gradient of `lstm_jax/modes.py`.

    python experiments/quickstart/per_lag_gradients.py [--seq-len 100] [--hidden 32]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

import lstm_jax


def per_lag_norms(cell, params, xs, gradient):
    """`[T]` norms ‖∂L/∂x_t‖ averaged over the batch, for L = Σ h_T."""

    def loss(xs):
        _, ys = lstm_jax.unroll(cell, params, xs, gradient=gradient)
        return jnp.sum(ys[-1])

    grads = jax.grad(loss)(xs)  # [T, B, I]
    return jnp.mean(jnp.linalg.norm(grads, axis=-1), axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    key_x, key_p = jax.random.split(jax.random.key(args.seed))
    inputs = 8
    xs = jax.random.normal(key_x, (args.seq_len, args.batch, inputs))
    cells = {
        "Elman RNN": lstm_jax.rnn(),
        "LSTM, forget bias 0": lstm_jax.lstm(forget_bias=0.0),
        "LSTM, forget bias 1": lstm_jax.lstm(forget_bias=1.0),
        "GRU": lstm_jax.gru(),
    }
    lags = [lag for lag in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500) if lag < args.seq_len]
    print(f"‖∂L/∂x_(T-lag)‖, L = sum(h_T); T={args.seq_len}, H={args.hidden}, B={args.batch}")
    print(f"{'cell':<22}{'gradient':<11}" + "".join(f"{'lag ' + str(lag):>11}" for lag in lags))
    for name, cell in cells.items():
        params = cell.init(key_p, inputs, args.hidden)
        for mode in ("full", "truncated"):
            norms = per_lag_norms(cell, params, xs, mode)
            row = "".join(f"{float(norms[args.seq_len - 1 - lag]):>11.2e}" for lag in lags)
            print(f"{name:<22}{mode:<11}{row}")


if __name__ == "__main__":
    main()
