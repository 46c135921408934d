"""flax.nnx wrappers (`lstm_jax.nn.nnx`): parity with `nnx.LSTMCell` / `nnx.GRUCell` inside
`nnx.RNN` with weights copied (float64); `RNN` equals `stacked` on its params, batch-major by
default, with several batch axes and lengths; gradients through `nnx.grad` equal `jax.grad` of
`stacked`; `nnx.Optimizer` with Adam trains both wrappers for many steps, eager and under
`nnx.jit`; flax's initialiser and `dtype` arguments; a wrong input size is a ValueError."""

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
        lstm_jax.unroll(ours, nnx.as_pure(module.params), xs, time_major=False)[1],
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
        nnx.as_pure(rnn.layers),
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


def test_nnx_grad_matches_stacked():
    """`nnx.grad` through the module is `jax.grad` of `stacked` on its params, one gradient
    leaf per params array."""
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
    )(nnx.as_pure(rnn.layers))
    laid_out = nnx.clone(rnn)  # the gradient in the module's own layout
    nnx.update(laid_out, grads)
    _close(nnx.as_pure(laid_out.layers), want, 1e-6)
    assert len(jax.tree.leaves(grads)) == len(jax.tree.leaves(want))


_TB, _TT, _TI, _TH = 4, 8, 3, 8  # the training task's shapes


def _regression(wrapper: str):
    """A model and its loss on a small regression task: fit `tanh(cumsum(x A) / 2)`."""
    xs = jax.random.normal(jax.random.key(1), (_TB, _TT, _TI))
    a = jax.random.normal(jax.random.key(2), (_TI, _TH))
    target = jnp.tanh(0.5 * jnp.cumsum(xs @ a, axis=1))
    if wrapper == "RNN":
        model = lnnx.RNN(lstm_jax.lstm(), _TI, _TH, rngs=nnx.Rngs(0))
        return model, lambda m: jnp.mean((m(xs)[1] - target) ** 2)
    module = lnnx.CellModule(lstm_jax.lstm(), _TI, _TH, rngs=nnx.Rngs(0))
    model = nnx.RNN(module, rngs=False)
    return model, lambda m: jnp.mean((m(xs) - target) ** 2)


def _train(wrapper: str, steps: int, jit: bool) -> list[float]:
    """The loss before each Adam step and after the last, one `nnx.Optimizer` throughout."""
    model, loss = _regression(wrapper)
    optimizer = nnx.Optimizer(model, optax.adam(5e-2), wrt=nnx.Param)

    def train_step(model, optimizer):
        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    step = nnx.jit(train_step) if jit else train_step
    losses = [float(step(model, optimizer)) for _ in range(steps)]
    return [*losses, float(loss(model))]


WRAPPERS = ["RNN", "nnx.RNN(CellModule)"]


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_optimizer_trains_for_many_steps_under_jit(wrapper):
    """50 Adam steps through `nnx.Optimizer` under `nnx.jit` (one variable per params array):
    the loss falls below a quarter of its start."""
    losses = _train(wrapper, 50, jit=True)
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.25 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_optimizer_trains_eagerly(wrapper):
    """Eager `nnx.Optimizer` steps, past the second (eager nnx.scan is slow: few steps): each
    lowers the loss."""
    losses = _train(wrapper, 3, jit=False)
    assert np.all(np.diff(losses) < 0), losses


def _gru_module(**kwargs):
    return lnnx.CellModule(lstm_jax.gru(), I, H, rngs=nnx.Rngs(0), **kwargs)


def test_initializers_draw_their_leaves_and_none_keeps_the_default():
    """`kernel_init` fills `w`, `recurrent_kernel_init` `r`, `bias_init` `b` and `b_rh`, for
    both wrappers and every layer; a leaf whose init is None is the cell's default draw."""
    const = nnx.initializers.constant(0.5)
    zeros, ones = nnx.initializers.zeros, nnx.initializers.ones
    inits = dict(kernel_init=const, recurrent_kernel_init=zeros, bias_init=ones)
    params = [nnx.as_pure(_gru_module(**inits).params)]
    layers = lnnx.RNN(
        lstm_jax.gru(), I, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0), **inits
    )
    params += [p for layer in nnx.as_pure(layers.layers) for p in layer]
    for p in params:
        np.testing.assert_array_equal(p.w, 0.5)
        np.testing.assert_array_equal(p.r, 0.0)
        np.testing.assert_array_equal(p.b, 1.0)
        np.testing.assert_array_equal(p.b_rh, 1.0)
    default = nnx.as_pure(_gru_module().params)
    only_bias = nnx.as_pure(_gru_module(bias_init=ones).params)
    _close(only_bias._replace(b=default.b, b_rh=default.b_rh), default, 0)


def test_initializers_keep_other_leaves_and_fit_any_kernel_shape():
    """Peepholes keep the cell's init; the sLSTM's `[4, NH, D, D]` recurrent kernel is drawn
    at its own shape; the mLSTM (no `r`) ignores `recurrent_kernel_init`."""
    zeros = nnx.initializers.zeros
    vanilla = lnnx.CellModule(lstm_jax.lstm("vanilla"), I, H, bias_init=zeros, rngs=nnx.Rngs(0))
    default = lnnx.CellModule(lstm_jax.lstm("vanilla"), I, H, rngs=nnx.Rngs(0))
    _close(nnx.as_pure(vanilla.params).p_f, nnx.as_pure(default.params).p_f, 0)
    np.testing.assert_array_equal(nnx.as_pure(vanilla.params).b, 0.0)
    slstm = lnnx.CellModule(
        lstm_jax.slstm(heads=2), I, H, recurrent_kernel_init=zeros, rngs=nnx.Rngs(0)
    )
    assert nnx.as_pure(slstm.params).r.shape == (4, 2, H // 2, H // 2)
    np.testing.assert_array_equal(nnx.as_pure(slstm.params).r, 0.0)
    mlstm = lnnx.CellModule(
        lstm_jax.mlstm(heads=2), I, H, recurrent_kernel_init=zeros, rngs=nnx.Rngs(0)
    )
    mlstm_default = lnnx.CellModule(lstm_jax.mlstm(heads=2), I, H, rngs=nnx.Rngs(0))
    _close(nnx.as_pure(mlstm.params), nnx.as_pure(mlstm_default.params), 0)
    with pytest.raises(ValueError, match=r"kernel_init gave shape \(2,\) for params.w"):
        _gru_module(kernel_init=lambda key, shape, dtype: jnp.zeros(2, dtype))


def test_dtype_computes_in_it_with_params_in_param_dtype():
    """`dtype=bfloat16`: bfloat16 outputs and carries, float32 params, the float32 numbers to
    bfloat16 precision; for `RNN` and for `CellModule` inside `nnx.RNN`."""
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    rnn = lnnx.RNN(lstm_jax.lstm(), I, H, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    finals, ys = rnn(xs)
    assert ys.dtype == jnp.bfloat16
    assert {a.dtype for a in jax.tree.leaves(finals)} == {jnp.dtype(jnp.bfloat16)}
    assert {a.dtype for a in jax.tree.leaves(nnx.state(rnn, nnx.Param))} == {jnp.dtype(jnp.float32)}
    full = lstm_jax.stacked(lstm_jax.lstm(), nnx.as_pure(rnn.layers), xs, time_major=False)[1]
    np.testing.assert_allclose(ys.astype(jnp.float32), full, atol=3e-2)

    module = _gru_module(dtype=jnp.bfloat16)
    assert module.initialize_carry((B, I)).dtype == jnp.bfloat16
    ys = nnx.RNN(module, rngs=False)(xs)
    assert ys.dtype == jnp.bfloat16 and module.params.w[...].dtype == jnp.float32
    full = lstm_jax.unroll(lstm_jax.gru(), nnx.as_pure(module.params), xs, time_major=False)[1]
    np.testing.assert_allclose(ys.astype(jnp.float32), full, atol=3e-2)


def test_cell_module_wrong_input_size_names_in_features():
    module = _gru_module()
    carry = module.initialize_carry((B, I))
    message = r"in_features=3 features \(the last axis\), got 5 \(inputs of shape \(2, 5\)\)"
    with pytest.raises(ValueError, match=message):
        module(carry, jnp.ones((B, 5)))
    with pytest.raises(ValueError, match=message):  # each step's inputs, [B, 5]
        nnx.RNN(module, rngs=False)(jnp.ones((B, T, 5)))


def test_bad_gradient_name_fails_at_construction():
    with pytest.raises(ValueError, match=r"\['full', 'truncated'\].*'fulll'"):
        lnnx.RNN(
            lstm_jax.lstm(),
            I,
            H,
            options=lstm_jax.UnrollOptions(gradient="fulll"),
            rngs=nnx.Rngs(0),
        )
    with pytest.raises(ValueError, match=r"\['full', 'truncated'\].*'fulll'"):
        lnnx.CellModule(lstm_jax.lstm(), I, H, gradient="fulll", rngs=nnx.Rngs(0))
