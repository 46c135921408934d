"""The hand-derived backward pass (lstm_jax.analytic over each cell's Derivation) against
jax.vjp of the scan path (autodiff through `cell.step`), float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CELLS, FAMILIES, host, normal, random_carry, random_params, stable_seed

import lstm_jax
from lstm_jax import analytic

I, H = 3, 4
SHAPES = {"T5-B3": (5, (3,)), "T1-B1": (1, (1,)), "T4-unbatched": (4, ())}


def _close(got, want, rtol=1e-10, what=""):
    def check(a, b):
        scale = float(np.abs(b).max()) if b.size else 0.0
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(scale, 1e-3), err_msg=what)

    jax.tree.map(check, got, want)


# every cell at the batched shape; the one-step and unbatched shapes (the same loop with other
# batch shapes) for one cell per family
CASES = [(*c, "T5-B3") for c in CELLS] + [(*c, s) for c in FAMILIES for s in list(SHAPES)[1:]]


@pytest.mark.parametrize(
    ("name", "kind", "cell", "shape"), CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES]
)
def test_backward_equals_autodiff(x64, name, kind, cell, shape):
    """Both gradient modes in one case: compiled together, their programs share the forward
    pass."""
    T, batch = SHAPES[shape]
    keys = jax.random.split(jax.random.key(stable_seed(name)), 5)
    params = random_params(cell, keys[0], I, H)
    carry = random_carry(cell, keys[1], batch, H)
    xs = normal(keys[2], (T, *batch, I))
    dys = normal(keys[3], (T, *batch, H))
    dcarry = random_carry(cell, keys[4], batch, H, scale=1.0)

    @jax.jit
    def both(params, xs, carry, dys, dcarry):
        """Per mode the analytic backward pass and the vjp of the scan: one program."""
        out = {}
        for mode in ("full", "truncated"):

            def f(params, xs, carry, mode=mode):
                return lstm_jax.unroll(cell, params, xs, carry, gradient=mode, impl="scan")

            _, vjp = jax.vjp(f, params, xs, carry)
            got = analytic.backward(cell, params, xs, carry, dys, dcarry, gradient=mode)
            out[mode] = got, vjp((dcarry, dys))
        return out

    for mode, (got, (want_params, want_xs, want_carry)) in host(
        both(params, xs, carry, dys, dcarry)
    ).items():
        _close(got.params, want_params, what=mode)
        _close(got.xs, want_xs, what=mode)
        _close(got.carry, want_carry, what=mode)


def test_truncated_backward_differs_from_full(x64):
    """Guards against both modes silently computing the same thing."""
    cell = lstm_jax.lstm("vanilla")
    params = random_params(cell, jax.random.key(0), I, H)
    carry = random_carry(cell, jax.random.key(1), (2,), H)
    xs = normal(jax.random.key(2), (6, 2, I))
    dys = normal(jax.random.key(3), (6, 2, H))
    full, trunc = host(
        jax.jit(
            lambda *args: [
                analytic.backward(cell, *args, gradient=mode) for mode in ("full", "truncated")
            ]
        )(params, xs, carry, dys)
    )
    assert float(np.abs(full.params.r - trunc.params.r).max()) > 1e-6
    np.testing.assert_array_equal(trunc.carry.h, 0.0)  # h_0 only feeds cut gate inputs


def test_backward_rejects_unknown_cells():
    fake = lstm_jax.Cell(None, None, None, None, options=object())
    with pytest.raises(TypeError, match="no analytic derivation"):
        analytic.backward(fake, None, jnp.zeros((2, 3)), None, jnp.zeros((2, 4)))
