"""flax.linen interop: parity with its LSTM and GRU cells, and the lstm_jax.linen wrappers
(with flax's initialiser and `dtype` arguments)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax
from lstm_jax.nn import linen as lj

I, H, B, T = 3, 4, 2, 6


def _randomize(tree, key, scale=0.5):
    """Replaces every leaf with normal noise, so zero-initialised biases are exercised too."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    new = [
        scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)
    ]
    return jax.tree.unflatten(treedef, new)


def _flax_scan(module, variables, carry, xs):
    """Runs a flax cell over time-major `xs` with a Python loop."""
    ys = []
    for x in xs:
        carry, y = module.apply(variables, carry, x)
        ys.append(y)
    return carry, jnp.stack(ys)


def _flax_lstm_to_ours(fp):
    """flax LSTMCell params -> LSTMParams (blocks in LSTM_GATE_ORDER = i, f, z, o)."""
    names = {"i": "i", "f": "f", "z": "g", "o": "o"}
    order = [names[g] for g in lstm_jax.LSTM_GATE_ORDER]
    return lstm_jax.LSTMParams(
        w=jnp.concatenate([fp["i" + g]["kernel"] for g in order], axis=1),
        r=jnp.concatenate([fp["h" + g]["kernel"] for g in order], axis=1),
        b=jnp.concatenate([fp["h" + g]["bias"] for g in order]),
    )


def _flax_gru_to_ours(fp):
    """flax GRUCell params -> GRUParams (reset after); flax's z is our 1 - u, so negate it."""
    sign = {"r": 1.0, "z": -1.0, "n": 1.0}
    names = {"r": "r", "u": "z", "h": "n"}
    order = [names[g] for g in lstm_jax.GRU_GATE_ORDER]
    return lstm_jax.GRUParams(
        w=jnp.concatenate([sign[g] * fp["i" + g]["kernel"] for g in order], axis=1),
        r=jnp.concatenate([sign[g] * fp["h" + g]["kernel"] for g in order], axis=1),
        b=jnp.concatenate([sign[g] * fp["i" + g]["bias"] for g in order]),
        b_rh=fp["hn"]["bias"],
    )


def test_lstm_matches_flax_lstm_cell():
    """Outputs, final carry and input gradients agree with flax.linen.LSTMCell in float64."""
    with jax.enable_x64(True):
        k_init, k_rand, k_x, k_h, k_c = jax.random.split(jax.random.key(0), 5)
        module = nn.LSTMCell(H, param_dtype=jnp.float64)
        xs = jax.random.normal(k_x, (T, B, I), jnp.float64)
        c0 = jax.random.normal(k_c, (B, H), jnp.float64)
        h0 = jax.random.normal(k_h, (B, H), jnp.float64)
        variables = module.init(k_init, (c0, h0), xs[0])
        variables = {"params": _randomize(variables["params"], k_rand)}
        params = _flax_lstm_to_ours(variables["params"])
        assert params.w.shape == (I, 4 * H) and params.b.shape == (4 * H,)
        cell = lstm_jax.lstm("standard")

        (c_f, h_f), ys_f = _flax_scan(module, variables, (c0, h0), xs)
        carry, ys = lstm_jax.unroll(cell, params, xs, lstm_jax.LSTMCarry(h=h0, c=c0))
        assert ys.dtype == jnp.float64
        np.testing.assert_allclose(ys, ys_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(carry.h, h_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(carry.c, c_f, rtol=0, atol=1e-12)

        w_out = jax.random.normal(jax.random.key(1), (T, B, H), jnp.float64)

        def loss_flax(xs):
            (c, _), ys = _flax_scan(module, variables, (c0, h0), xs)
            return jnp.sum(w_out * ys) + jnp.sum(c**2)

        def loss_ours(xs):
            carry, ys = lstm_jax.unroll(cell, params, xs, lstm_jax.LSTMCarry(h=h0, c=c0))
            return jnp.sum(w_out * ys) + jnp.sum(carry.c**2)

        g_f, g = jax.jit(jax.grad(loss_flax))(xs), jax.grad(loss_ours)(xs)
        assert float(jnp.abs(g).max()) > 1e-3
        np.testing.assert_allclose(g, g_f, rtol=0, atol=1e-12)


def test_lstm_matches_flax_rnn_batch_major():
    """flax.linen.RNN(LSTMCell) over batch-major inputs equals unroll(time_major=False)."""
    with jax.enable_x64(True):
        k_init, k_rand, k_x, k_h, k_c = jax.random.split(jax.random.key(2), 5)
        module = nn.RNN(nn.LSTMCell(H, param_dtype=jnp.float64), return_carry=True)
        xs = jax.random.normal(k_x, (B, T, I), jnp.float64)
        c0 = jax.random.normal(k_c, (B, H), jnp.float64)
        h0 = jax.random.normal(k_h, (B, H), jnp.float64)
        variables = module.init(k_init, xs, initial_carry=(c0, h0))
        variables = {"params": _randomize(variables["params"], k_rand)}
        (c_f, h_f), ys_f = module.apply(variables, xs, initial_carry=(c0, h0))
        params = _flax_lstm_to_ours(variables["params"]["cell"])
        carry, ys = lstm_jax.unroll(
            lstm_jax.lstm(), params, xs, lstm_jax.LSTMCarry(h0, c0), time_major=False
        )
        np.testing.assert_allclose(ys, ys_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(carry.h, h_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(carry.c, c_f, rtol=0, atol=1e-12)


def test_gru_matches_flax_gru_cell():
    """gru(reset_after=True) with flax's z block negated equals flax.linen.GRUCell."""
    with jax.enable_x64(True):
        k_init, k_rand, k_x, k_h = jax.random.split(jax.random.key(3), 4)
        module = nn.GRUCell(H, param_dtype=jnp.float64)
        xs = jax.random.normal(k_x, (T, B, I), jnp.float64)
        h0 = jax.random.normal(k_h, (B, H), jnp.float64)
        variables = module.init(k_init, h0, xs[0])
        variables = {"params": _randomize(variables["params"], k_rand)}
        params = _flax_gru_to_ours(variables["params"])
        cell = lstm_jax.gru(reset_after=True)

        h_f, ys_f = _flax_scan(module, variables, h0, xs)
        h, ys = lstm_jax.unroll(cell, params, xs, h0)
        np.testing.assert_allclose(ys, ys_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(h, h_f, rtol=0, atol=1e-12)

        def loss_flax(xs):
            return jnp.sum(jnp.sin(_flax_scan(module, variables, h0, xs)[1]))

        def loss_ours(xs):
            return jnp.sum(jnp.sin(lstm_jax.unroll(cell, params, xs, h0)[1]))

        np.testing.assert_allclose(
            jax.grad(loss_ours)(xs), jax.jit(jax.grad(loss_flax))(xs), rtol=0, atol=1e-12
        )


def test_gru_without_negation_differs():
    """Sanity check of the mapping: copying flax's z block unnegated gives other outputs."""
    k_init, k_rand, k_x = jax.random.split(jax.random.key(4), 3)
    module = nn.GRUCell(H)
    xs = jax.random.normal(k_x, (T, B, I))
    variables = module.init(k_init, jnp.zeros((B, H)), xs[0])
    variables = {"params": _randomize(variables["params"], k_rand)}
    params = _flax_gru_to_ours(variables["params"])
    _, ys_f = _flax_scan(module, variables, jnp.zeros((B, H)), xs)
    flip = jnp.concatenate([jnp.ones(H), -jnp.ones(H), jnp.ones(H)])
    wrong = params._replace(w=params.w * flip, r=params.r * flip, b=params.b * flip)
    _, ys_ok = lstm_jax.unroll(lstm_jax.gru(), params, xs)
    _, ys_wrong = lstm_jax.unroll(lstm_jax.gru(), wrong, xs)
    np.testing.assert_allclose(ys_ok, ys_f, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(ys_wrong - ys_f).max()) > 1e-2


CELLS = {
    "lstm": lambda: lstm_jax.lstm(),
    "lstm_vanilla": lambda: lstm_jax.lstm("vanilla"),
    "gru": lambda: lstm_jax.gru(),
    "gru_reset_before": lambda: lstm_jax.gru(reset_after=False),
    "rnn": lambda: lstm_jax.rnn(),
}


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("gradient", ["full", "truncated"])
def test_cell_module_in_flax_rnn_matches_unroll(name, gradient):
    """CellModule inside flax.linen.RNN: its params fed to unroll give the same outputs."""
    cell = CELLS[name]()
    module = nn.RNN(lj.CellModule(cell, H, gradient=gradient), return_carry=True)
    xs = jax.random.normal(jax.random.key(5), (B, T, I))
    variables = module.init(jax.random.key(6), xs)
    params = variables["params"]["cell"]["cell"]
    assert type(params) is type(cell.init(jax.random.key(0), I, H))
    carry_m, ys_m = module.apply(variables, xs)
    carry, ys = lstm_jax.unroll(cell, params, xs, time_major=False, gradient=gradient)
    assert ys.shape == (B, T, H)
    np.testing.assert_allclose(ys, ys_m, rtol=1e-6, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), carry, carry_m
    )


@pytest.mark.parametrize(
    "cell",
    [lstm_jax.slstm(heads=2), lstm_jax.mlstm(heads=2), lstm_jax.mingru(), lstm_jax.minlstm()],
    ids=["slstm", "mlstm", "mingru", "minlstm"],
)
def test_modern_cells_in_flax(cell):
    """The modern cells as a CellModule inside flax.linen.RNN, and as lstm_jax.linen.RNN with
    their parallel form where they have one: the same outputs as `unroll` on the same params."""
    xs = jax.random.normal(jax.random.key(5), (B, T, I))
    module = nn.RNN(lj.CellModule(cell, H), return_carry=True)
    variables = module.init(jax.random.key(6), xs)
    _, ys_m = module.apply(variables, xs)
    _, ys = lstm_jax.unroll(cell, variables["params"]["cell"]["cell"], xs, time_major=False)
    np.testing.assert_allclose(ys, ys_m, rtol=1e-6, atol=1e-6)
    if cell.parallel is not None:
        layer = lj.RNN(cell, H, num_layers=2, impl="parallel")
        variables = layer.init(jax.random.key(7), xs)
        _, ys_m = layer.apply(variables, xs)
        _, ys = lstm_jax.stacked(
            cell, variables["params"]["layers"], xs, impl="scan", time_major=False
        )
        np.testing.assert_allclose(ys, ys_m, rtol=1e-5, atol=1e-6)


def test_cell_module_initialize_carry_matches_initial_carry():
    """CellModule.initialize_carry is the cell's zero carry for the batch shape."""
    cell = lstm_jax.lstm()
    carry = lj.CellModule(cell, H).initialize_carry(jax.random.key(0), (B, I))
    expected = cell.initial_carry((B,), H)
    assert jax.tree.structure(carry) == jax.tree.structure(expected)
    jax.tree.map(np.testing.assert_array_equal, carry, expected)


def test_cell_module_truncated_gradient_differs_for_elman():
    """gradient="truncated" keeps forward values but changes the Elman input gradient."""
    cell = lstm_jax.rnn()
    xs = jax.random.normal(jax.random.key(7), (B, T, I))
    full = nn.RNN(lj.CellModule(cell, H, gradient="full"))
    trunc = nn.RNN(lj.CellModule(cell, H, gradient="truncated"))
    variables = full.init(jax.random.key(8), xs)

    np.testing.assert_allclose(
        trunc.apply(variables, xs), full.apply(variables, xs), rtol=1e-6, atol=1e-6
    )

    def grad_xs(module):
        return jax.grad(lambda xs: jnp.sum(module.apply(variables, xs)))(xs)

    g_full, g_trunc = grad_xs(full), grad_xs(trunc)
    assert float(jnp.abs(g_full - g_trunc).max()) > 1e-3
    # The last step has no future, so its input gradient is the same in both modes.
    np.testing.assert_allclose(g_trunc[:, -1], g_full[:, -1], rtol=1e-5, atol=1e-6)

    # And both agree with the functional API.
    params = variables["params"]["cell"]["cell"]
    for mode, g_module in [("full", g_full), ("truncated", g_trunc)]:
        g = jax.grad(
            lambda xs, mode=mode: jnp.sum(
                lstm_jax.unroll(cell, params, xs, time_major=False, gradient=mode)[1]
            )
        )(xs)
        np.testing.assert_allclose(g, g_module, rtol=1e-5, atol=1e-6)


def _assert_tree_close(a, b, tol=1e-6):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


@pytest.mark.parametrize(
    ("name", "num_layers", "bidirectional", "use_lengths"),
    [
        ("lstm", 1, False, False),
        ("lstm", 2, True, True),
        ("gru", 2, False, True),
        ("rnn", 2, True, False),
    ],
)
def test_linen_rnn_matches_stacked(name, num_layers, bidirectional, use_lengths):
    """lstm_jax.linen.RNN equals lstm_jax.stacked on variables["params"]["layers"]."""
    cell = CELLS[name]()
    module = lj.RNN(cell, H, num_layers=num_layers, bidirectional=bidirectional, time_major=True)
    xs = jax.random.normal(jax.random.key(9), (T, B, I))
    lengths = jnp.array([T, T - 2]) if use_lengths else None
    variables = module.init(jax.random.key(10), xs, lengths=lengths)
    layers = variables["params"]["layers"]
    assert isinstance(layers, tuple) and len(layers) == num_layers
    if bidirectional:
        assert all(isinstance(layer, tuple) and len(layer) == 2 for layer in layers)

    carries_m, ys_m = module.apply(variables, xs, lengths=lengths)
    carries, ys = lstm_jax.stacked(cell, layers, xs, bidirectional=bidirectional, lengths=lengths)
    assert ys.shape == (T, B, H * (2 if bidirectional else 1))
    np.testing.assert_allclose(ys, ys_m, rtol=1e-6, atol=1e-6)
    _assert_tree_close(carries, carries_m)
    if use_lengths:
        np.testing.assert_array_equal(ys[T - 2 :, 1], 0.0)


def test_linen_rnn_grad_through_apply():
    """jax.grad through module.apply gives the gradient of stacked, for params and inputs."""
    cell = lstm_jax.lstm()
    module = lj.RNN(cell, H, num_layers=2, bidirectional=True, time_major=False)
    xs = jax.random.normal(jax.random.key(11), (B, T, I))
    lengths = jnp.array([T - 1, 3])
    variables = module.init(jax.random.key(12), xs, lengths=lengths)

    def loss_module(variables, xs):
        return jnp.sum(jnp.tanh(module.apply(variables, xs, lengths=lengths)[1]))

    def loss_stacked(layers, xs):
        _, ys = lstm_jax.stacked(
            cell, layers, xs, bidirectional=True, lengths=lengths, time_major=False
        )
        return jnp.sum(jnp.tanh(ys))

    g_vars, g_xs_m = jax.grad(loss_module, argnums=(0, 1))(variables, xs)
    g_layers, g_xs = jax.grad(loss_stacked, argnums=(0, 1))(variables["params"]["layers"], xs)
    _assert_tree_close(g_vars["params"]["layers"], g_layers, tol=1e-5)
    np.testing.assert_allclose(g_xs, g_xs_m, rtol=1e-5, atol=1e-6)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(g_vars))
    assert float(jnp.abs(g_layers[0][0].w).max()) > 0
    # Padded steps get no gradient.
    np.testing.assert_array_equal(g_xs[1, 3:], 0.0)


def test_linen_rnn_initial_carries_are_used():
    """carries passed to the module reach every layer, as in stacked."""
    cell = lstm_jax.gru()
    module = lj.RNN(cell, H, num_layers=2, time_major=True)
    xs = jax.random.normal(jax.random.key(13), (T, B, I))
    variables = module.init(jax.random.key(14), xs)
    carries = tuple(jax.random.normal(k, (B, H)) for k in jax.random.split(jax.random.key(15), 2))
    _, ys_m = module.apply(variables, xs, carries)
    _, ys = lstm_jax.stacked(cell, variables["params"]["layers"], xs, carries)
    _, ys_zero = module.apply(variables, xs)
    np.testing.assert_allclose(ys, ys_m, rtol=1e-6, atol=1e-6)
    assert float(jnp.abs(ys_m - ys_zero).max()) > 1e-3


def test_linen_initializers_draw_their_leaves_and_none_keeps_the_default():
    """`kernel_init` fills `w`, `recurrent_kernel_init` `r`, `bias_init` `b` and `b_rh`, in
    `RNN` (every layer and direction) and in `CellModule`; leaves whose init is None are the
    cell's default draw."""
    inits = dict(
        kernel_init=nn.initializers.constant(0.5),
        recurrent_kernel_init=nn.initializers.zeros,
        bias_init=nn.initializers.ones,
    )
    xs = jax.random.normal(jax.random.key(16), (B, T, I))
    layer = lj.RNN(lstm_jax.gru(), H, num_layers=2, bidirectional=True, **inits)
    params = [p for pair in layer.init(jax.random.key(0), xs)["params"]["layers"] for p in pair]
    cell_rnn = nn.RNN(lj.CellModule(lstm_jax.gru(), H, **inits))
    params.append(cell_rnn.init(jax.random.key(0), xs)["params"]["cell"]["cell"])
    for p in params:
        np.testing.assert_array_equal(p.w, 0.5)
        np.testing.assert_array_equal(p.r, 0.0)
        np.testing.assert_array_equal(p.b, 1.0)
        np.testing.assert_array_equal(p.b_rh, 1.0)
    default = lj.RNN(lstm_jax.gru(), H).init(jax.random.key(0), xs)["params"]["layers"][0]
    only_bias = lj.RNN(lstm_jax.gru(), H, bias_init=nn.initializers.ones)
    got = only_bias.init(jax.random.key(0), xs)["params"]["layers"][0]
    _assert_tree_close(got._replace(b=default.b, b_rh=default.b_rh), default, tol=0)


def test_linen_dtype_computes_in_it_with_params_in_param_dtype():
    """`dtype=bfloat16`: bfloat16 outputs, float32 params, the float32 numbers to bfloat16
    precision; for `RNN` and for `CellModule` inside `flax.linen.RNN`."""
    xs = jax.random.normal(jax.random.key(17), (B, T, I))
    layer = lj.RNN(lstm_jax.lstm(), H, dtype=jnp.bfloat16)
    variables = layer.init(jax.random.key(0), xs)
    finals, ys = layer.apply(variables, xs)
    assert ys.dtype == jnp.bfloat16
    assert {a.dtype for a in jax.tree.leaves(finals)} == {jnp.dtype(jnp.bfloat16)}
    assert {a.dtype for a in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    layers = variables["params"]["layers"]
    full = lstm_jax.stacked(lstm_jax.lstm(), layers, xs, time_major=False)[1]
    np.testing.assert_allclose(ys.astype(jnp.float32), full, atol=3e-2)

    rnn = nn.RNN(lj.CellModule(lstm_jax.gru(), H, dtype=jnp.bfloat16))
    variables = rnn.init(jax.random.key(0), xs)
    ys = rnn.apply(variables, xs)
    assert ys.dtype == jnp.bfloat16
    assert {a.dtype for a in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    params = variables["params"]["cell"]["cell"]
    full = lstm_jax.unroll(lstm_jax.gru(), params, xs, time_major=False)[1]
    np.testing.assert_allclose(ys.astype(jnp.float32), full, atol=3e-2)
