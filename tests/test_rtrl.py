"""Exact RTRL (`gradients.rtrl`) through the online interface (`gradients.online_protocol`):
equal to `jax.grad` of the scan unroll (FULL, and TRUNCATED for the truncated form) for every
cell, with the loss at every step or at the end only, batched and unbatched, from a non-zero
initial carry (float64)."""

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
    random_carry,
    random_params,
    stable_seed,
)
from jax.flatten_util import ravel_pytree

import lstm_jax
from lstm_jax.gradients.online_protocol import accumulate
from lstm_jax.gradients.rtrl import rtrl

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


def _check(cell, name, gradient, batch_shape):
    params, xs, carry, targets = _setup(cell, name, batch_shape)
    got = jax.jit(lambda p: accumulate(rtrl(cell, gradient), p, xs, targets, _loss, carry))(params)
    want_loss, want = _bptt(cell, params, xs, carry, targets, gradient)
    np.testing.assert_allclose(got.loss, want_loss, rtol=1e-12)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), got.grads, want
    )
    return want


ALL = CELLS + EXTRA_CELLS


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
