"""e-prop, RFLO, the 1997 traces on the common interface, random feedback and the algorithm
registry (`online.eligibility`, `online.rflo`, `online.traces`, `online.registry`), in
float64 against `jax.grad` of the scan unroll."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    CELLS,
    EXTRA_CELLS,
    ONLINE_B,
    ONLINE_H,
    assert_close,
    bptt_jit,
    check_online,
    flat,
    host,
    normal,
    online_loss,
    online_setup,
    random_params,
)

import lstm_jax
from lstm_jax.online import registry
from lstm_jax.online.eligibility import eprop, feedback_readout, random_feedback
from lstm_jax.online.protocol import accumulate
from lstm_jax.online.registry import (
    ONLINE_ALGORITHMS,
    online_algorithm,
    valid_algorithms,
)
from lstm_jax.online.rflo import rflo
from lstm_jax.online.traces import traces_1997

B, H = ONLINE_B, ONLINE_H
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
    got = check_online(cell, name, "truncated", (B,), eprop(cell))
    full = bptt_jit(cell, *online_setup(cell, name, (B,)), "full")[1]
    assert not np.allclose(flat(got), flat(full))


@pytest.mark.parametrize("name", LSTMS)
def test_the_1997_traces_on_the_interface_equal_the_truncated_gradient(x64, name):
    """`traces_1997` (the hand-derived traces on the common interface) =
    `jax.grad` of the TRUNCATED unroll, so = e-prop on the peephole-free LSTM."""
    check_online(ALL[name], name, "truncated", (B,), traces_1997(ALL[name]))


def test_rflo_is_eprop_on_the_leaky_rnn_and_exact_where_r_vanishes(x64):
    """RFLO's own O(H·D) traces = e-prop = the truncated gradient of the leaky RNN; with R = 0
    the dropped path `α diag(φ') R` vanishes and RFLO is the full BPTT gradient, R's included;
    with α = 1 it is the one-step gradient."""
    for name in ("rnn-leaky", "rnn"):
        cell = ALL[name]
        check_online(cell, name, "truncated", (B,), rflo(cell))
        check_online(cell, name, "truncated", ())
    cell = ALL["rnn-leaky"]
    params = online_setup(cell, "rnn-leaky", (B,))[0]
    zero_r = params._replace(r=jnp.zeros_like(params.r))
    exact = check_online(cell, "rnn-leaky", "full", (B,), rflo(cell), zero_r)
    assert float(np.abs(exact.r).max()) > 1e-3


def test_random_feedback_sends_the_error_through_b(x64):
    """`feedback_readout`: forward `y @ w + b`; backward `∂/∂y = d_out @ B` (B = wᵀ: exact),
    `∂/∂w`, `∂/∂b` exact; a wrong shape is named."""
    k_y, k_w, k_b, k_f = jax.random.split(jax.random.key(0), 4)
    y = normal(k_y, (B, H))
    w = normal(k_w, (H, 2))
    b = normal(k_b, (2,))
    feedback = random_feedback(k_f, H, 2, jnp.float64)

    @jax.jit
    def gradients(y, w, b, feedback):
        def loss(readout, y, w, b):
            return jnp.sum(jnp.sin(readout(y, w, b)))

        def grad(readout):
            return jax.grad(loss, argnums=(1, 2, 3))(readout, y, w, b)

        exact = grad(lambda y, w, b: y @ w + b)
        same = grad(lambda y, w, b: feedback_readout(w, b, w.T)(y))
        through_b = grad(lambda y, w, b: feedback_readout(w, b, feedback)(y))
        return exact, same, through_b, jnp.cos(y @ w + b) @ feedback

    exact, same, (d_y, d_w, d_b), want_d_y = host(gradients(y, w, b, feedback))
    assert_close(same, exact, rtol=1e-13)
    np.testing.assert_allclose(d_y, want_d_y, rtol=1e-13)
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
        match=r"'rflo' is not defined for this cell \(it applies to an Elman RNN, got "
        r"GRUOptions\); valid for it: \['rtrl', 'rtrl_truncated', 'snap1'",
    ):
        online_algorithm("rflo", lstm_jax.gru())
    with pytest.raises(ValueError, match=r"'traces_1997' is not defined .* valid for it: .*rflo"):
        online_algorithm("traces_1997", lstm_jax.rnn())
    with pytest.raises(ValueError, match=r"unknown online algorithm 'bptt'; valid: \['eprop'"):
        online_algorithm("bptt", lstm_jax.rnn())


def test_the_registry_reads_declarations_and_builds_nothing(monkeypatch):
    """`valid_algorithms` and a refusal come from each entry's declared family: an entry whose
    builder would fail is still listed, and one declared for another family is refused before
    its builder runs."""

    def fails(cell, key):
        raise AssertionError("built")

    entries = {name: e._replace(build=fails) for name, e in ONLINE_ALGORITHMS.items()}
    monkeypatch.setattr(registry, "ONLINE_ALGORITHMS", entries)
    assert registry.valid_algorithms(lstm_jax.gru()) == [
        n for n in entries if n not in ("traces_1997", "rflo")
    ]
    with pytest.raises(ValueError, match=r"it applies to an LSTM cell, got ElmanOptions"):
        registry.online_algorithm("traces_1997", lstm_jax.rnn())


@pytest.mark.parametrize("name", sorted(ONLINE_ALGORITHMS))
def test_every_algorithm_runs_under_jit_vmap_and_keeps_its_state_size(name):
    """Each algorithm's state has the same size after 3 and after 9 steps (memory independent
    of T), and `vmap` over independent sequences gives each its own result."""
    # the generic algorithms on the cheapest cell; the 1997 traces need an LSTM
    cell = lstm_jax.lstm("1997") if name == "traces_1997" else lstm_jax.rnn(alpha=0.5)
    params = random_params(cell, jax.random.key(1), 3, H, jnp.float32)
    algorithm = online_algorithm(name, cell, jax.random.key(2))
    xs = normal(jax.random.key(3), (9, B, 3), jnp.float32)
    targets = (jnp.zeros((9, B, H)), jnp.ones((9,)))
    carry = cell.initial_carry((B,), H)

    @jax.jit
    def runs(params, xs, targets, carry):
        """3 and 9 steps, and (vmap) the first 3 steps of each sequence on its own."""

        def run(steps):
            window = jax.tree.map(lambda a: a[:steps], targets)
            return accumulate(algorithm, params, xs[:steps], window, online_loss, carry)

        one = jax.vmap(
            lambda x, c, v: accumulate(algorithm, params, x, (v, targets[1][:3]), online_loss, c),
            in_axes=(1, 0, 1),
        )(xs[:3, :, None], jax.tree.map(lambda a: a[:, None], carry), targets[0][:3, :, None])
        return run(3), run(9), one.grads

    short, long, one = host(runs(params, xs, targets, carry))
    sizes = [sum(a.size for a in jax.tree.leaves(r.state)) for r in (short, long)]
    assert sizes[0] == sizes[1]
    assert np.isfinite(flat(long.grads)).all()
    if name != "uoro":  # deterministic: the batch of 2 = the sum of two batches of 1
        summed = jax.tree.map(lambda a: a.sum(0), one)
        assert_close(summed, short.grads, rtol=1e-4, atol=1e-5)
