"""The fused unroll (custom_vjp, hoisted matmuls) gives the scan path's values and gradients."""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    CELL_IDS,
    CELLS,
    EXTRA_CELLS,
    FAMILIES,
    FAMILY_IDS,
    assert_close,
    normal,
    random_carry,
    random_params,
)

import lstm_jax

T, B, I, H = 6, 3, 4, 6  # H even: memory blocks of 2 cells


def _loss(cell, mode, impl, reverse=False):
    def loss(params, xs, carry):
        final, ys = lstm_jax.unroll(
            cell, params, xs, carry, gradient=mode, impl=impl, reverse=reverse
        )
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(final))

    return loss


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _fused_and_scan(cell, modes, reverses, params, xs, carry):
    """`{(mode, reverse): (fused, scan)}`, each the loss and its gradients with respect to
    (params, xs, carry): one compiled program per case."""
    out = {}
    for mode in modes:
        for reverse in reverses:
            out[mode, reverse] = tuple(
                jax.value_and_grad(_loss(cell, mode, impl, reverse), argnums=(0, 1, 2))(
                    params, xs, carry
                )
                for impl in ("fused", "scan")
            )
    return out


def _assert_fused_equals_scan(results, rtol, atol):
    for (mode, reverse), (fused, scan) in results.items():
        assert_close(fused, scan, rtol=rtol, atol=atol, what=f"{mode}, reverse={reverse}")


# Both gradient modes in one case: their programs share the forward pass (compiling the two
# together costs about two thirds of compiling each alone).
MODES = ("full", "truncated")


@pytest.mark.parametrize(
    ("name", "kind", "cell"), CELLS + EXTRA_CELLS, ids=CELL_IDS + [c[0] for c in EXTRA_CELLS]
)
def test_fused_equals_scan_float64(x64, name, kind, cell):
    params = random_params(cell, jax.random.key(0), I, H)
    carry = random_carry(cell, jax.random.key(1), (B,), H)
    xs = normal(jax.random.key(2), (T, B, I))
    # reverse=True feeds the same loop reversed inputs: checked for one cell per family
    reverses = (False, True) if name in FAMILY_IDS else (False,)
    results = _fused_and_scan(cell, MODES, reverses, params, xs, carry)
    _assert_fused_equals_scan(results, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize(("name", "kind", "cell"), FAMILIES, ids=FAMILY_IDS)
def test_fused_equals_scan_float32(name, kind, cell):
    params = random_params(cell, jax.random.key(3), I, H, jnp.float32, scale=0.3)
    carry = random_carry(cell, jax.random.key(4), (B,), H, jnp.float32)
    xs = normal(jax.random.key(5), (20, B, I), jnp.float32)
    results = _fused_and_scan(cell, MODES, (False,), params, xs, carry)
    _assert_fused_equals_scan(results, rtol=2e-5, atol=2e-5)


def test_auto_picks_the_scan_where_fused_does_not_apply_and_fused_says_why():
    cell = lstm_jax.lstm()
    params = cell.init(jax.random.key(0), I, H)
    xs = jnp.ones((T, B, I))
    lengths = jnp.array([T, 2, 3])
    assert all(c.derivation is not None for _, _, c in CELLS)  # every cell here is fused
    auto = lstm_jax.unroll(cell, params, xs, lengths=lengths)  # falls back to the scan
    scan = lstm_jax.unroll(cell, params, xs, lengths=lengths, impl="scan")
    jax.tree.map(np.testing.assert_array_equal, auto, scan)
    with pytest.raises(
        ValueError, match="impl='fused' does not support lengths, window; use impl='scan'"
    ):
        lstm_jax.unroll(cell, params, xs, lengths=lengths, window=2, impl="fused")
    with pytest.raises(
        ValueError,
        match=r"impl must be one of \['auto', 'fused', 'parallel', 'scan'\] or a lstm_jax.Impl, "
        r"got 'fast'",
    ):
        lstm_jax.unroll(cell, params, xs, impl="fast")


def test_forward_mode_needs_the_scan_path():
    cell = lstm_jax.lstm()
    params = cell.init(jax.random.key(0), I, H)
    xs = jnp.ones((T, I))

    def f(xs, impl):
        return lstm_jax.unroll(cell, params, xs, impl=impl)[1]

    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jacfwd(f)(xs, "fused")
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jacfwd(f)(xs, "auto")  # the LSTM's default is the fused path
    forward, reverse = jax.jit(lambda xs: (jax.jacfwd(f)(xs, "scan"), jax.jacrev(f)(xs, "fused")))(
        xs
    )
    assert_close(forward, reverse, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "kind", "cell"), FAMILIES, ids=FAMILY_IDS)
def test_fused_gradients_have_their_primals_dtypes(name, kind, cell):
    params = random_params(cell, jax.random.key(0), I, H, jnp.float32)
    xs = jnp.ones((T, B, I), jnp.bfloat16)
    g_params, g_xs = jax.jit(
        jax.grad(
            lambda p, x: jnp.sum(lstm_jax.unroll(cell, p, x, impl="fused")[1].astype(jnp.float32)),
            argnums=(0, 1),
        )
    )(params, xs)
    assert g_xs.dtype == jnp.bfloat16
    assert all(
        g.dtype == p.dtype
        for g, p in zip(jax.tree.leaves(g_params), jax.tree.leaves(params), strict=True)
    )


@pytest.mark.parametrize(("steps", "batch_shape"), [(1, (B,)), (T, ())])
@pytest.mark.parametrize(
    "cell", [lstm_jax.lstm("FGR"), lstm_jax.gru(), lstm_jax.rnn()], ids=["lstm-FGR", "gru", "rnn"]
)
def test_fused_equals_scan_unbatched_and_for_one_step(x64, cell, steps, batch_shape):
    """The fused loops index time by a traced step counter and (LSTM) write into buffers in
    place: one step and unbatched `[T, I]` inputs must give the scan's gradients."""
    params = random_params(cell, jax.random.key(6), I, H)
    carry = random_carry(cell, jax.random.key(7), batch_shape, H)
    xs = normal(jax.random.key(8), (steps, *batch_shape, I))
    results = _fused_and_scan(cell, MODES, (False,), params, xs, carry)
    _assert_fused_equals_scan(results, rtol=1e-11, atol=1e-12)


def test_fused_under_vmap_equals_scan(x64):
    """vmap over a batch of parameter sets batches the in-place buffers of the fused LSTM."""
    cell = lstm_jax.lstm("vanilla")
    params = jax.tree.map(
        lambda *sets: jnp.stack(sets),
        *(random_params(cell, jax.random.key(k), I, H) for k in (9, 19, 29)),
    )
    xs = normal(jax.random.key(10), (T, B, I))
    carry = random_carry(cell, jax.random.key(11), (B,), H)

    @jax.jit
    def grads(params, xs, carry):
        return [
            jax.vmap(jax.grad(_loss(cell, "full", impl)), in_axes=(0, None, None))(
                params, xs, carry
            )
            for impl in ("fused", "scan")
        ]

    fused, scan = grads(params, xs, carry)
    assert_close(fused, scan, rtol=1e-11, atol=1e-12)


def test_fused_remat_keeps_segment_carries_not_the_whole_sequence():
    """`remat=True` on the fused path: the compiled pass's temporary memory at T = 2000 is a
    fraction of the plain fused pass's (it stores ⌈√T⌉-step segments' entering carries and
    recomputes one segment at a time), with the same gradient."""
    cell = lstm_jax.lstm()
    params = cell.init(jax.random.key(0), 4, 16)
    xs = jax.random.normal(jax.random.key(1), (2000, 2, 4))

    def grad(remat):
        def loss(p):
            return jnp.mean(lstm_jax.unroll(cell, p, xs, impl="fused", remat=remat)[1] ** 2)

        return jax.jit(jax.grad(loss))

    compiled = {r: grad(r).lower(params).compile() for r in (False, True)}  # run as compiled
    temp = {r: c.memory_analysis().temp_size_in_bytes for r, c in compiled.items()}
    assert temp[True] < 0.5 * temp[False], temp
    assert_close(compiled[True](params), compiled[False](params), rtol=1e-4, atol=1e-7)


def test_second_eager_call_and_grad_neither_trace_nor_compile(caplog):
    """The fused path is jitted per (cell, mode, remat, reverse) and shapes, like the scan path:
    eagerly it traced and compiled on every call (0.16 s for an LSTM at H = 32, T = 50, B = 4;
    0.7 ms on the scan path). After the first call, `unroll` and `jax.grad` of it only run."""
    cell = lstm_jax.lstm("vanilla")
    params = cell.init(jax.random.key(0), 3, 5)  # shapes of this test only: a cold cache
    xs = jnp.ones((9, 2, 3))

    def calls(options):
        def run():
            return lstm_jax.unroll(cell, params, xs, **options)

        def loss(params):
            return jnp.mean(lstm_jax.unroll(cell, params, xs, **options)[1] ** 2)

        def grad():
            return jax.grad(loss)(params)

        return run, grad

    def compiled(functions):
        caplog.clear()
        with caplog.at_level(logging.WARNING), jax.log_compiles():
            for f in functions:
                jax.block_until_ready(f())
        return [m[:80] for m in caplog.messages if m.startswith(("Compiling", "Finished tracing"))]

    for options in ({}, {"gradient": "truncated", "reverse": True, "remat": True}):
        functions = calls(options)
        assert lstm_jax.driver.resolve_impl("auto", cell, **options) is lstm_jax.Impl.FUSED
        assert compiled(functions)  # the first calls compile: the log is read
        assert compiled(functions) == []
