"""flax.nnx wrappers (`lstm_jax.nn.nnx`): parity with `nnx.LSTMCell` / `nnx.GRUCell` inside
`nnx.RNN` with weights copied (float64); `RNN` equals `stacked` on its params, batch-major by
default, with several batch axes and lengths; gradients through `nnx.grad` equal `jax.grad` of
`stacked`; an `nnx.Optimizer` step trains it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lstm_jax
from lstm_jax.nn import nnx as lnnx

I, H, B, T = 3, 4, 2, 6


def _close(a, b, tol=1e-10):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


def _randomize(module, key):
    """Every param of an nnx module random (biases too), in place."""
    state = nnx.state(module, nnx.Param)
    leaves, tree = jax.tree.flatten(state)
    keys = jax.random.split(key, len(leaves))
    nnx.update(
        module,
        jax.tree.unflatten(
            tree,
            [
                0.5 * jax.random.normal(k, x.shape, x.dtype)
                for k, x in zip(keys, leaves, strict=True)
            ],
        ),
    )


def _lstm_from_nnx(cell: nnx.LSTMCell) -> lstm_jax.LSTMParams:
    """nnx.LSTMCell (ii, if_, ig, io without bias; hi, hf, hg, ho with bias) -> LSTMParams."""
    names = {"i": "i", "f": "f", "z": "g", "o": "o"}
    order = [names[g] for g in lstm_jax.LSTM_GATE_ORDER]
    inner = {g: getattr(cell, "i" + g if g != "f" else "if_") for g in order}
    return lstm_jax.LSTMParams(
        w=jnp.concatenate([inner[g].kernel.get_value() for g in order], axis=1),
        r=jnp.concatenate([getattr(cell, "h" + g).kernel.get_value() for g in order], axis=1),
        b=jnp.concatenate([getattr(cell, "h" + g).bias.get_value() for g in order]),
    )


def _gru_from_nnx(cell: nnx.GRUCell) -> lstm_jax.GRUParams:
    """nnx.GRUCell (dense_i with bias, dense_h without; blocks r, z, n) -> GRUParams with reset
    after; flax's z is our 1 - u, so its block is negated, and there is no b_rh."""
    sign = jnp.concatenate([jnp.ones(H), -jnp.ones(H), jnp.ones(H)])
    return lstm_jax.GRUParams(
        w=cell.dense_i.kernel.get_value() * sign,
        r=cell.dense_h.kernel.get_value() * sign,
        b=cell.dense_i.bias.get_value() * sign,
        b_rh=jnp.zeros(H, cell.dense_i.bias.get_value().dtype),
    )


@pytest.mark.parametrize(
    ("flax_cell", "ours", "convert"),
    [(nnx.LSTMCell, lstm_jax.lstm(), _lstm_from_nnx), (nnx.GRUCell, lstm_jax.gru(), _gru_from_nnx)],
    ids=["lstm", "gru"],
)
def test_parity_with_flax_nnx_cells(x64, flax_cell, ours, convert):
    """Outputs and input gradients of `nnx.RNN(flax cell)` equal `unroll` on the copied
    weights, and our `CellModule` inside `nnx.RNN` equals `unroll` on its own params."""
    cell = flax_cell(I, H, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    _randomize(cell, jax.random.key(1))
    rnn = nnx.RNN(cell, rngs=False)  # no RNG stream: callable inside jax.grad
    xs = jax.random.normal(jax.random.key(2), (B, T, I), jnp.float64)
    params = convert(cell)

    carry0 = cell.initialize_carry((B, I), nnx.Rngs(4))

    def theirs(rnn, xs):
        return rnn(xs, initial_carry=carry0)

    def mine(xs):
        return lstm_jax.unroll(ours, params, xs, time_major=False)[1]

    _close(mine(xs), theirs(rnn, xs))
    want = nnx.grad(lambda rnn, x: jnp.sum(jnp.sin(theirs(rnn, x))), argnums=1)(rnn, xs)
    _close(jax.grad(lambda x: jnp.sum(jnp.sin(mine(x))))(xs), want)

    module = lnnx.CellModule(ours, I, H, param_dtype=jnp.float64, rngs=nnx.Rngs(3))
    carry = module.initialize_carry((B, I))
    _close(
        nnx.RNN(module, rngs=False)(xs, initial_carry=carry),
        lstm_jax.unroll(ours, module.params.get_value(), xs, time_major=False)[1],
    )


def test_rnn_any_batch_axes_lengths_and_bidirectional():
    """`RNN` over `[B1, B2, T, I]` with lengths `[B1, B2]` equals `stacked` on the flattened
    batch; time-major input gives the same numbers transposed."""
    cell = lstm_jax.gru()
    rnn = lnnx.RNN(cell, I, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    xs = jax.random.normal(jax.random.key(1), (2, 3, T, I))
    lengths = jnp.array([[T, 3, 1], [2, T, 4]])
    finals, ys = rnn(xs, lengths=lengths)
    assert ys.shape == (2, 3, T, 2 * H)
    flat_finals, flat_ys = lstm_jax.stacked(
        cell,
        rnn.layers.get_value(),
        xs.reshape(6, T, I),
        bidirectional=True,
        lengths=lengths.reshape(6),
        time_major=False,
    )
    _close(ys, flat_ys.reshape(2, 3, T, 2 * H), 1e-6)
    _close(finals, jax.tree.map(lambda a: a.reshape(2, 3, *a.shape[1:]), flat_finals), 1e-6)
    np.testing.assert_array_equal(ys[0, 2, 1:], 0.0)  # past length 1
    rnn.options["time_major"] = True
    _, ys_t = rnn(jnp.moveaxis(xs, 2, 0), lengths=lengths)
    _close(jnp.moveaxis(ys_t, 0, 2), ys, 1e-6)


def test_nnx_grad_and_optimizer_step():
    """`nnx.grad` through the module is `jax.grad` of `stacked` on its params, and one
    `nnx.Optimizer` step lowers the loss."""
    cell = lstm_jax.lstm()
    rnn = lnnx.RNN(cell, I, H, num_layers=2, rngs=nnx.Rngs(0))
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    target = jax.random.normal(jax.random.key(2), (B, T, H))

    def loss(model):
        return jnp.mean((model(xs)[1] - target) ** 2)

    grads = nnx.grad(loss)(rnn)
    want = jax.grad(
        lambda layers: jnp.mean(
            (lstm_jax.stacked(cell, layers, xs, time_major=False)[1] - target) ** 2
        )
    )(rnn.layers.get_value())
    _close(grads["layers"].get_value(), want, 1e-6)
    optimizer = nnx.Optimizer(rnn, optax.adam(1e-2), wrt=nnx.Param)
    before = loss(rnn)
    optimizer.update(rnn, grads)
    assert loss(rnn) < before


def test_bad_gradient_name_fails_at_construction():
    with pytest.raises(ValueError, match=r"\['full', 'truncated'\].*'fulll'"):
        lnnx.RNN(lstm_jax.lstm(), I, H, gradient="fulll", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\['full', 'truncated'\].*'fulll'"):
        lnnx.CellModule(lstm_jax.lstm(), I, H, gradient="fulll", rngs=nnx.Rngs(0))
