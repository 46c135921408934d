"""The identities the cell modules state (the Elman Jacobian, the LSTM's A + B + C + D, the
truncated path gradient), finite differences for FULL, and what TRUNCATED keeps per cell."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CELL_IDS, CELLS, host, normal, random_carry, random_params
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
    x = normal(jax.random.key(2), (I,))

    @jax.jit
    def jacobians(params, h_prev, x):
        """`{mode: (elman.jacobian, jacfwd)}` and the step's output: one program."""
        h_t, _ = cell.step(params, h_prev, x)
        out = {}
        for mode, step in (("full", cell.step), ("truncated", cell.truncated_step)):
            auto = jax.jacfwd(lambda h, step=step: step(params, h, x)[0])(h_prev)
            out[mode] = (elman.jacobian(params, h_t, mode, cell.options, h_prev=h_prev), auto)
        return out, h_t

    jacobians, h_t = host(jacobians(params, h_prev, x))
    for got, auto in jacobians.values():
        np.testing.assert_allclose(got, auto, rtol=1e-12, atol=1e-14)
    full = jacobians["full"][0]
    assert float(np.abs(full - (1 - alpha) * np.eye(H)).max()) > 1e-3
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
    x = normal(jax.random.key(5), (B, I))
    o_prev_pre = normal(jax.random.key(6), (B, H))
    from lstm_jax.cells.activations import ACTIVATIONS

    @jax.jit
    def jacobians(params, carry, x, o_prev_pre):
        """Per mode the named terms' total and jacfwd's Jacobian of every row, f_t, and the
        FULL terms: one program."""
        o_prev = jax.nn.sigmoid(o_prev_pre)
        k = ACTIVATIONS[cell.options.output_activation].fn
        # a consistent point: h_{t-1} = o_{t-1} k(c_{t-1})
        carry = carry._replace(h=o_prev * k(carry.c))
        f = parts(cell.options, params, carry, x).f
        out = {}
        for mode, step in (("full", cell.step), ("truncated", cell.truncated_step)):
            c_t = _c_from_c_prev(cell, params, carry, x, o_prev, step)
            terms = lstm_derivation.cell_state_jacobian(
                cell.options, params, carry, x, o_prev, mode
            )
            autos = [
                jax.jacfwd(lambda c, b=b, c_t=c_t: c_t(carry.c.at[b].set(c))[b])(carry.c[b])
                for b in range(B)
            ]
            out[mode] = (terms.total(), autos)
        full = lstm_derivation.cell_state_jacobian(cell.options, params, carry, x, o_prev)
        return out, f, full

    jacobians, f, full = host(jacobians(params, carry, x, o_prev_pre))
    for mode, (total, autos) in jacobians.items():
        for b in range(B):
            np.testing.assert_allclose(total[b], autos[b], rtol=1e-11, atol=1e-13)
            if mode == "truncated":  # exactly diag(f_t), bit for bit
                np.testing.assert_array_equal(autos[b], np.diag(f[b]))
                np.testing.assert_array_equal(total[b], np.diag(f[b]))
    gates = cell.options.gates
    # each term is present exactly when its path exists in the variant (guards against vacuity)
    assert (float(np.abs(full.C).max()) > 0) == ("i" in gates)
    assert (float(np.abs(full.A).max()) > 0) == ("f" in gates or cell.options.coupled)
    assert float(np.abs(full.D).max()) > 0
    assert (float(np.abs(full.P).max()) > 0) == cell.options.peepholes


NO_PEEPHOLE_VARIANTS = ["standard", "NIG", "NFG", "NOG", "NIAF", "NOAF", "CIFG", "1997", "FGR"]


@pytest.mark.parametrize("variant", NO_PEEPHOLE_VARIANTS)
def test_truncated_path_gradient_is_the_forget_gate_product(x64, variant):
    """Identity 3: loss at step t only, TRUNCATED, no peepholes:
    ∂L_t/∂c_k = ∂L_t/∂h_t ⊙ o_t ⊙ k'(c_t) ⊙ ∏_{j=k+1..t} f_j."""
    from lstm_jax.cells.activations import ACTIVATIONS

    cell = lstm_jax.lstm(variant, peepholes=False)
    T, k_step = 8, 2
    params = random_params(cell, jax.random.key(7), I, H)
    xs = normal(jax.random.key(8), (T, I))
    target = normal(jax.random.key(9), (H,))

    @jax.jit
    def gradients_and_closed_form(params, xs, target):
        carry_k, _ = lstm_jax.unroll(cell, params, xs[: k_step + 1])  # the carry after step k

        def loss_from(c_k, mode):
            _final, ys = lstm_jax.unroll(
                cell, params, xs[k_step + 1 :], carry_k._replace(c=c_k), gradient=mode
            )
            return jnp.sum(target * ys[-1])  # L_t with ∂L_t/∂h_t = target

        # the closed form, from the forward intermediates
        carry, fs = carry_k, []
        for x in xs[k_step + 1 :]:
            p = parts(cell.options, params, carry, x)
            fs.append(p.f)
            carry, _ = cell.step(params, carry, x)
        k_grad = ACTIVATIONS[cell.options.output_activation].grad
        closed = target * p.o * k_grad(p.c) * jnp.prod(jnp.stack(fs), axis=0)
        grads = [jax.grad(loss_from)(carry_k.c, mode) for mode in ("truncated", "full")]
        return grads, closed

    (grad, full), closed = host(gradients_and_closed_form(params, xs, target))
    np.testing.assert_allclose(grad, closed, rtol=1e-12, atol=1e-15)
    assert float(np.abs(full - closed).max()) > 1e-8  # under FULL it is only one of the paths


def test_gru_truncated_keeps_only_the_linear_path(x64):
    """GRU under TRUNCATED: ∂h_t/∂h_{t-1} = diag(1 - u_t) exactly, for both reset conventions."""
    from lstm_jax.cells.gru import parts as gru_parts

    for reset_after in (True, False):
        cell = lstm_jax.gru(reset_after=reset_after)
        params = random_params(cell, jax.random.key(10), I, H)
        h_prev = random_carry(cell, jax.random.key(11), (), H)
        x = normal(jax.random.key(12), (I,))

        @jax.jit
        def jacobians(params, h_prev, x, cell=cell):
            """jacfwd of the truncated and the full step, and diag(1 - u_t): one program."""
            u = gru_parts(cell.options, params, h_prev, x).u
            auto = jax.jacfwd(lambda h: cell.truncated_step(params, h, x)[0])(h_prev)
            full = jax.jacfwd(lambda h: cell.step(params, h, x)[0])(h_prev)
            return auto, full, jnp.diag(1 - u)

        auto, full, diag = host(jacobians(params, h_prev, x))
        np.testing.assert_array_equal(auto, diag)
        assert float(np.abs(full - diag).max()) > 1e-6


def test_elman_truncated_gradient_is_the_one_step_gradient(x64):
    """Elman RNN under TRUNCATED: the loss at the last step reaches only the last input."""
    cell = lstm_jax.rnn()
    params = random_params(cell, jax.random.key(13), I, H)
    xs = normal(jax.random.key(14), (6, I))
    g = jax.jit(
        jax.grad(lambda xs: lstm_jax.unroll(cell, params, xs, gradient="truncated")[1][-1].sum())
    )(xs)
    g = np.asarray(g)
    np.testing.assert_array_equal(g[:-1], 0.0)
    assert float(np.abs(g[-1]).max()) > 1e-6


@pytest.mark.parametrize(("name", "kind", "cell"), CELLS, ids=CELL_IDS)
def test_full_gradient_matches_finite_differences(x64, name, kind, cell):
    params = random_params(cell, jax.random.key(15), I, H, scale=0.3)
    carry = random_carry(cell, jax.random.key(16), (B,), H)
    xs = normal(jax.random.key(17), (4, B, I))

    @jax.jit  # check_grads evaluates it and its vjp at several points: compiled once each
    def loss(params, carry, xs):
        final, ys = lstm_jax.unroll(cell, params, xs, carry)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(final))

    check_grads(loss, (params, carry, xs), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
