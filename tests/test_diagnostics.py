"""Gradient-flow diagnostics against jax.jacrev / jax.jacfwd computed independently."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import host, normal, random_carry, random_params

import lstm_jax
from lstm_jax import diagnostics
from lstm_jax.cells.activations import ACTIVATIONS
from lstm_jax.cells.lstm.step import parts

T, I, H = 6, 3, 4
CELLS = {
    "rnn": lstm_jax.rnn(),
    "lstm-vanilla": lstm_jax.lstm("vanilla"),
    "lstm-FGR": lstm_jax.lstm("FGR"),
    "gru": lstm_jax.gru(),
}


# FULL: batched for every cell, and one sequence without a batch axis for one cell per family
# that has its own carry layout (the same code path with batch shape ()); TRUNCATED (the same
# probes through `truncated_step`): batched, one cell per family, in the FULL case's compiled
# program (the modes share its forward pass)
TRUNCATED = ("rnn", "lstm-vanilla", "gru")
PER_LAG_CASES = [
    (name, (2,), ("full", "truncated") if name in TRUNCATED else ("full",)) for name in CELLS
] + [("rnn", (), ("full",)), ("lstm-vanilla", (), ("full",))]


@pytest.mark.parametrize(
    ("name", "batch", "modes"),
    PER_LAG_CASES,
    ids=[f"{n}-{'batched' if b else 'unbatched'}" for n, b, _ in PER_LAG_CASES],
)
def test_per_lag_gradients_equal_jacrev_rows(x64, name, batch, modes):
    """Row k of jax.jacrev of L with respect to the carry after step k, computed by splitting
    the sequence at k, equals what one probed backward pass returns."""
    cell = CELLS[name]
    params = random_params(cell, jax.random.key(0), I, H)
    carry0 = random_carry(cell, jax.random.key(1), batch, H)
    xs = normal(jax.random.key(2), (T, *batch, I))
    target = normal(jax.random.key(3), (*batch, H))

    def probes_and_rows(params, carry0, xs, target, mode):
        """The probed pass's gradients and norms, and jacrev's row for every k."""

        def loss_fn(y):
            return jnp.sum(target * jnp.tanh(y))

        got = diagnostics.per_lag_gradients(cell, params, xs, loss_fn, carry0, gradient=mode)
        norms = diagnostics.per_lag_norms(cell, params, xs, loss_fn, carry0, gradient=mode)
        rows = []
        for k in range(T + 1):
            carry_k = carry0 if k == 0 else lstm_jax.unroll(cell, params, xs[:k], carry0)[0]

            def rest(carry_k, k=k):
                if k == T:
                    h = carry_k.h if isinstance(carry_k, lstm_jax.LSTMCarry) else carry_k
                    return loss_fn(h)
                ys = lstm_jax.unroll(cell, params, xs[k:], carry_k, gradient=mode)[1]
                return loss_fn(ys[-1])

            rows.append(jax.jacrev(rest)(carry_k))
        return got, norms, rows

    results = jax.jit(lambda *args: {mode: probes_and_rows(*args, mode) for mode in modes})(
        params, carry0, xs, target
    )
    for mode, (got, norms, rows) in host(results).items():
        for k, row in enumerate(rows):
            for got_leaf, norm_leaf, want_leaf in zip(
                jax.tree.leaves(got), jax.tree.leaves(norms), jax.tree.leaves(row), strict=True
            ):
                tol = dict(rtol=1e-10, atol=1e-13, err_msg=f"{mode}, k={k}")
                np.testing.assert_allclose(got_leaf[k], want_leaf, **tol)
                np.testing.assert_allclose(norm_leaf[k], np.linalg.norm(want_leaf, axis=-1), **tol)


def test_truncated_cell_error_is_the_forget_gate_product(x64):
    """Identity 3 through the diagnostics: ∂L/∂c_k = ∂L/∂h_T ⊙ o_T ⊙ k'(c_T) ⊙ ∏ f_j."""
    cell = lstm_jax.lstm()
    params = random_params(cell, jax.random.key(4), I, H)
    xs = normal(jax.random.key(5), (T, I))

    @jax.jit
    def probes_and_gates(params, xs):
        grads = diagnostics.per_lag_gradients(cell, params, xs, gradient="truncated")
        carry, fs = cell.initial_carry((), H, jnp.float64), []
        for x in xs:
            p = parts(cell.options, params, carry, x)
            fs.append(p.f)
            carry, _ = cell.step(params, carry, x)
        dc_T = p.o * ACTIVATIONS["tanh"].grad(p.c)  # loss_fn = sum: ∂L/∂h_T = 1
        return grads, jnp.stack(fs), dc_T

    grads, fs, dc_T = host(probes_and_gates(params, xs))
    for k in range(T):
        np.testing.assert_allclose(grads.c[k], dc_T * np.prod(fs[k:], axis=0), rtol=1e-12)
    np.testing.assert_array_equal(grads.c[T], 0.0)  # L reads h_T; c_T is held fixed by definition
    np.testing.assert_array_equal(grads.h[:T], 0.0)  # h_k only enters cut gate inputs


def test_cell_state_jacobians_match_jacfwd_along_a_sequence(x64):
    cell = lstm_jax.lstm("vanilla")
    params = random_params(cell, jax.random.key(6), I, H)
    xs = normal(jax.random.key(7), (T, 2, I))

    @jax.jit
    def jacobians(params, xs):
        """The diagnostics' Jacobians and jacfwd's at each step t > 1 and row b: one program."""
        jac = diagnostics.cell_state_jacobians(cell, params, xs).total()  # [T, 2, H, H]
        k = ACTIVATIONS["tanh"].fn
        carry = cell.initial_carry((2,), H, jnp.float64)
        o_prev, auto = None, {}
        for t in range(T):
            if o_prev is not None:
                for b in range(2):

                    def c_t(c_prev, b=b, carry=carry, o_prev=o_prev, t=t):
                        c_all = carry.c.at[b].set(c_prev)
                        prev = carry._replace(h=o_prev * k(c_all), c=c_all)
                        return cell.step(params, prev, xs[t])[0].c[b]

                    auto[t, b] = jax.jacfwd(c_t)(carry.c[b])
            o_prev = parts(cell.options, params, carry, xs[t]).o
            carry, _ = cell.step(params, carry, xs[t])
        return jac, auto

    jac, auto = host(jacobians(params, xs))
    assert len(auto) == 2 * (T - 1)
    for (t, b), want in auto.items():
        np.testing.assert_allclose(jac[t, b], want, rtol=1e-10, atol=1e-13)


def test_product_singular_values(x64):
    cell = lstm_jax.lstm()
    params = random_params(cell, jax.random.key(8), I, H)
    xs = normal(jax.random.key(9), (T, I))

    @jax.jit
    def singular_values(params, xs):
        """The diagnostics' singular values in both modes, and those of the products of the
        Jacobians multiplied out here, with the truncated (diagonal) Jacobians' diagonals."""
        jac = diagnostics.cell_state_jacobians(cell, params, xs).total()
        sv = diagnostics.cell_state_product_singular_values(cell, params, xs)
        want = []
        for k in range(T):
            product = jnp.eye(H)
            for t in range(T - 1, k - 1, -1):
                product = product @ jac[t]
            want.append(jnp.linalg.svd(product, compute_uv=False))
        sv_t = diagnostics.cell_state_product_singular_values(
            cell, params, xs, gradient="truncated"
        )
        fs = diagnostics.cell_state_jacobians(cell, params, xs).B.diagonal(axis1=-2, axis2=-1)
        return sv, want, sv_t, fs

    sv, want, sv_t, fs = host(singular_values(params, xs))
    for k in range(T):
        np.testing.assert_allclose(sv[k], want[k], rtol=1e-10)
    # TRUNCATED: the product is ∏ diag(f_j), so its singular values are the sorted products
    for k in range(T):
        np.testing.assert_allclose(sv_t[k], np.sort(np.prod(fs[k:], axis=0))[::-1], rtol=1e-12)


def test_jacobian_term_norms(x64):
    cell = lstm_jax.lstm("vanilla")
    params = random_params(cell, jax.random.key(10), I, H)
    xs = normal(jax.random.key(11), (T, 2, I))
    norms, terms, trunc = host(
        jax.jit(
            lambda params, xs: (
                diagnostics.jacobian_term_norms(cell, params, xs),
                diagnostics.cell_state_jacobians(cell, params, xs),
                diagnostics.jacobian_term_norms(cell, params, xs, gradient="truncated"),
            )
        )(params, xs)
    )
    assert norms.A.shape == (T, 2)
    np.testing.assert_allclose(norms.B, np.max(np.abs(terms.B.diagonal(axis1=-2, axis2=-1)), -1))
    np.testing.assert_array_equal(norms.C[0], 0.0)  # no h-paths into step 1
    assert float(norms.C[1:].min()) > 0
    for term in (trunc.A, trunc.C, trunc.D, trunc.P):
        np.testing.assert_array_equal(term, 0.0)
    means = diagnostics.summary(norms)
    assert set(means) == {"A", "B", "C", "D", "P"} and len(means["B"]) == T
