"""e-prop, RFLO, the 1997 traces on the common interface, random feedback and the algorithm
registry (`online.eligibility`, `online.traces`, `online.registry`), in
float64 against `jax.grad` of the scan unroll."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CELLS, EXTRA_CELLS, random_params
from jax.flatten_util import ravel_pytree
from test_online_algorithms import B, H, _bptt, _check, _loss, _setup

import lstm_jax
from lstm_jax.online.eligibility import eprop, feedback_readout, random_feedback, rflo
from lstm_jax.online.protocol import accumulate
from lstm_jax.online.registry import (
    ONLINE_ALGORITHMS,
    online_algorithm,
    valid_algorithms,
)
from lstm_jax.online.traces import traces_1997

ALL = {c[0]: c[2] for c in CELLS + EXTRA_CELLS}
# the plain and leaky Elman nets are in the RFLO test, through the same e-prop identity
EPROP = ["gru-reset_after", "lstm-vanilla", "lstm-1997-net"]
# every variant runs through the same `trace_step` in tests/test_online.py; here the adapter
# onto the interface, on the layouts that differ: peepholes, FGR, memory blocks
LSTMS = ["lstm-vanilla", "lstm-FGR", "lstm-1997-net"]


@pytest.mark.parametrize("name", EPROP)
def test_eprop_equals_the_truncated_gradient(x64, name):
    """The truncated Jacobian is block-diagonal per unit, so SnAp-1 on it drops nothing:
    e-prop = `jax.grad` of the TRUNCATED unroll (and differs from the full gradient)."""
    cell = ALL[name]
    got = _check(cell, name, "truncated", (B,), eprop(cell))
    full = _bptt(cell, *_setup(cell, name, (B,)), "full")[1]
    assert not np.allclose(ravel_pytree(got)[0], ravel_pytree(full)[0])


@pytest.mark.parametrize("name", LSTMS)
def test_the_1997_traces_on_the_interface_equal_the_truncated_gradient(x64, name):
    """`traces_1997` (the hand-derived traces on the common interface) =
    `jax.grad` of the TRUNCATED unroll, so = e-prop on the peephole-free LSTM."""
    _check(ALL[name], name, "truncated", (B,), traces_1997(ALL[name]))


def test_rflo_is_eprop_on_the_leaky_rnn_and_exact_where_r_vanishes(x64):
    """RFLO's own O(H·D) traces = e-prop = the truncated gradient of the leaky RNN; with R = 0
    the dropped path `α diag(φ') R` vanishes and RFLO is the full BPTT gradient, R's included;
    with α = 1 it is the one-step gradient."""
    for name in ("rnn-leaky", "rnn"):
        cell = ALL[name]
        _check(cell, name, "truncated", (B,), rflo(cell))
        _check(cell, name, "truncated", ())
    cell = ALL["rnn-leaky"]
    params = _setup(cell, "rnn-leaky", (B,))[0]
    zero_r = params._replace(r=jnp.zeros_like(params.r))
    exact = _check(cell, "rnn-leaky", "full", (B,), rflo(cell), zero_r)
    assert float(jnp.abs(exact.r).max()) > 1e-3


def test_random_feedback_sends_the_error_through_b(x64):
    """`feedback_readout`: forward `y @ w + b`; backward `∂/∂y = d_out @ B` (B = wᵀ: exact),
    `∂/∂w`, `∂/∂b` exact; a wrong shape is named."""
    k_y, k_w, k_b, k_f = jax.random.split(jax.random.key(0), 4)
    y = jax.random.normal(k_y, (B, H), jnp.float64)
    w = jax.random.normal(k_w, (H, 2), jnp.float64)
    b = jax.random.normal(k_b, (2,), jnp.float64)
    feedback = random_feedback(k_f, H, 2, jnp.float64)

    def loss(readout, y, w, b):
        return jnp.sum(jnp.sin(readout(y, w, b)))

    exact = jax.grad(loss, argnums=(1, 2, 3))(lambda y, w, b: y @ w + b, y, w, b)
    same = jax.grad(loss, argnums=(1, 2, 3))(
        lambda y, w, b: feedback_readout(w, b, w.T)(y), y, w, b
    )
    jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-13), same, exact)
    d_y, d_w, d_b = jax.grad(loss, argnums=(1, 2, 3))(
        lambda y, w, b: feedback_readout(w, b, feedback)(y), y, w, b
    )
    np.testing.assert_allclose(d_y, jnp.cos(y @ w + b) @ feedback, rtol=1e-13)
    np.testing.assert_allclose(d_w, exact[1], rtol=1e-13)
    np.testing.assert_allclose(d_b, exact[2], rtol=1e-13)
    assert not np.allclose(d_y, exact[0])
    with pytest.raises(ValueError, match=r"feedback must have shape \[O, H\] = \(2, 4\)"):
        feedback_readout(w, b, feedback.T)


def test_the_registry_names_what_each_cell_can_use():
    assert valid_algorithms(lstm_jax.lstm()) == [n for n in ONLINE_ALGORITHMS if n != "rflo"]
    assert "rflo" in valid_algorithms(lstm_jax.rnn(alpha=0.5))
    assert "traces_1997" not in valid_algorithms(lstm_jax.gru())
    with pytest.raises(
        ValueError,
        match=r"'rflo' is not defined for this cell .*GRUOptions.*"
        r"valid for it: \['rtrl', 'rtrl_truncated', 'snap1'",
    ):
        online_algorithm("rflo", lstm_jax.gru())
    with pytest.raises(ValueError, match=r"'traces_1997' is not defined .* valid for it: .*rflo"):
        online_algorithm("traces_1997", lstm_jax.rnn())
    with pytest.raises(ValueError, match=r"unknown online algorithm 'bptt'; valid: \['eprop'"):
        online_algorithm("bptt", lstm_jax.rnn())


@pytest.mark.parametrize("name", sorted(ONLINE_ALGORITHMS))
def test_every_algorithm_runs_under_jit_vmap_and_keeps_its_state_size(name):
    """Each algorithm's state has the same size after 3 and after 9 steps (memory independent
    of T), and `vmap` over independent sequences gives each its own result."""
    # the generic algorithms on the cheapest cell; the 1997 traces need an LSTM
    cell = lstm_jax.lstm("1997") if name == "traces_1997" else lstm_jax.rnn(alpha=0.5)
    params = random_params(cell, jax.random.key(1), 3, H, jnp.float32)
    algorithm = online_algorithm(name, cell, jax.random.key(2))
    xs = jax.random.normal(jax.random.key(3), (9, B, 3))
    targets = (jnp.zeros((9, B, H)), jnp.ones((9,)))
    carry = cell.initial_carry((B,), H)

    def run(xs, steps):
        window = jax.tree.map(lambda a: a[:steps], targets)
        return accumulate(algorithm, params, xs[:steps], window, _loss, carry)

    short, long = run(xs, 3), run(xs, 9)
    sizes = [sum(a.size for a in jax.tree.leaves(r.state)) for r in (short, long)]
    assert sizes[0] == sizes[1]
    assert np.isfinite(ravel_pytree(long.grads)[0]).all()
    if name != "uoro":  # deterministic: the batch of 2 = the sum of two batches of 1
        one = jax.vmap(
            lambda x, c, v: accumulate(algorithm, params, x, (v, targets[1][:3]), _loss, c).grads,
            in_axes=(1, 0, 1),
        )(xs[:3, :, None], jax.tree.map(lambda a: a[:, None], carry), targets[0][:3, :, None])
        summed = jax.tree.map(lambda a: a.sum(0), one)
        jax.tree.map(
            lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5),
            summed,
            short.grads,
        )
