"""The online (eligibility-trace) truncated gradient equals jax.grad of the TRUNCATED unroll."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import normal, random_carry, random_params

import lstm_jax
from lstm_jax.online import Readout
from lstm_jax.online.traces import online_gradient

I, H, O = 3, 4, 2
VARIANTS = {
    "1997": lstm_jax.lstm("1997"),  # no forget gate, no peepholes, scaled squashing
    "1997-peepholes": lstm_jax.lstm("1997", peepholes=True),
    "standard": lstm_jax.lstm(),  # forget gate, no peepholes
    "vanilla": lstm_jax.lstm("vanilla"),  # forget gate and peepholes
    "NIG": lstm_jax.lstm("NIG"),
    "NOG": lstm_jax.lstm("NOG"),
    "CIFG": lstm_jax.lstm("CIFG"),
    "NOAF": lstm_jax.lstm("NOAF"),
    "FGR": lstm_jax.lstm("FGR"),
    # memory blocks (1997 §5.4, Gers et al. 2000): 2 blocks of 2 cells sharing their gates
    "1997-blocks": lstm_jax.lstm("1997", block_size=2, input_bias=(-3.0, -6.0)),
    "standard-blocks": lstm_jax.lstm(block_size=2, forget_bias=(0.5, 1.0)),
    "1997-net": lstm_jax.lstm("1997", block_size=2, gate_inputs=True),
    "CIFG-gate-inputs": lstm_jax.lstm("CIFG", gate_inputs=True),
}


def squared_error(prediction, target):
    return 0.5 * jnp.sum((prediction - target) ** 2)


def weighted_error(prediction, target):
    """`target = (value, weight)`: a weight of 0 puts no loss at the step."""
    value, weight = target
    return weight * squared_error(prediction, value)


@functools.partial(jax.jit, static_argnums=0)
def _reference(cell, params, readout, xs, targets, carry):
    """jax.grad of the TRUNCATED unroll followed by the readout and the loss, `{every_step:
    (value, grads)}` for the loss at every step and at the end only: one compiled program."""

    def loss(params, readout, c0, every_step):
        _, hs = lstm_jax.unroll(cell, params, xs, carry._replace(c=c0), gradient="truncated")
        preds = hs @ readout.w + readout.b
        per_step = jax.vmap(squared_error)(preds, targets)
        return jnp.sum(per_step) if every_step else per_step[-1]

    return {
        every_step: jax.value_and_grad(loss, argnums=(0, 1, 2))(
            params, readout, carry.c, every_step
        )
        for every_step in (True, False)
    }


# every variant batched; without a batch axis (the same code, batch shape ()) for one of them
ONLINE_CASES = [(v, (3,)) for v in VARIANTS] + [("vanilla", ())]


@pytest.mark.parametrize(
    ("variant", "batch"),
    ONLINE_CASES,
    ids=[f"{'batched' if b else 'unbatched'}-{v}" for v, b in ONLINE_CASES],
)
def test_online_equals_truncated_bptt(x64, variant, batch):
    """With the loss at every step, and at the end only."""
    cell = VARIANTS[variant]
    T = 7
    keys = jax.random.split(jax.random.key(0), 6)
    params = random_params(cell, keys[0], I, H)
    readout = Readout(w=normal(keys[1], (H, O)), b=normal(keys[2], (O,)))
    carry = random_carry(cell, keys[3], batch, H)
    xs = normal(keys[4], (T, *batch, I))
    targets = normal(keys[5], (T, *batch, O))
    references = _reference(cell, params, readout, xs, targets, carry)
    for every_step, (value, (d_params, d_readout, d_c0)) in references.items():
        # the loss at the end only: a weight of 1 at the last step, 0 before
        weights = np.ones(T) if every_step else (np.arange(T) == T - 1).astype(np.float64)
        got = online_gradient(cell, params, readout, xs, (targets, weights), weighted_error, carry)
        tol = dict(rtol=1e-10, atol=1e-12, err_msg=f"every_step={every_step}")
        np.testing.assert_allclose(got.loss, value, **tol)
        jax.tree.map(
            lambda a, b, tol=tol: np.testing.assert_allclose(a, b, **tol), got.params, d_params
        )
        jax.tree.map(
            lambda a, b, tol=tol: np.testing.assert_allclose(a, b, **tol), got.readout, d_readout
        )
        np.testing.assert_allclose(got.c0, d_c0, **tol)


def test_online_is_not_the_full_gradient(x64):
    cell = lstm_jax.lstm()
    params = random_params(cell, jax.random.key(1), I, H)
    readout = Readout(w=jnp.ones((H, O)), b=jnp.zeros(O))
    xs = normal(jax.random.key(2), (6, 2, I))
    targets = jnp.zeros((6, 2, O))
    got = online_gradient(cell, params, readout, xs, targets, squared_error)

    def full_loss(params):
        _, hs = lstm_jax.unroll(cell, params, xs)
        return jnp.sum(jax.vmap(squared_error)(hs @ readout.w + readout.b, targets))

    full = jax.jit(jax.grad(full_loss))(params)
    assert float(np.abs(np.asarray(full.r) - np.asarray(got.params.r)).max()) > 1e-6


def test_online_rejects_non_lstm_cells():
    cell = lstm_jax.gru()
    params = random_params(cell, jax.random.key(0), I, H, jnp.float32)
    with pytest.raises(TypeError, match="needs an LSTM cell, got GRUOptions"):
        online_gradient(
            cell,
            params,
            Readout(jnp.ones((H, O)), jnp.zeros(O)),
            jnp.ones((2, I)),
            None,
            squared_error,
        )


def test_online_rejects_mismatched_readout_and_targets():
    cell = lstm_jax.lstm()
    params = random_params(cell, jax.random.key(0), I, H, jnp.float32)
    xs, targets = jnp.ones((5, 2, I)), jnp.ones((5, 2, O))
    good = Readout(jnp.ones((H, O)), jnp.zeros(O))
    with pytest.raises(ValueError, match=r"readout.w must have shape \[H=4, O\], got \(5, 2\)"):
        online_gradient(
            cell, params, Readout(jnp.ones((5, O)), jnp.zeros(O)), xs, targets, squared_error
        )
    with pytest.raises(ValueError, match=r"readout.b must have shape \(2,\)"):
        online_gradient(
            cell, params, Readout(jnp.ones((H, O)), jnp.zeros(3)), xs, targets, squared_error
        )
    with pytest.raises(
        ValueError, match=r"targets must have a leading time axis of T=5, got shape \(4, 2, 2\)"
    ):
        online_gradient(cell, params, good, xs, targets[:4], squared_error)
