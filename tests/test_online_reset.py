"""Each online algorithm's declared `reset` (`online.protocol.OnlineAlgorithm.reset`): the flagged
sequences restart from the fresh state in every per-sequence part of the state, the others run
on, and the parts the sequences share (SnAp's mask, UORO's key) are kept."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_params
from test_online_algorithms import _loss

import lstm_jax
from lstm_jax.online.protocol import accumulate
from lstm_jax.online.registry import ONLINE_ALGORITHMS, online_algorithm

B, I, H = 3, 3, 4
SHARED = {"mask", "key"}  # the state fields every algorithm here shares across its sequences


@pytest.mark.parametrize("name", sorted(ONLINE_ALGORITHMS))
def test_reset_restarts_the_flagged_sequences_only(name):
    cell = lstm_jax.lstm("1997") if name == "traces_1997" else lstm_jax.rnn(alpha=0.5)
    params = random_params(cell, jax.random.key(1), I, H, jnp.float32)
    algorithm = online_algorithm(name, cell, jax.random.key(2))
    carry = cell.initial_carry((B,), H)
    xs = jax.random.normal(jax.random.key(3), (4, B, I))
    targets = (jnp.zeros((4, B, H)), jnp.ones(4))
    state = accumulate(algorithm, params, xs, targets, _loss, carry).state
    fresh = algorithm.init(params, carry)
    flags = np.array([True, False, True])
    new = jax.jit(algorithm.reset)(fresh, state, jnp.asarray(flags))
    moved = []
    for field in state._fields:
        got, old, start = (getattr(s, field) for s in (new, state, fresh))
        if field in SHARED:  # kept as the state has it (None for exact RTRL's mask)
            jax.tree.map(np.testing.assert_array_equal, got, old)
            continue
        for g, o, s in zip(*(jax.tree.leaves(t) for t in (got, old, start)), strict=True):
            assert g.shape[0] == B, (field, g.shape)
            np.testing.assert_array_equal(g[flags], s[flags])
            np.testing.assert_array_equal(g[~flags], o[~flags])
            moved.append(not np.allclose(o[~flags], s[~flags]))
    assert any(moved)  # four steps moved the state away from the fresh one
    if name == "uoro":  # the key has run on: the reset keeps it, not the initial one
        assert not np.array_equal(new.key, fresh.key)
