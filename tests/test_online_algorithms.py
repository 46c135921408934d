"""Online algorithms through their one interface (`online.protocol`), in float64:
exact RTRL (`online.rtrl`) equals `jax.grad` of the scan unroll (FULL, and TRUNCATED for
its truncated form) for every cell, with the loss at chosen steps and at the end, batched and
unbatched, from a non-zero initial carry; SnAp-n equals it where its mask drops nothing; UORO
(`online.uoro`) is unbiased."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    CELLS,
    EXTRA_CELLS,
    FAMILIES,
    FAMILY_IDS,
    MODERN_CELLS,
    random_carry,
    random_params,
    stable_seed,
)
from jax.flatten_util import ravel_pytree

import lstm_jax
from lstm_jax.online.protocol import accumulate
from lstm_jax.online.rtrl import rtrl, snap
from lstm_jax.online.uoro import uoro

T, B, I, H = 5, 2, 3, 4


def _loss(y, target):
    value, weight = target
    return 0.5 * weight * jnp.sum((y - value) ** 2)


def _bptt(cell, params, xs, carry, targets, gradient):
    """The reference: `jax.grad` of Σ_t ℓ_t through the scan unroll."""

    def total(params):
        _, ys = lstm_jax.unroll(cell, params, xs, carry, gradient=gradient, impl="scan")
        values, weights = targets
        weights = weights.reshape(T, *[1] * (ys.ndim - 1))
        return 0.5 * jnp.sum(weights * (ys - values) ** 2)

    return jax.value_and_grad(total)(params)


def _inputs(name, batch_shape):
    k_x, k_y = jax.random.split(jax.random.key(stable_seed(name)))
    xs = jax.random.normal(k_x, (T, *batch_shape, I), jnp.float64)
    values = jax.random.normal(k_y, (T, *batch_shape, H), jnp.float64)
    return xs, values


def _setup(cell, name, batch_shape):
    params = random_params(cell, jax.random.key(stable_seed(name) + 1), I, H)
    xs, values = _inputs(name, batch_shape)
    carry = random_carry(cell, jax.random.key(7), batch_shape, H)
    # losses at some steps only, the last included: "at every step" and "at the end" at once
    return params, xs, carry, (values, jnp.array([0.0, 1.0, 0.0, 0.5, 1.0]))


def _check(cell, name, gradient, batch_shape, algorithm=None, params=None):
    """`algorithm` (default: `rtrl(cell, gradient)`) against `jax.grad` of the unroll."""
    default, xs, carry, targets = _setup(cell, name, batch_shape)
    params = default if params is None else params
    algorithm = algorithm or rtrl(cell, gradient)
    got = jax.jit(lambda p: accumulate(algorithm, p, xs, targets, _loss, carry))(params)
    want_loss, want = _bptt(cell, params, xs, carry, targets, gradient)
    np.testing.assert_allclose(got.loss, want_loss, rtol=1e-12)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), got.grads, want
    )
    return want


ALL = CELLS + EXTRA_CELLS + [(name, None, cell) for name, cell in MODERN_CELLS]


@pytest.mark.parametrize(("name", "cell"), [c[::2] for c in ALL], ids=[c[0] for c in ALL])
def test_rtrl_equals_bptt_for_every_cell(x64, name, cell):
    """FULL, batched, from a random carry, for every cell, variant and option set."""
    _check(cell, name, "full", (B,))


@pytest.mark.parametrize(("name", "cell"), [c[::2] for c in FAMILIES], ids=FAMILY_IDS)
def test_rtrl_unbatched_and_truncated(x64, name, cell):
    """One sequence without a batch axis; and RTRL of `truncated_step` equals `jax.grad` of the
    TRUNCATED unroll, which differs from the full gradient."""
    _check(cell, name, "full", ())
    truncated = _check(cell, name, "truncated", (B,))
    full = _bptt(cell, *_setup(cell, name, (B,)), "full")[1]
    assert not np.allclose(ravel_pytree(truncated)[0], ravel_pytree(full)[0])


def test_snap_equals_rtrl_where_its_mask_drops_nothing(x64):
    """SnAp-1 is exact when the Jacobian is diagonal (an Elman RNN with a diagonal R); with a
    dense R it is not, and SnAp-2 is (two steps connect every unit to every weight)."""
    cell = lstm_jax.rnn()
    params, xs, carry, targets = _setup(cell, "rnn", (B,))
    diagonal = params._replace(r=jnp.diag(jnp.diag(params.r)))
    _check(cell, "rnn", "full", (B,), snap(cell, 1), diagonal)
    _check(cell, "rnn", "full", (B,), snap(cell, 2))
    snap1 = accumulate(snap(cell, 1), params, xs, targets, _loss, carry).grads
    exact = _bptt(cell, params, xs, carry, targets, "full")[1]
    assert not np.allclose(snap1.r, exact.r) and not np.allclose(snap1.w, exact.w)
    state = snap(cell, 1).init(params, carry)  # P_1: a weight reaches only its own unit
    assert int(state.mask.sum()) == H * (I + H + 1)
    with pytest.raises(ValueError, match=r"SnAp-n needs an integer n >= 1, got 0"):
        snap(cell, 0)


def test_uoro_is_unbiased(x64):
    """The mean of N independent UORO estimates (one key each) is RTRL's gradient within 5
    standard errors for every parameter, and the standard error is small enough that a wrong
    sign or a factor of 2 on the largest entries would fail."""
    cell = lstm_jax.rnn()
    params, xs, carry, targets = _setup(cell, "rnn", ())
    exact = ravel_pytree(_bptt(cell, params, xs, carry, targets, "full")[1])[0]

    def estimate(key):
        return ravel_pytree(accumulate(uoro(cell, key), params, xs, targets, _loss, carry).grads)[0]

    samples = jax.jit(jax.vmap(estimate))(jax.random.split(jax.random.key(3), 4000))
    mean, stderr = samples.mean(0), samples.std(0) / np.sqrt(samples.shape[0])
    z = np.abs(mean - exact) / stderr
    assert z.max() < 5, z
    large = np.abs(exact) > 0.5 * np.abs(exact).max()
    assert np.all(np.abs(exact[large]) > 10 * stderr[large])
    assert not np.allclose(samples[0], exact, rtol=0.1)  # one estimate alone is not the gradient
