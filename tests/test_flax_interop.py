"""flax.linen interop: parity with its LSTM and GRU cells, and the lstm_jax.linen wrappers
(with flax's initialiser and `dtype` arguments)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, host

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
        module = nn.LSTMCell(H, param_dtype=jnp.float64)
        cell = lstm_jax.lstm("standard")

        @jax.jit
        def flax_and_ours(key):
            """Both nets' outputs and input gradients on flax's randomised params: one program."""
            k_init, k_rand, k_x, k_h, k_c = jax.random.split(key, 5)
            xs = jax.random.normal(k_x, (T, B, I), jnp.float64)
            c0 = jax.random.normal(k_c, (B, H), jnp.float64)
            h0 = jax.random.normal(k_h, (B, H), jnp.float64)
            variables = module.init(k_init, (c0, h0), xs[0])
            variables = {"params": _randomize(variables["params"], k_rand)}
            params = _flax_lstm_to_ours(variables["params"])
            w_out = jax.random.normal(jax.random.key(1), (T, B, H), jnp.float64)

            def loss_flax(xs):
                (c, _), ys = _flax_scan(module, variables, (c0, h0), xs)
                return jnp.sum(w_out * ys) + jnp.sum(c**2)

            def loss_ours(xs):
                carry, ys = lstm_jax.unroll(cell, params, xs, lstm_jax.LSTMCarry(h=h0, c=c0))
                return jnp.sum(w_out * ys) + jnp.sum(carry.c**2)

            theirs = _flax_scan(module, variables, (c0, h0), xs)
            ours = lstm_jax.unroll(cell, params, xs, lstm_jax.LSTMCarry(h=h0, c=c0))
            return params, theirs, ours, (jax.grad(loss_flax)(xs), jax.grad(loss_ours)(xs))

        params, ((c_f, h_f), ys_f), (carry, ys), (g_f, g) = host(flax_and_ours(jax.random.key(0)))
        assert params.w.shape == (I, 4 * H) and params.b.shape == (4 * H,)
        assert ys.dtype == jnp.float64
        np.testing.assert_allclose(ys, ys_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(carry.h, h_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(carry.c, c_f, rtol=0, atol=1e-12)
        assert float(np.abs(g).max()) > 1e-3
        np.testing.assert_allclose(g, g_f, rtol=0, atol=1e-12)


def test_lstm_matches_flax_rnn_batch_major():
    """flax.linen.RNN(LSTMCell) over batch-major inputs equals unroll(time_major=False)."""
    with jax.enable_x64(True):
        module = nn.RNN(nn.LSTMCell(H, param_dtype=jnp.float64), return_carry=True)

        @jax.jit
        def flax_and_ours(key):
            k_init, k_rand, k_x, k_h, k_c = jax.random.split(key, 5)
            xs = jax.random.normal(k_x, (B, T, I), jnp.float64)
            c0 = jax.random.normal(k_c, (B, H), jnp.float64)
            h0 = jax.random.normal(k_h, (B, H), jnp.float64)
            variables = module.init(k_init, xs, initial_carry=(c0, h0))
            variables = {"params": _randomize(variables["params"], k_rand)}
            theirs = module.apply(variables, xs, initial_carry=(c0, h0))
            params = _flax_lstm_to_ours(variables["params"]["cell"])
            ours = lstm_jax.unroll(
                lstm_jax.lstm(), params, xs, lstm_jax.LSTMCarry(h0, c0), time_major=False
            )
            return theirs, ours

        ((c_f, h_f), ys_f), (carry, ys) = host(flax_and_ours(jax.random.key(2)))
        np.testing.assert_allclose(ys, ys_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(carry.h, h_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(carry.c, c_f, rtol=0, atol=1e-12)


def test_gru_matches_flax_gru_cell():
    """gru(reset_after=True) with flax's z block negated equals flax.linen.GRUCell."""
    with jax.enable_x64(True):
        module = nn.GRUCell(H, param_dtype=jnp.float64)
        cell = lstm_jax.gru(reset_after=True)

        @jax.jit
        def flax_and_ours(key):
            k_init, k_rand, k_x, k_h = jax.random.split(key, 4)
            xs = jax.random.normal(k_x, (T, B, I), jnp.float64)
            h0 = jax.random.normal(k_h, (B, H), jnp.float64)
            variables = module.init(k_init, h0, xs[0])
            variables = {"params": _randomize(variables["params"], k_rand)}
            params = _flax_gru_to_ours(variables["params"])

            def loss_flax(xs):
                return jnp.sum(jnp.sin(_flax_scan(module, variables, h0, xs)[1]))

            def loss_ours(xs):
                return jnp.sum(jnp.sin(lstm_jax.unroll(cell, params, xs, h0)[1]))

            theirs, ours = (
                _flax_scan(module, variables, h0, xs),
                lstm_jax.unroll(cell, params, xs, h0),
            )
            return theirs, ours, (jax.grad(loss_flax)(xs), jax.grad(loss_ours)(xs))

        (h_f, ys_f), (h, ys), (g_f, g) = host(flax_and_ours(jax.random.key(3)))
        np.testing.assert_allclose(ys, ys_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(h, h_f, rtol=0, atol=1e-12)
        np.testing.assert_allclose(g, g_f, rtol=0, atol=1e-12)


def test_gru_without_negation_differs():
    """Sanity check of the mapping: copying flax's z block unnegated gives other outputs."""
    module = nn.GRUCell(H)

    @jax.jit
    def flax_right_and_wrong(key):
        k_init, k_rand, k_x = jax.random.split(key, 3)
        xs = jax.random.normal(k_x, (T, B, I))
        variables = module.init(k_init, jnp.zeros((B, H)), xs[0])
        variables = {"params": _randomize(variables["params"], k_rand)}
        params = _flax_gru_to_ours(variables["params"])
        _, ys_f = _flax_scan(module, variables, jnp.zeros((B, H)), xs)
        flip = jnp.concatenate([jnp.ones(H), -jnp.ones(H), jnp.ones(H)])
        wrong = params._replace(w=params.w * flip, r=params.r * flip, b=params.b * flip)
        _, ys_ok = lstm_jax.unroll(lstm_jax.gru(), params, xs)
        _, ys_wrong = lstm_jax.unroll(lstm_jax.gru(), wrong, xs)
        return ys_f, ys_ok, ys_wrong

    ys_f, ys_ok, ys_wrong = host(flax_right_and_wrong(jax.random.key(4)))
    np.testing.assert_allclose(ys_ok, ys_f, rtol=1e-5, atol=1e-6)
    assert float(np.abs(ys_wrong - ys_f).max()) > 1e-2


CELLS = {
    "lstm": lambda: lstm_jax.lstm(),
    "lstm_vanilla": lambda: lstm_jax.lstm("vanilla"),
    "gru": lambda: lstm_jax.gru(),
    "gru_reset_before": lambda: lstm_jax.gru(reset_after=False),
    "rnn": lambda: lstm_jax.rnn(),
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_module_in_flax_rnn_matches_unroll(name):
    """CellModule inside flax.linen.RNN: its params fed to unroll give the same outputs, for
    either gradient mode (both in one compiled program)."""
    cell = CELLS[name]()

    @jax.jit
    def module_and_unroll(xs):
        out = {}
        for gradient in ("full", "truncated"):
            module = nn.RNN(lj.CellModule(cell, H, gradient=gradient), return_carry=True)
            variables = module.init(jax.random.key(6), xs)
            params = variables["params"]["cell"]["cell"]
            ours = lstm_jax.unroll(cell, params, xs, time_major=False, gradient=gradient)
            out[gradient] = params, module.apply(variables, xs), ours
        return out

    results = module_and_unroll(jax.random.normal(jax.random.key(5), (B, T, I)))
    for gradient, (params, (carry_m, ys_m), (carry, ys)) in results.items():
        assert type(params) is type(jax.eval_shape(lambda: cell.init(jax.random.key(0), I, H)))
        assert ys.shape == (B, T, H)
        assert_close(ys, ys_m, rtol=1e-6, atol=1e-6, what=gradient)
        assert_close(carry, carry_m, rtol=1e-6, atol=1e-6, what=gradient)


@pytest.mark.parametrize(
    "cell",
    [lstm_jax.slstm(heads=2), lstm_jax.mlstm(heads=2), lstm_jax.mingru(), lstm_jax.minlstm()],
    ids=["slstm", "mlstm", "mingru", "minlstm"],
)
def test_modern_cells_in_flax(cell):
    """The modern cells as a CellModule inside flax.linen.RNN, and as lstm_jax.linen.RNN with
    their parallel form where they have one: the same outputs as `unroll` on the same params."""
    module = nn.RNN(lj.CellModule(cell, H), return_carry=True)

    @jax.jit
    def modules_and_functional(xs):
        """The CellModule's outputs and unroll's; the parallel RNN's and the scan's."""
        variables = module.init(jax.random.key(6), xs)
        _, ys_m = module.apply(variables, xs)
        _, ys = lstm_jax.unroll(cell, variables["params"]["cell"]["cell"], xs, time_major=False)
        if cell.parallel is None:
            return (ys, ys_m), None
        layer = lj.RNN(cell, H, num_layers=2, options=lstm_jax.UnrollOptions(impl="parallel"))
        variables = layer.init(jax.random.key(7), xs)
        _, layer_ys_m = layer.apply(variables, xs)
        _, layer_ys = lstm_jax.stacked(
            cell,
            variables["params"]["layers"],
            xs,
            options=lstm_jax.UnrollOptions(impl="scan"),
            time_major=False,
        )
        return (ys, ys_m), (layer_ys, layer_ys_m)

    cell_module, parallel = modules_and_functional(jax.random.normal(jax.random.key(5), (B, T, I)))
    np.testing.assert_allclose(*cell_module, rtol=1e-6, atol=1e-6)
    assert (parallel is None) == (cell.parallel is None)
    if parallel is not None:
        np.testing.assert_allclose(*parallel, rtol=1e-5, atol=1e-6)


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
    full = nn.RNN(lj.CellModule(cell, H, gradient="full"))
    trunc = nn.RNN(lj.CellModule(cell, H, gradient="truncated"))

    @jax.jit
    def outputs_and_gradients(xs):
        """Both modules' outputs and input gradients, and the functional API's gradients."""
        variables = full.init(jax.random.key(8), xs)

        def grad_xs(module):
            return jax.grad(lambda xs: jnp.sum(module.apply(variables, xs)))(xs)

        params = variables["params"]["cell"]["cell"]
        functional = [
            jax.grad(
                lambda xs, mode=mode: jnp.sum(
                    lstm_jax.unroll(cell, params, xs, time_major=False, gradient=mode)[1]
                )
            )(xs)
            for mode in ("full", "truncated")
        ]
        outputs = (trunc.apply(variables, xs), full.apply(variables, xs))
        return outputs, (grad_xs(full), grad_xs(trunc)), functional

    outputs, (g_full, g_trunc), functional = host(
        outputs_and_gradients(jax.random.normal(jax.random.key(7), (B, T, I)))
    )
    np.testing.assert_allclose(*outputs, rtol=1e-6, atol=1e-6)
    assert float(np.abs(g_full - g_trunc).max()) > 1e-3
    # The last step has no future, so its input gradient is the same in both modes.
    np.testing.assert_allclose(g_trunc[:, -1], g_full[:, -1], rtol=1e-5, atol=1e-6)

    # And both agree with the functional API.
    for g, g_module in zip(functional, (g_full, g_trunc), strict=True):
        np.testing.assert_allclose(g, g_module, rtol=1e-5, atol=1e-6)


def _assert_tree_close(a, b, tol=1e-6):
    assert_close(a, b, rtol=tol, atol=tol)


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
    layer = lj.RNN(lstm_jax.gru(), H, num_layers=2, bidirectional=True, **inits)
    cell_rnn = nn.RNN(lj.CellModule(lstm_jax.gru(), H, **inits))
    only_bias = lj.RNN(lstm_jax.gru(), H, bias_init=nn.initializers.ones)

    @jax.jit
    def inits_(xs):
        """Every module's params from key 0: one program."""
        params = [p for pair in layer.init(jax.random.key(0), xs)["params"]["layers"] for p in pair]
        params.append(cell_rnn.init(jax.random.key(0), xs)["params"]["cell"]["cell"])
        default = lj.RNN(lstm_jax.gru(), H).init(jax.random.key(0), xs)["params"]["layers"][0]
        got = only_bias.init(jax.random.key(0), xs)["params"]["layers"][0]
        return params, default, got

    params, default, got = host(inits_(jax.random.normal(jax.random.key(16), (B, T, I))))
    for p in params:
        np.testing.assert_array_equal(p.w, 0.5)
        np.testing.assert_array_equal(p.r, 0.0)
        np.testing.assert_array_equal(p.b, 1.0)
        np.testing.assert_array_equal(p.b_rh, 1.0)
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
