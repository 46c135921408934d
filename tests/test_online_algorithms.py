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
from helpers import (
    CELLS,
    EXTRA_CELLS,
    FAMILIES,
    FAMILY_IDS,
    MODERN_CELLS,
    ONLINE_B,
    ONLINE_H,
    ONLINE_I,
    bptt,
    bptt_jit,
    check_online,
    flat,
    host,
    online_loss,
    online_setup,
)
from jax.flatten_util import ravel_pytree

import lstm_jax
from lstm_jax.online.protocol import accumulate
from lstm_jax.online.rtrl import snap
from lstm_jax.online.uoro import uoro

B, I, H = ONLINE_B, ONLINE_I, ONLINE_H
_loss = online_loss  # test_online_reset.py imports it from here


ALL = CELLS + EXTRA_CELLS + [(name, None, cell) for name, cell in MODERN_CELLS]


@pytest.mark.parametrize(("name", "cell"), [c[::2] for c in ALL], ids=[c[0] for c in ALL])
def test_rtrl_equals_bptt_for_every_cell(x64, name, cell):
    """FULL, batched, from a random carry, for every cell, variant and option set."""
    check_online(cell, name, "full", (B,))


@pytest.mark.parametrize(("name", "cell"), [c[::2] for c in FAMILIES], ids=FAMILY_IDS)
def test_rtrl_unbatched_and_truncated(x64, name, cell):
    """One sequence without a batch axis; and RTRL of `truncated_step` equals `jax.grad` of the
    TRUNCATED unroll, which differs from the full gradient."""
    check_online(cell, name, "full", ())
    truncated = check_online(cell, name, "truncated", (B,))
    full = bptt_jit(cell, *online_setup(cell, name, (B,)), "full")[1]
    assert not np.allclose(flat(truncated), flat(full))


def test_snap_equals_rtrl_where_its_mask_drops_nothing(x64):
    """SnAp-1 is exact when the Jacobian is diagonal (an Elman RNN with a diagonal R); with a
    dense R it is not, and SnAp-2 is (two steps connect every unit to every weight)."""
    cell = lstm_jax.rnn()
    params, xs, carry, targets = online_setup(cell, "rnn", (B,))
    diagonal = params._replace(r=jnp.diag(jnp.diag(params.r)))
    check_online(cell, "rnn", "full", (B,), snap(cell, 1), diagonal)
    check_online(cell, "rnn", "full", (B,), snap(cell, 2))
    snap1, exact, state = host(
        jax.jit(
            lambda params: (
                accumulate(snap(cell, 1), params, xs, targets, online_loss, carry).grads,
                bptt(cell, params, xs, carry, targets, "full")[1],
                snap(cell, 1).init(params, carry),  # P_1: a weight reaches only its own unit
            )
        )(params)
    )
    assert not np.allclose(snap1.r, exact.r) and not np.allclose(snap1.w, exact.w)
    assert int(state.mask.sum()) == H * (I + H + 1)
    with pytest.raises(ValueError, match=r"SnAp-n needs an integer n >= 1, got 0"):
        snap(cell, 0)


def test_uoro_is_unbiased(x64):
    """The mean of N independent UORO estimates (one key each) is RTRL's gradient within 5
    standard errors for every parameter, and the standard error is small enough that a wrong
    sign or a factor of 2 on the largest entries would fail."""
    cell = lstm_jax.rnn()
    params, xs, carry, targets = online_setup(cell, "rnn", ())
    exact = flat(bptt_jit(cell, params, xs, carry, targets, "full")[1])

    def estimate(key):
        grads = accumulate(uoro(cell, key), params, xs, targets, online_loss, carry).grads
        return ravel_pytree(grads)[0]

    samples = np.asarray(jax.jit(jax.vmap(estimate))(jax.random.split(jax.random.key(3), 4000)))
    mean, stderr = samples.mean(0), samples.std(0) / np.sqrt(samples.shape[0])
    z = np.abs(mean - exact) / stderr
    assert z.max() < 5, z
    large = np.abs(exact) > 0.5 * np.abs(exact).max()
    assert np.all(np.abs(exact[large]) > 10 * stderr[large])
    assert not np.allclose(samples[0], exact, rtol=0.1)  # one estimate alone is not the gradient
