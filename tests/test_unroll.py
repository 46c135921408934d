"""The driver's options against straightforward reference loops (plain NumPy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import FAMILIES, FAMILY_IDS, assert_close, host, normal, random_carry, random_params
from reference import run

import lstm_jax

T, B, I, H = 7, 4, 3, 5
CASES = [(kind, cell) for _, kind, cell in FAMILIES]
IDS = FAMILY_IDS
LENGTHS = np.array([7, 3, 1, 0])


def _row(tree, b):
    return jax.tree.map(lambda a: a[b], tree)


def _close(a, b, tol=1e-12):
    assert_close(a, b, rtol=tol, atol=tol)


def _setup(cell, seed=0):
    k_p, k_c, k_x = jax.random.split(jax.random.key(seed), 3)
    return (
        random_params(cell, k_p, I, H),
        random_carry(cell, k_c, (B,), H),
        normal(k_x, (T, B, I)),
    )


@pytest.mark.parametrize(("kind", "cell"), CASES, ids=IDS)
@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_and_reverse_match_per_sequence_loops(x64, kind, cell, reverse):
    params, carry, xs = _setup(cell)
    final, ys = lstm_jax.unroll(
        cell, params, xs, carry, lengths=jnp.asarray(LENGTHS), reverse=reverse
    )
    params, carry, xs, final, ys = host((params, carry, xs, final, ys))  # rows read on the host
    for b, n in enumerate(LENGTHS):
        seq = np.asarray(xs[:n, b])
        want_ys = np.zeros((T, H))
        want_final = tuple(jax.tree.leaves(_row(carry, b)))
        if n:
            order = seq[::-1] if reverse else seq
            ref_ys, want_final = run(kind, cell.options, params, order, _row(carry, b))
            want_ys[:n] = ref_ys[::-1] if reverse else ref_ys
        np.testing.assert_allclose(ys[:, b], want_ys, rtol=1e-12, atol=1e-12)
        _close(tuple(jax.tree.leaves(_row(final, b))), want_final)


@pytest.mark.parametrize(("kind", "cell"), CASES, ids=IDS)
def test_reverse_without_lengths_is_a_flipped_run(x64, kind, cell):
    params, carry, xs = _setup(cell, 1)
    (final, ys), (final_f, ys_f) = jax.jit(
        lambda p, x, c: (
            lstm_jax.unroll(cell, p, x, c, reverse=True),
            lstm_jax.unroll(cell, p, x[::-1], c),
        )
    )(params, xs, carry)
    _close(final, final_f)
    _close(ys, ys_f[::-1])


@pytest.mark.parametrize(("kind", "cell"), CASES, ids=IDS)
def test_batch_major_layout(x64, kind, cell):
    params, carry, xs = _setup(cell, 2)
    want = lstm_jax.unroll(cell, params, xs, carry, lengths=jnp.asarray(LENGTHS))
    final, ys = lstm_jax.unroll(
        cell, params, np.swapaxes(xs, 0, 1), carry, lengths=jnp.asarray(LENGTHS), time_major=False
    )
    assert ys.shape == (B, T, H)
    _close((final, np.swapaxes(ys, 0, 1)), want)


@pytest.mark.parametrize(("kind", "cell"), CASES, ids=IDS)
def test_bidirectional_matches_two_reference_loops(x64, kind, cell):
    params_fw, carry_fw, xs = _setup(cell, 3)
    params_bw, carry_bw, _ = _setup(cell, 4)
    lengths = jnp.asarray(LENGTHS)
    (c_fw, c_bw), ys = lstm_jax.bidirectional(
        cell, (params_fw, params_bw), xs, (carry_fw, carry_bw), lengths=lengths
    )
    assert ys.shape == (T, B, 2 * H)
    params_fw, carry_fw, params_bw, carry_bw, xs, c_fw, c_bw, ys = host(
        (params_fw, carry_fw, params_bw, carry_bw, xs, c_fw, c_bw, ys)
    )
    for b, n in enumerate(LENGTHS):
        if n == 0:
            np.testing.assert_array_equal(ys[:, b], 0.0)
            continue
        seq = np.asarray(xs[:n, b])
        y_fw, f_fw = run(kind, cell.options, params_fw, seq, _row(carry_fw, b))
        y_bw, f_bw = run(kind, cell.options, params_bw, seq[::-1], _row(carry_bw, b))
        np.testing.assert_allclose(ys[:n, b, :H], y_fw, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ys[:n, b, H:], y_bw[::-1], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(ys[n:, b], 0.0)
        _close(tuple(jax.tree.leaves(_row(c_fw, b))), f_fw)
        _close(tuple(jax.tree.leaves(_row(c_bw, b))), f_bw)


@pytest.mark.parametrize(("kind", "cell"), CASES, ids=IDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacked_matches_layer_by_layer_reference(x64, kind, cell, bidirectional):
    num_layers = 3
    params = lstm_jax.init_stacked(
        cell, jax.random.key(5), I, H, num_layers, bidirectional=bidirectional, dtype=jnp.float64
    )
    xs = normal(jax.random.key(6), (T, B, I))
    finals, ys = lstm_jax.stacked(cell, params, xs, bidirectional=bidirectional)
    assert len(finals) == num_layers and ys.shape == (T, B, H * (2 if bidirectional else 1))
    params, xs, ys = host((params, xs, ys))
    zero = host(cell.initial_carry((), H, jnp.float64))
    for b in range(B):
        inputs = np.asarray(xs[:, b])
        for layer_params in params:
            if bidirectional:
                y_fw, _ = run(kind, cell.options, layer_params[0], inputs, zero)
                y_bw, _ = run(kind, cell.options, layer_params[1], inputs[::-1], zero)
                inputs = np.concatenate([y_fw, y_bw[::-1]], axis=-1)
            else:
                inputs, _final = run(kind, cell.options, layer_params, inputs, zero)
        np.testing.assert_allclose(ys[:, b], inputs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("kind", "cell"), CASES, ids=IDS)
def test_unroll_and_remat_change_nothing(x64, kind, cell):
    """In both gradient modes (one compiled program: they share the forward pass)."""
    params, carry, xs = _setup(cell, 7)

    def loss(params, mode, **kw):
        final, ys = lstm_jax.unroll(cell, params, xs, carry, gradient=mode, **kw)
        return jnp.sum(ys**2) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(final))

    # the default path (fused for cells with a derivation: its remat checkpoints segments of
    # ⌈√T⌉ = 3 steps, here 2 and a remainder of 1) and the scan's own remat
    options = (
        {"impl": "scan"},
        {"remat": True},
        {"scan_unroll": 3},
        {"scan_unroll": T, "remat": True, "impl": "scan"},
    )
    results = jax.jit(
        lambda params: {
            mode: [
                jax.value_and_grad(lambda p, mode=mode, kw=kw: loss(p, mode, **kw))(params)
                for kw in options
            ]
            for mode in ("full", "truncated")
        }
    )(params)
    for mode, (want, *others) in results.items():
        for kw, got in zip(options[1:], others, strict=True):
            assert_close(got, want, rtol=1e-12, atol=1e-12, what=f"{mode}, {kw}")


@pytest.mark.parametrize("impl", ["scan", "fused"])
def test_gradient_modes_accept_strings_and_enum(x64, impl):
    """A mode's name and its enum give the same *gradient* (forward values agree in every mode
    by design, so only gradients can tell the modes apart), and the two modes differ."""
    cell = lstm_jax.lstm("vanilla")
    params, carry, xs = _setup(cell, 3)

    def grad(mode):
        def loss(p):
            return jnp.sum(lstm_jax.unroll(cell, p, xs, carry, gradient=mode, impl=impl)[1] ** 2)

        return jax.grad(loss)(params)

    modes = (lstm_jax.Gradient.FULL, lstm_jax.Gradient.TRUNCATED, "full", "TRUNCATED")
    full, truncated, full_named, truncated_named = jax.jit(lambda: [grad(mode) for mode in modes])()
    _close(full_named, full, 0.0)
    _close(truncated_named, truncated, 0.0)
    assert float(np.abs(full.r - truncated.r).max()) > 1e-3


@pytest.mark.parametrize(("kind", "cell"), CASES, ids=IDS)
def test_resets_restart_each_segment_from_zeros(x64, kind, cell):
    """A reset before step t equals running the rest of that sequence from a zero carry."""
    params, carry, xs = _setup(cell, 8)
    resets = np.zeros((T, B), bool)
    resets[3, 0] = resets[5, 1] = resets[0, 2] = True
    final, ys = lstm_jax.unroll(cell, params, xs, carry, resets=jnp.asarray(resets))
    zero = host(cell.initial_carry((), H, jnp.float64))
    params_, carry_, xs_ = params, carry, xs
    params, carry, xs, final, ys = host((params, carry, xs, final, ys))
    for b in range(B):
        start = [t for t in range(T) if resets[t, b]]
        cut = start[0] if start else 0
        if cut:
            head, _ = run(kind, cell.options, params, xs[:cut, b], _row(carry, b))
            np.testing.assert_allclose(ys[:cut, b], head, rtol=1e-12, atol=1e-12)
        tail, want = run(kind, cell.options, params, xs[cut:, b], zero if start else _row(carry, b))
        np.testing.assert_allclose(ys[cut:, b], tail, rtol=1e-12, atol=1e-12)
        _close(tuple(jax.tree.leaves(_row(final, b))), want)
    # no gradient crosses a reset: the loss after the reset does not reach earlier inputs
    grad = jax.jit(
        jax.grad(
            lambda xs: jnp.sum(
                lstm_jax.unroll(cell, params_, xs, carry_, resets=jnp.asarray(resets))[1][3:, 0]
            )
        )
    )(xs_)
    np.testing.assert_array_equal(np.asarray(grad)[:3, 0], 0.0)
    with pytest.raises(TypeError, match="resets must be a boolean array"):
        lstm_jax.unroll(cell, params, xs, resets=jnp.zeros((T, B)))
    with pytest.raises(ValueError, match=r"resets must have the shape .*\(7, 4\).*got \(4, 7\)"):
        lstm_jax.unroll(cell, params, xs, resets=jnp.zeros((B, T), bool))


def test_docstring_examples_run():
    """The `>>>` examples of the driver, the cells' shared checks and the online interface."""
    import doctest
    import importlib

    names = ["driver.scan", "driver.layers", "driver.checks", "cells.checks", "cells.protocol"]
    names += ["cells.elman", "cells.exp_gating", "cells.gru", "cells.lstm", "cells.lstm.options"]
    names += ["backward.fused", "online.protocol", "online.rtrl"]
    for name in names:
        module = importlib.import_module(f"lstm_jax.{name}")  # `cells.gru` is also a function
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, name
