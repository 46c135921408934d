"""Cells against independent NumPy references of their equations (`lstm_jax/cells/`), and
the scan against a Python loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    CELL_IDS,
    CELLS,
    EXTRA_CELLS,
    assert_close,
    flat,
    host,
    init,
    normal,
    random_carry,
    random_params,
)
from reference import run

import lstm_jax
from lstm_jax.cells.lstm import trace_parts

T, B, I, H = 5, 3, 3, 4


@pytest.mark.parametrize(
    ("name", "kind", "cell"), CELLS + EXTRA_CELLS, ids=CELL_IDS + [c[0] for c in EXTRA_CELLS]
)
def test_unroll_matches_spec_reference(x64, name, kind, cell):
    k_p, k_c, k_x = jax.random.split(jax.random.key(0), 3)
    params = random_params(cell, k_p, I, H)
    carry = random_carry(cell, k_c, (B,), H)
    xs = normal(k_x, (T, B, I))
    final, ys = lstm_jax.unroll(cell, params, xs, carry)
    assert ys.shape == (T, B, H) and ys.dtype == jnp.float64
    params, carry, xs, final, ys = host((params, carry, xs, final, ys))  # rows read on the host
    for b in range(B):
        carry_b = jax.tree.map(lambda a, b=b: a[b], carry)
        ref_ys, ref_final = run(kind, cell.options, params, xs[:, b], carry_b)
        got_final = tuple(jax.tree.leaves(jax.tree.map(lambda a, b=b: a[b], final)))
        assert_close((ys[:, b], got_final), (ref_ys, ref_final), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("name", "kind", "cell"), CELLS, ids=CELL_IDS)
def test_scan_equals_python_loop_and_jit_equals_eager(name, kind, cell):
    k_p, k_c, k_x = jax.random.split(jax.random.key(1), 3)
    params = random_params(cell, k_p, I, H, jnp.float32)
    carry = random_carry(cell, k_c, (B,), H, jnp.float32)
    xs = normal(k_x, (T, B, I), jnp.float32)
    loop_carry, loop_ys = carry, []
    for x in xs:  # eagerly, op by op (the ops the disabled-jit unroll below runs again)
        loop_carry, y = cell.step(params, loop_carry, x)
        loop_ys.append(y)
    loop = (loop_carry, jnp.stack(loop_ys))
    # forward values never depend on the gradient mode; one compiled program for both
    jitted = jax.jit(
        lambda p, c, x: [lstm_jax.unroll(cell, p, x, c, gradient=m) for m in ("full", "truncated")]
    )(params, carry, xs)
    for got in jitted:
        assert_close(got, loop, rtol=1e-5, atol=1e-6)
    with jax.disable_jit():
        eager = lstm_jax.unroll(cell, params, xs, carry)
    assert_close(jitted[0], eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "kind", "cell"), CELLS, ids=CELL_IDS)
def test_unbatched_sequence_equals_a_batch_row(name, kind, cell):
    params = random_params(cell, jax.random.key(2), I, H, jnp.float32)
    xs = normal(jax.random.key(3), (T, B, I), jnp.float32)
    (final, ys), (final1, ys1) = host(
        jax.jit(lambda p, x: (lstm_jax.unroll(cell, p, x), lstm_jax.unroll(cell, p, x[:, 1])))(
            params, xs
        )
    )
    assert ys1.shape == (T, H)
    assert_close(ys1, ys[:, 1], rtol=1e-6, atol=1e-6)
    assert_close(final1, jax.tree.map(lambda a: a[1], final), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("variant", "gates", "peepholes"),
    [
        ("standard", ("i", "f", "z", "o"), ()),
        ("vanilla", ("i", "f", "z", "o"), ("i", "f", "o")),
        ("NIG", ("f", "z", "o"), ("f", "o")),
        ("NFG", ("i", "z", "o"), ("i", "o")),
        ("NOG", ("i", "f", "z"), ("i", "f")),
        ("NIAF", ("i", "f", "z", "o"), ("i", "f", "o")),
        ("NOAF", ("i", "f", "z", "o"), ("i", "f", "o")),
        ("NP", ("i", "f", "z", "o"), ()),
        ("CIFG", ("i", "z", "o"), ("i", "o")),
        ("FGR", ("i", "f", "z", "o"), ("i", "f", "o")),
        ("1997", ("i", "z", "o"), ()),
    ],
)
def test_variant_param_layout(variant, gates, peepholes):
    cell = lstm_jax.lstm(variant)
    assert cell.options.gates == gates
    params = cell.init(jax.random.key(0), I, H)
    G = len(gates)
    assert (
        params.w.shape == (I, G * H) and params.r.shape == (H, G * H) and params.b.shape == (G * H,)
    )
    for gate in "ifo":
        assert (getattr(params, f"p_{gate}") is not None) == (gate in peepholes)
    assert (params.r_gate is not None) == (variant == "FGR")
    if variant == "FGR":  # nine extra H x H matrices (Greff et al. 2015)
        assert params.r_gate.shape == (3 * H, 3 * H)
    b = params.b.reshape(G, H)
    for n, gate in enumerate(gates):  # forget bias 1.0 by default, every other bias 0
        np.testing.assert_array_equal(b[n], 1.0 if gate == "f" else 0.0)


def test_variant_semantics_fix_the_removed_gates():
    """NIG/NFG/NOG hold their gate at 1, CIFG ties f = 1 - i, 1997 uses the scaled squashes."""
    from lstm_jax.cells.lstm.step import parts

    x = normal(jax.random.key(0), (B, I), jnp.float32)
    for variant, check in {
        "NIG": lambda p: np.testing.assert_array_equal(p.i, 1.0),
        "NFG": lambda p: np.testing.assert_array_equal(p.f, 1.0),
        "NOG": lambda p: np.testing.assert_array_equal(p.o, 1.0),
        "CIFG": lambda p: np.testing.assert_allclose(p.f, 1.0 - p.i, rtol=1e-6),
        "NOAF": lambda p: np.testing.assert_allclose(p.h, p.o * p.c, rtol=1e-6),
        "NIAF": lambda p: np.testing.assert_allclose(p.z, p.z_pre, rtol=1e-6),
        "1997": lambda p: (
            np.testing.assert_array_equal(p.f, 1.0),
            np.testing.assert_allclose(p.z, 4 * jax.nn.sigmoid(p.z_pre) - 2, rtol=1e-6),
            np.testing.assert_allclose(p.h, p.o * (2 * jax.nn.sigmoid(p.c) - 1), rtol=1e-6),
        ),
    }.items():
        cell = lstm_jax.lstm(variant)
        params = random_params(cell, jax.random.key(1), I, H, jnp.float32)
        carry = random_carry(cell, jax.random.key(2), (B,), H, jnp.float32)
        check(parts(cell.options, params, carry, x))  # eagerly: 1 - i is 1 - i bit for bit


def test_chrono_initialisation():
    t_max = 40
    cell = lstm_jax.lstm(chrono=t_max)
    b = np.asarray(init(cell, jax.random.key(0), I, 256).b).reshape(4, 256)
    b_i, b_f = b[0], b[1]
    assert float(b_f.min()) >= 0.0 and float(b_f.max()) <= np.log(t_max - 1)
    assert float(b_f.max()) > np.log(t_max - 1) - 0.5  # spread over the range, not constant
    np.testing.assert_array_equal(b_i, -b_f)


def test_uniform_initialisation_covers_every_weight_and_bias():
    """init_range=a (1997: 0.1): w, r, b, peepholes all U(±a), biases included."""
    params = init(
        lstm_jax.lstm("vanilla", init_range=0.1, forget_bias=None), jax.random.key(0), 8, 64
    )
    for name, leaf in params._asdict().items():
        if leaf is not None:
            leaf = np.asarray(leaf)
            assert np.abs(leaf).max() <= 0.1, name
            assert np.abs(leaf).max() > 0.09 and leaf.std() > 0.05, name  # spread, not constant


def test_memory_blocks_share_gates_and_take_per_block_biases():
    """1997 §5.4: 2 blocks of 2 cells, input-gate biases -3 and -6; the cells of a block see
    one input and one output gate; Gers et al. 2000: one forget bias per block."""
    cell = lstm_jax.lstm("1997", block_size=2, init_range=0.1, input_bias=(-3.0, -6.0))
    params = host(init(cell, jax.random.key(0), 2, 4))
    assert params.w.shape == (2, 2 + 4 + 2) and params.r.shape == (4, 8)  # i: 2, z: 4, o: 2
    np.testing.assert_array_equal(params.b[:2], [-3.0, -6.0])
    assert np.abs(np.asarray(params.b[2:])).max() <= 0.1  # z and o biases drawn U(±0.1)
    xs = normal(jax.random.key(1), (5, 3, 2), jnp.float32)
    p = host(trace_parts(cell, params, xs, cell.initial_carry((3,), 4)))
    for gate in (p.i, p.o):
        np.testing.assert_array_equal(gate[..., 0], gate[..., 1])
        np.testing.assert_array_equal(gate[..., 2], gate[..., 3])
        assert not np.allclose(gate[..., 1], gate[..., 2])
    assert not np.allclose(p.z[..., 0], p.z[..., 1])  # each cell has its own input
    b = lstm_jax.lstm(block_size=2, forget_bias=(0.5, 1.0), output_bias=-1.0)
    b = np.asarray(init(b, jax.random.key(0), 2, 4).b)
    np.testing.assert_array_equal(b[:2], 0.0)  # i
    np.testing.assert_array_equal(b[2:4], [0.5, 1.0])  # f, one per block
    np.testing.assert_array_equal(b[8:], -1.0)  # o


def test_pascanu_initialisations():
    """Pascanu et al. (2013): Gaussian R (sigmoid 0.01, basic tanh 0.1) and the sparse "smart
    tanh" R with 15 incoming connections per unit at spectral radius 0.95."""
    r = lstm_jax.rnn(recurrent_init="normal", recurrent_scale=0.1, input_scale=0.1)
    params = host(init(r, jax.random.key(0), 8, 200))
    assert abs(float(params.r.std()) - 0.1) < 0.002 and abs(float(params.r.mean())) < 0.002
    assert abs(float(params.w.std()) - 0.1) < 0.01
    smart = init(
        lstm_jax.rnn(recurrent_init="sparse", recurrent_scale=0.95), jax.random.key(1), 8, 50
    )
    r = np.asarray(smart.r, np.float64)
    np.testing.assert_array_equal((r != 0).sum(axis=0), 15)
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(r)).max(), 0.95, rtol=1e-4)
    with pytest.raises(ValueError, match=r"recurrent_init must be one of \['orthogonal'"):
        lstm_jax.rnn(recurrent_init="xavier")
    with pytest.raises(ValueError, match=r"activation must be 'tanh' or 'sigmoid', got 'relu'"):
        lstm_jax.rnn(activation="relu")
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=r"alpha \(the leak\) must be in \(0, 1\]"):
            lstm_jax.rnn(alpha=bad)


def test_equal_options_give_the_same_cell():
    assert lstm_jax.lstm("CIFG") is lstm_jax.lstm("CIFG")
    assert lstm_jax.lstm("vanilla") is lstm_jax.lstm(peepholes=True)
    assert lstm_jax.lstm("NP") is lstm_jax.lstm()


def test_elman_recurrent_scale_sets_every_singular_value():
    """rnn(recurrent_scale=s): R = s × orthogonal, the knob of Pascanu et al.'s experiments."""
    r = np.asarray(init(lstm_jax.rnn(recurrent_scale=1.5), jax.random.key(0), I, 16).r)
    np.testing.assert_allclose(np.linalg.svd(r, compute_uv=False), 1.5, rtol=1e-5)
    assert lstm_jax.rnn() is lstm_jax.rnn(recurrent_scale=1.0)
    with pytest.raises(ValueError, match="recurrent_scale must be > 0, got 0"):
        lstm_jax.rnn(recurrent_scale=0)


@pytest.mark.parametrize(
    ("cell", "dtype", "tol"),
    [
        (lstm_jax.lstm(), jnp.bfloat16, 3e-2),
        (lstm_jax.lstm(), jnp.float16, 1e-2),
        (lstm_jax.gru(), jnp.bfloat16, 3e-2),
        (lstm_jax.rnn(), jnp.float16, 1e-2),
        (lstm_jax.slstm(), jnp.bfloat16, 3e-2),
        (lstm_jax.mlstm(), jnp.bfloat16, 3e-2),
    ],
    ids=["lstm-bf16", "lstm-f16", "gru-bf16", "rnn-f16", "slstm-bf16", "mlstm-bf16"],
)
def test_half_precision_params_end_to_end(cell, dtype, tol):
    """`init` in bfloat16/float16 (orthogonal blocks factored in float32, then cast), and a
    forward and backward pass on half-precision params (the fused path where the cell has one)
    within `tol` of float32 (relative, loss and global gradient norm; measured: bfloat16
    ≤ 2.1e-2, float16 ≤ 4.7e-3, the mLSTM the largest)."""
    key = jax.random.key(0)

    @jax.jit
    def run(key, xs32):
        """Both inits, and the loss and its gradients in `dtype` and in float32."""
        params32 = cell.init(key, 3, 8)

        def loss(params, xs):
            return jnp.mean(lstm_jax.unroll(cell, params, xs)[1].astype(jnp.float32) ** 2)

        half = jax.value_and_grad(loss)(
            jax.tree.map(lambda a: a.astype(dtype), params32), xs32.astype(dtype)
        )
        return cell.init(key, 3, 8, dtype), half, jax.value_and_grad(loss)(params32, xs32)

    # the tolerances were measured on these inputs
    init, (value, grads), (value32, grads32) = run(
        key, jax.random.normal(jax.random.key(1), (10, 4, 3))
    )
    assert {leaf.dtype for leaf in jax.tree.leaves(init)} == {jnp.dtype(dtype)}
    assert {leaf.dtype for leaf in jax.tree.leaves(grads)} == {jnp.dtype(dtype)}
    got, want = flat(grads), flat(grads32)
    assert abs(float(value) - float(value32)) < tol * float(value32)
    assert np.linalg.norm(got - want) < tol * np.linalg.norm(want)
