"""The identities the cell modules state (the Elman Jacobian, the LSTM's A + B + C + D, the
truncated path gradient), finite differences for FULL, and what TRUNCATED keeps per cell."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CELL_IDS, CELLS, random_carry, random_params
from jax.test_util import check_grads

import lstm_jax
from lstm_jax.cells import elman
from lstm_jax.cells.lstm import derivation as lstm_derivation
from lstm_jax.cells.lstm.step import parts

B, I, H = 2, 3, 4
LSTM_VARIANTS = [v for v in lstm_jax.LSTM_VARIANTS] + ["chrono"]


def _lstm(variant, **kw):
    return (
        lstm_jax.lstm("vanilla", chrono=20, **kw)
        if variant == "chrono"
        else lstm_jax.lstm(variant, **kw)
    )


@pytest.mark.parametrize(("activation", "alpha"), [("tanh", 1.0), ("sigmoid", 1.0), ("tanh", 0.3)])
def test_elman_one_step_jacobian(x64, activation, alpha):
    """∂h_t/∂h_{t-1} = (1 - α) I + α diag(φ'_t) R (identity 1), φ' = 1 - a² or a(1 - a); under
    TRUNCATED only the leak (1 - α) I, zero without a leak."""
    cell = lstm_jax.rnn(activation=activation, alpha=alpha)
    params = random_params(cell, jax.random.key(0), I, H)
    h_prev = random_carry(cell, jax.random.key(1), (), H)
    x = jax.random.normal(jax.random.key(2), (I,), jnp.float64)
    h_t, _ = cell.step(params, h_prev, x)
    for mode, step in (("full", cell.step), ("truncated", cell.truncated_step)):
        auto = jax.jacfwd(lambda h, step=step: step(params, h, x)[0])(h_prev)
        got = elman.jacobian(params, h_t, mode, cell.options, h_prev=h_prev)
        np.testing.assert_allclose(got, auto, rtol=1e-12, atol=1e-14)
    full = elman.jacobian(params, h_t, "full", cell.options, h_prev=h_prev)
    assert float(jnp.abs(full - (1 - alpha) * jnp.eye(H)).max()) > 1e-3
    if alpha != 1.0:
        with pytest.raises(ValueError, match="needs h_prev"):
            elman.jacobian(params, h_t, "full", cell.options)


def _c_from_c_prev(cell, params, carry, x, o_prev, step):
    """c_t as a function of c_{t-1}, with h_{t-1} = o_{t-1} ⊙ k(c_{t-1}) and o_{t-1} fixed."""
    from lstm_jax.cells.activations import ACTIVATIONS

    k = ACTIVATIONS[cell.options.output_activation].fn

    def c_t(c_prev):
        return step(params, carry._replace(h=o_prev * k(c_prev), c=c_prev), x)[0].c

    return c_t


@pytest.mark.parametrize("variant", LSTM_VARIANTS)
def test_lstm_cell_state_jacobian_is_A_plus_B_plus_C_plus_D(x64, variant):
    """Identity 2, batched: the four named terms (plus peepholes) sum to jacfwd, and under
    TRUNCATED the Jacobian is exactly diag(f_t)."""
    cell = _lstm(variant)
    params = random_params(cell, jax.random.key(3), I, H)
    carry = random_carry(cell, jax.random.key(4), (B,), H)
    x = jax.random.normal(jax.random.key(5), (B, I), jnp.float64)
    o_prev = jax.nn.sigmoid(jax.random.normal(jax.random.key(6), (B, H), jnp.float64))
    from lstm_jax.cells.activations import ACTIVATIONS

    k = ACTIVATIONS[cell.options.output_activation].fn
    carry = carry._replace(
        h=o_prev * k(carry.c)
    )  # a consistent point: h_{t-1} = o_{t-1} k(c_{t-1})
    f = parts(cell.options, params, carry, x).f
    for mode, step in (("full", cell.step), ("truncated", cell.truncated_step)):
        c_t = _c_from_c_prev(cell, params, carry, x, o_prev, step)
        terms = lstm_derivation.cell_state_jacobian(cell.options, params, carry, x, o_prev, mode)
        for b in range(B):
            auto = jax.jacfwd(lambda c, b=b, c_t=c_t: c_t(carry.c.at[b].set(c))[b])(carry.c[b])
            np.testing.assert_allclose(terms.total()[b], auto, rtol=1e-11, atol=1e-13)
            if mode == "truncated":  # exactly diag(f_t), bit for bit
                np.testing.assert_array_equal(auto, jnp.diag(f[b]))
                np.testing.assert_array_equal(terms.total()[b], jnp.diag(f[b]))
    full = lstm_derivation.cell_state_jacobian(cell.options, params, carry, x, o_prev)
    gates = cell.options.gates
    # each term is present exactly when its path exists in the variant (guards against vacuity)
    assert (float(jnp.abs(full.C).max()) > 0) == ("i" in gates)
    assert (float(jnp.abs(full.A).max()) > 0) == ("f" in gates or cell.options.coupled)
    assert float(jnp.abs(full.D).max()) > 0
    assert (float(jnp.abs(full.P).max()) > 0) == cell.options.peepholes


NO_PEEPHOLE_VARIANTS = ["standard", "NIG", "NFG", "NOG", "NIAF", "NOAF", "CIFG", "1997", "FGR"]


@pytest.mark.parametrize("variant", NO_PEEPHOLE_VARIANTS)
def test_truncated_path_gradient_is_the_forget_gate_product(x64, variant):
    """Identity 3: loss at step t only, TRUNCATED, no peepholes:
    ∂L_t/∂c_k = ∂L_t/∂h_t ⊙ o_t ⊙ k'(c_t) ⊙ ∏_{j=k+1..t} f_j."""
    from lstm_jax.cells.activations import ACTIVATIONS

    cell = lstm_jax.lstm(variant, peepholes=False)
    T, k_step = 8, 2
    params = random_params(cell, jax.random.key(7), I, H)
    xs = jax.random.normal(jax.random.key(8), (T, I), jnp.float64)
    carry_k, _ = lstm_jax.unroll(cell, params, xs[: k_step + 1])  # the carry after step k
    target = jax.random.normal(jax.random.key(9), (H,), jnp.float64)

    def loss_from(c_k, mode):
        _final, ys = lstm_jax.unroll(
            cell, params, xs[k_step + 1 :], carry_k._replace(c=c_k), gradient=mode
        )
        return jnp.sum(target * ys[-1])  # L_t with ∂L_t/∂h_t = target

    grad = jax.grad(loss_from)(carry_k.c, "truncated")
    # the closed form, from the forward intermediates
    carry, fs = carry_k, []
    for x in xs[k_step + 1 :]:
        p = parts(cell.options, params, carry, x)
        fs.append(p.f)
        carry, _ = cell.step(params, carry, x)
    k_grad = ACTIVATIONS[cell.options.output_activation].grad
    closed = target * p.o * k_grad(p.c) * jnp.prod(jnp.stack(fs), axis=0)
    np.testing.assert_allclose(grad, closed, rtol=1e-12, atol=1e-15)
    full = jax.grad(loss_from)(carry_k.c, "full")
    assert float(jnp.abs(full - closed).max()) > 1e-8  # under FULL it is only one of the paths


def test_gru_truncated_keeps_only_the_linear_path(x64):
    """GRU under TRUNCATED: ∂h_t/∂h_{t-1} = diag(1 - u_t) exactly, for both reset conventions."""
    for reset_after in (True, False):
        cell = lstm_jax.gru(reset_after=reset_after)
        params = random_params(cell, jax.random.key(10), I, H)
        h_prev = random_carry(cell, jax.random.key(11), (), H)
        x = jax.random.normal(jax.random.key(12), (I,), jnp.float64)
        from lstm_jax.cells.gru import parts as gru_parts

        u = gru_parts(cell.options, params, h_prev, x).u
        auto = jax.jacfwd(
            lambda h, cell=cell, params=params, x=x: cell.truncated_step(params, h, x)[0]
        )(h_prev)
        np.testing.assert_array_equal(auto, jnp.diag(1 - u))
        full = jax.jacfwd(lambda h, cell=cell, params=params, x=x: cell.step(params, h, x)[0])(
            h_prev
        )
        assert float(jnp.abs(full - jnp.diag(1 - u)).max()) > 1e-6


def test_elman_truncated_gradient_is_the_one_step_gradient(x64):
    """Elman RNN under TRUNCATED: the loss at the last step reaches only the last input."""
    cell = lstm_jax.rnn()
    params = random_params(cell, jax.random.key(13), I, H)
    xs = jax.random.normal(jax.random.key(14), (6, I), jnp.float64)
    g = jax.grad(lambda xs: lstm_jax.unroll(cell, params, xs, gradient="truncated")[1][-1].sum())(
        xs
    )
    np.testing.assert_array_equal(g[:-1], 0.0)
    assert float(jnp.abs(g[-1]).max()) > 1e-6


@pytest.mark.parametrize(("name", "kind", "cell"), CELLS, ids=CELL_IDS)
def test_full_gradient_matches_finite_differences(x64, name, kind, cell):
    params = random_params(cell, jax.random.key(15), I, H, scale=0.3)
    carry = random_carry(cell, jax.random.key(16), (B,), H)
    xs = jax.random.normal(jax.random.key(17), (4, B, I), jnp.float64)

    def loss(params, carry, xs):
        final, ys = lstm_jax.unroll(cell, params, xs, carry)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(final))

    check_grads(loss, (params, carry, xs), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
