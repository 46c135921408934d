"""Windowed truncated BPTT: equal to FULL when the window covers the sequence, and otherwise
the sum of independent per-window gradients with the forward state flowing across windows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, host, normal, random_carry, random_params

import lstm_jax

T, B, I, H = 10, 2, 3, 4
CASES = [("lstm", lstm_jax.lstm("vanilla")), ("gru", lstm_jax.gru()), ("rnn", lstm_jax.rnn())]
IDS = [c[0] for c in CASES]


def _setup(cell, seed=0):
    k_p, k_c, k_x, k_t = jax.random.split(jax.random.key(seed), 4)
    return (
        random_params(cell, k_p, I, H),
        random_carry(cell, k_c, (B,), H),
        normal(k_x, (T, B, I)),
        normal(k_t, (T, B, H)),
    )


def _loss(cell, params, carry, xs, target, **kw):
    """Σ_t ⟨target_t, sin y_t⟩ plus a term on the final carry (it belongs to the last window)."""
    final, ys = lstm_jax.unroll(cell, params, xs, carry, **kw)
    return jnp.sum(target * jnp.sin(ys)) + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(final))


def _close(a, b, what=""):
    assert_close(a, b, rtol=1e-10, atol=1e-12, what=what)


@pytest.mark.parametrize(("kind", "cell"), CASES, ids=IDS)
def test_window_covering_the_sequence_equals_the_unwindowed_gradient(x64, kind, cell):
    """In both gradient modes (one compiled program: they share the forward pass)."""
    params, carry, xs, target = _setup(cell)
    grad = jax.grad(_loss, argnums=(1, 2, 3))
    windows = (None, T, T + 3)
    results = jax.jit(
        lambda *args: {
            mode: [grad(cell, *args, gradient=mode, window=window) for window in windows]
            for mode in ("full", "truncated")
        }
    )(params, carry, xs, target)
    for mode, (want, *windowed) in results.items():
        for window, got in zip(windows[1:], windowed, strict=True):
            _close(got, want, f"{mode}, window={window}")


# Window 3 (uneven windows) for every family; window 1 (a window per step: T grads of one
# step each, the costliest case) for the Elman RNN only (CI time).
WINDOW_CASES = [(3, kind, cell) for kind, cell in CASES] + [
    (1, kind, cell) for kind, cell in CASES if kind == "rnn"
]


@pytest.mark.parametrize(
    ("window", "kind", "cell"), WINDOW_CASES, ids=[f"{w}-{k}" for w, k, _ in WINDOW_CASES]
)
def test_windowed_gradient_is_the_sum_of_per_window_gradients(x64, kind, cell, window):
    """In both gradient modes (one compiled program: they share the forward pass)."""
    params, carry, xs, target = _setup(cell, 1)
    grad = jax.grad(_loss, argnums=(1, 2, 3))

    def windowed_and_reference(params, carry, xs, target, mode):
        """The windowed gradient, the per-window reference and the unwindowed gradient."""
        got = grad(cell, params, carry, xs, target, gradient=mode, window=window)
        # Reference: one independent FULL/TRUNCATED problem per window, started from the true
        # forward state at the window's start (a constant: nothing flows back into earlier
        # windows).
        want_params = jax.tree.map(jnp.zeros_like, params)
        want_xs, want_carry, start = [], None, carry
        for lo in range(0, T, window):
            hi = min(lo + window, T)
            last = hi == T

            def window_loss(p, c, x, lo=lo, hi=hi, last=last):
                final, ys = lstm_jax.unroll(cell, p, x, c, gradient=mode)
                extra = sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(final)) if last else 0.0
                return jnp.sum(target[lo:hi] * jnp.sin(ys)) + extra

            gp, gc, gx = jax.grad(window_loss, argnums=(0, 1, 2))(params, start, xs[lo:hi])
            want_params = jax.tree.map(jnp.add, want_params, gp)
            want_xs.append(gx)
            if lo == 0:
                want_carry = gc
            start, _ = lstm_jax.unroll(cell, params, xs[lo:hi], start)
        want = (want_params, want_carry, jnp.concatenate(want_xs))
        return got, want, grad(cell, params, carry, xs, target, gradient=mode)[0]

    results = jax.jit(
        lambda *args: {mode: windowed_and_reference(*args, mode) for mode in ("full", "truncated")}
    )(params, carry, xs, target)
    for mode, (got, want, unwindowed) in host(results).items():
        (g_params, g_carry, g_xs), (want_params, want_carry, want_xs) = got, want
        _close(g_params, want_params, mode)
        _close(g_carry, want_carry, mode)
        _close(g_xs, want_xs, mode)
        if not (kind == "rnn" and mode == "truncated"):  # there the cut removes nothing more
            gaps = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), unwindowed, g_params)
            assert max(jax.tree.leaves(gaps)) > 1e-8, mode  # the windows really cut something


@pytest.mark.parametrize(("kind", "cell"), CASES, ids=IDS)
def test_windows_count_steps_of_each_sequence_with_lengths_and_reverse(x64, kind, cell):
    """With lengths, windows start at each sequence's own first processed step: in reverse,
    at its last valid step. Each row then equals a windowed run on its own unpadded sequence."""
    params, carry, xs, target = _setup(cell, 2)
    lengths = [T, 7]

    @jax.jit
    def windowed_and_per_row(params, carry, xs, target):
        """Per direction: the gradient of the padded batch, and the sum of its rows' own."""
        out = []
        for reverse in (False, True):
            kw = dict(window=3, lengths=jnp.array(lengths), reverse=reverse)
            g_params = jax.grad(_loss, argnums=1)(cell, params, carry, xs, target, **kw)
            want = jax.tree.map(jnp.zeros_like, params)
            for b, n in enumerate(lengths):
                c_b = jax.tree.map(lambda a, b=b: a[b], carry)
                xb, tb = xs[:n, b], target[:n, b]
                g_row = jax.grad(_loss, argnums=1)(
                    cell, params, c_b, xb, tb, window=3, reverse=reverse
                )
                want = jax.tree.map(jnp.add, want, g_row)
            out.append((g_params, want))
        return out

    for g_params, want in windowed_and_per_row(params, carry, xs, target):
        _close(g_params, want)
