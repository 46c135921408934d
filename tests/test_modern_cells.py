"""The modern cells (sLSTM, mLSTM, minGRU, minLSTM), in float64 where maths is compared: the scan
is a Python loop over `step`; the stabilised sLSTM and mLSTM compute the plain (unstabilised)
formulas written out here, and do not overflow in float32 where those do; the parallel forms
equal the recurrent ones (outputs, final carries, gradients); TRUNCATED is FULL where nothing
recurrent enters a nonlinear pre-activation and differs for the sLSTM, whose truncated per-lag
gradient is its closed form; `check_grads`; clear errors for bad options."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    MODERN_CELLS,
    MODERN_IDS,
    assert_close,
    flat,
    host,
    normal,
    random_params,
    stable_seed,
)
from jax.scipy.linalg import block_diag
from jax.test_util import check_grads

import lstm_jax
from lstm_jax import diagnostics
from lstm_jax.cells import slstm as slstm_lib

T, B, I, H = 6, 2, 3, 4
PARALLEL = [(n, c) for n, c in MODERN_CELLS if c.parallel is not None] + [
    ("mingru-linear", lstm_jax.mingru(candidate="linear")),
    ("minlstm-linear", lstm_jax.minlstm(candidate="linear")),
]


def _setup(name, cell, steps=T, hidden=H, scale=0.5):
    key = jax.random.key(stable_seed(name))
    params = random_params(cell, key, I, hidden, scale=scale)
    xs = normal(jax.random.fold_in(key, 2), (steps, B, I))
    return params, xs


def _carry(cell, name, hidden=H):
    """A random carry a run could reach: for the sLSTM `n > 0`, `|c| < n`; for the mLSTM any."""
    carry = jax.eval_shape(lambda: cell.initial_carry((B,), hidden, jnp.float64))
    rng = np.random.default_rng(stable_seed(name) + 5)  # drawn on the host: nothing compiled
    if hasattr(carry, "c"):  # sLSTM
        n = 0.5 + rng.uniform(0, 1, (B, hidden))
        c = n * rng.uniform(-1, 1, (B, hidden))
        m = rng.standard_normal((B, hidden))
        return jax.device_put(type(carry)(h=np.tanh(c), c=c, n=n, m=m))
    return jax.tree.map(lambda a: jax.device_put(0.5 * rng.standard_normal(a.shape)), carry)


def _close(a, b, rtol=1e-10, atol=1e-12):
    assert_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize(("name", "cell"), MODERN_CELLS, ids=MODERN_IDS)
def test_scan_is_a_loop_over_step(x64, name, cell):
    params, xs = _setup(name, cell)

    @jax.jit
    def scan_and_loop(params, xs, carry):
        scanned = lstm_jax.unroll(cell, params, xs, carry, impl="scan")
        loop_ys = []
        for x in xs:
            carry, y = cell.step(params, carry, x)
            loop_ys.append(y)
        return scanned, (carry, jnp.stack(loop_ys))

    scanned, looped = scan_and_loop(params, xs, _carry(cell, name))
    _close(scanned, looped)


# ---------------------------------------------------------------------------------------------
# Stabilised = plain


def _dense_recurrent(r):
    """`R_g` for each gate as one dense `[H, H]` (in → out) block-diagonal matrix."""
    return [block_diag(*r[g]) for g in range(4)]


def _slstm_plain(params, xs, h, c, n, exp_forget):
    """The sLSTM without its stabiliser: `i = exp(ī)`, `f = σ(f̄)` or `exp(f̄)` (a `lax.scan`
    over the steps: one compiled loop body whatever the length)."""
    recurrent = jnp.concatenate(_dense_recurrent(params.r), axis=1)  # [H, 4H]

    def step(state, x):
        h, c, n = state
        i_pre, f_pre, z_pre, o_pre = jnp.split(x @ params.w + params.b + h @ recurrent, 4, -1)
        f = jnp.exp(f_pre) if exp_forget else jax.nn.sigmoid(f_pre)
        i = jnp.exp(i_pre)
        c = f * c + i * jnp.tanh(z_pre)
        n = f * n + i
        h = jax.nn.sigmoid(o_pre) * c / n
        return (h, c, n), h

    return jax.lax.scan(step, (h, c, n), xs)[1]


def _mlstm_plain(params, xs, heads, C, n):
    """The mLSTM without its stabiliser, head by head: `h = o ⊙ C q / max(|nᵀq|, 1)` (a
    `lax.scan` over the steps)."""
    hidden = (params.w.shape[1] - 2 * heads) // 4
    d = hidden // heads

    def step(state, x):
        C, n = state
        proj = x @ params.w + params.b
        out = []
        for k in range(heads):
            q, kk, v, o_pre = (
                proj[:, g * hidden + k * d : g * hidden + (k + 1) * d] for g in range(4)
            )
            kk = kk / np.sqrt(d)
            i = jnp.exp(proj[:, 4 * hidden + k])[:, None]
            f = jax.nn.sigmoid(proj[:, 4 * hidden + heads + k])[:, None]
            C = C.at[:, k].set(f[..., None] * C[:, k] + i[..., None] * v[:, :, None] * kk[:, None])
            n = n.at[:, k].set(f * n[:, k] + i * kk)
            num = jnp.einsum("bde,be->bd", C[:, k], q)
            den = jnp.maximum(jnp.abs(jnp.sum(n[:, k] * q, -1)), 1.0)[:, None]
            out.append(jax.nn.sigmoid(o_pre) * num / den)
        return (C, n), jnp.concatenate(out, -1)

    return jax.lax.scan(step, (C, n), xs)[1]


STABILISED = [("slstm", "zero"), ("slstm-exp", "zero"), ("slstm", "random")]
STABILISED += [("mlstm", "zero"), ("mlstm", "random")]


@functools.partial(jax.jit, static_argnums=(0, 1))
@chex.assert_max_traces(n=len({name for name, _ in STABILISED}))  # one program for both starts
def _stabilised_and_plain(cell, name, params, xs, carry, weights):
    """Ours and the plain formulas' outputs, and their gradients."""
    scale = jnp.exp(carry.m)
    if name.startswith("slstm"):

        def plain(p):
            exp_forget = name == "slstm-exp"
            return _slstm_plain(p, xs, carry.h, carry.c * scale, carry.n * scale, exp_forget)

    else:

        def plain(p):
            C, n = carry.C * scale[..., None, None], carry.n * scale[..., None]
            return _mlstm_plain(p, xs, cell.options.heads, C, n)

    def ours(p):
        return lstm_jax.unroll(cell, p, xs, carry, impl="scan")[1]

    grad = jax.grad(lambda p, f: jnp.sum(weights * f(p)), argnums=0)
    return (ours(params), plain(params)), (grad(params, ours), grad(params, plain))


@pytest.mark.parametrize(("name", "start"), STABILISED)
def test_stabilised_equals_plain(x64, name, start):
    """Outputs and parameter gradients of the stabilised cell equal the plain formulas, from the
    zero carry and from a random one (whose plain state is the stabilised one times `exp(m)`)."""
    cell = dict(MODERN_CELLS)[name]
    params, xs = _setup(name, cell)
    carry = _carry(cell, name) if start == "random" else cell.initial_carry((B,), H, jnp.float64)
    weights = normal(jax.random.key(1), (T, B, H))
    (ys, plain_ys), (grads, plain_grads) = _stabilised_and_plain(
        cell, name, params, xs, carry, weights
    )
    _close(ys, plain_ys)
    _close(grads, plain_grads, rtol=1e-9)


@pytest.mark.parametrize(("name", "cell"), MODERN_CELLS[:3], ids=MODERN_IDS[:3])
def test_stabilised_does_not_overflow_in_float32(name, cell):
    """Pre-activations in the hundreds over 300 steps: the plain formulas overflow (inf or
    NaN), the cells stay finite, outputs and gradients both."""
    with jax.enable_x64(True):
        params, xs = host(_setup(name, cell, steps=300, scale=40.0))
    params, xs = jax.tree.map(lambda a: a.astype(np.float32), (params, xs))

    @jax.jit
    def plain_and_ours(params, xs):
        """The plain formulas' outputs; the cell's loss, its gradients and outputs."""
        carry = cell.initial_carry((B,), H, jnp.float32)
        if name.startswith("slstm"):
            plain = _slstm_plain(params, xs, *carry[:3], name == "slstm-exp")
        else:
            plain = _mlstm_plain(params, xs, cell.options.heads, carry.C, carry.n)

        def loss(p):
            return jnp.sum(lstm_jax.unroll(cell, p, xs, carry, impl="scan")[1] ** 2)

        return plain, jax.value_and_grad(loss)(params), lstm_jax.unroll(cell, params, xs, carry)[1]

    plain, (value, grads), ys = host(plain_and_ours(params, xs))
    assert not np.all(np.isfinite(plain))
    assert np.isfinite(value) and np.all(np.isfinite(flat(grads)))
    assert np.abs(ys).max() <= 1.0 + 1e-6 or (name == "mlstm")


# ---------------------------------------------------------------------------------------------
# Parallel = recurrent


@pytest.mark.parametrize(
    ("name", "cell", "option"),
    [(n, c, "forward") for n, c in PARALLEL]
    + [(n, c, o) for n, c in PARALLEL[:2] for o in ("reverse", "lengths")],
    ids=[f"forward-{n}" for n, _ in PARALLEL]
    + [f"{o}-{n}" for n, _ in PARALLEL[:2] for o in ("reverse", "lengths")],
)
def test_parallel_equals_recurrent(x64, name, cell, option):
    """Outputs, the final carry, and gradients with respect to params and the initial carry;
    also run backwards, and with `lengths` (padded steps leave the carry alone, output 0)."""
    params, xs = _setup(name, cell)
    carry = _carry(cell, name)
    weights = jax.random.normal(jax.random.key(2), (T, B, H), jnp.float64)
    kwargs = {"reverse": option == "reverse"}
    if option == "lengths":
        kwargs["lengths"] = jnp.array([T - 2, 1])

    def run(impl, params, carry):
        def loss(p, c):
            final, ys = lstm_jax.unroll(cell, p, xs, c, impl=impl, **kwargs)
            return jnp.sum(weights * ys) + sum(jnp.sum(jnp.sin(f)) for f in jax.tree.leaves(final))

        return lstm_jax.unroll(cell, params, xs, carry, impl=impl, **kwargs), jax.grad(
            loss, argnums=(0, 1)
        )(params, carry)

    parallel, scan = jax.jit(lambda p, c: [run(impl, p, c) for impl in ("parallel", "scan")])(
        params, carry
    )
    _close(parallel, scan)


def test_mlstm_parallel_final_carry_continues_the_sequence(x64):
    """Two halves run in parallel form, the second from the first's final carry, equal one run:
    the row maximum `m_T` is the recurrent stabiliser, so the carry is interchangeable."""
    cell = lstm_jax.mlstm(heads=2)
    params, xs = _setup("mlstm", cell, steps=8)

    @jax.jit
    def whole_and_halves(params, xs):
        whole = lstm_jax.unroll(cell, params, xs, impl="parallel")
        first, ys1 = lstm_jax.unroll(cell, params, xs[:4], impl="parallel")
        last, ys2 = lstm_jax.unroll(cell, params, xs[4:], first, impl="parallel")
        return whole, (last, jnp.concatenate([ys1, ys2]))

    _close(*whole_and_halves(params, xs))


# ---------------------------------------------------------------------------------------------
# Gradient modes


def _grads(cell, params, xs, carry, **kwargs):
    def loss(p):
        return jnp.sum(jnp.sin(lstm_jax.unroll(cell, p, xs, carry, impl="scan", **kwargs)[1]))

    return jax.grad(loss)(params)


@pytest.mark.parametrize(("name", "cell"), MODERN_CELLS, ids=MODERN_IDS)
def test_truncated_is_full_only_without_nonlinear_recurrence(x64, name, cell):
    """mLSTM, minGRU, minLSTM: nothing to cut (`truncation_cuts` False) and the gradients
    are equal; the sLSTM's `h_{t-1}` enters its gates, so they differ. Windowed TBPTT with a
    window of T is FULL, and a window of 2 changes the gradient for every cell."""
    params, xs = _setup(name, cell)
    options = ({}, {"gradient": "truncated"}, {"window": T}, {"window": 2})
    full, truncated, window_t, windowed = (
        flat(g)
        for g in jax.jit(lambda *args: [_grads(cell, *args, **kw) for kw in options])(
            params, xs, _carry(cell, name)
        )
    )
    if name.startswith("slstm"):
        assert cell.truncation_cuts
        assert np.max(np.abs(truncated - full)) > 1e-3 * np.max(np.abs(full))
    else:
        assert not cell.truncation_cuts
        np.testing.assert_array_equal(truncated, full)
    np.testing.assert_allclose(window_t, full, rtol=1e-12)
    assert np.max(np.abs(windowed - full)) > 1e-3 * np.max(np.abs(full))


@pytest.mark.parametrize("name", ["slstm", "slstm-exp"])
@pytest.mark.parametrize("start", ["zero", "random"])
def test_slstm_truncated_per_lag_gradient_is_the_forget_product(x64, name, start):
    """Under TRUNCATED, `∂L/∂c_k = ∂L/∂h_T ⊙ o_T/n_T ⊙ ∏_{j>k} f'_j` and `∂L/∂n_k = -∂L/∂h_T ⊙
    o_T c_T/n_T² ⊙ ∏_{j>k} f'_j` (the probes of `per_lag_gradients` against the closed form);
    under FULL the cut paths add to it. The product also equals `∏ f'_j` multiplied out."""
    cell = dict(MODERN_CELLS)[name]
    params, xs = _setup(name, cell, steps=8)
    carry = _carry(cell, name) if start == "random" else None
    target = normal(jax.random.key(4), (B, H))

    @jax.jit
    def probes_path_and_products(params, xs, carry, target):
        """The truncated and full probes, the closed-form path, and the forget gates' product
        multiplied out step by step from the cell's own f'_t: one program."""

        def loss_fn(h):
            return jnp.sum(jnp.sin(h * target))

        lags = diagnostics.per_lag_gradients(cell, params, xs, loss_fn, carry, gradient="truncated")
        path = diagnostics.slstm_truncated_path(cell, params, xs, carry)
        state = carry if carry is not None else cell.initial_carry((B,), H, jnp.float64)
        factors = []
        for x in xs:
            p = slstm_lib.parts(cell.options, params, state, x)
            factors.append(p.f)
            state = p.carry
        products = jnp.cumprod(jnp.stack(factors)[::-1], axis=0)[::-1]
        full = diagnostics.per_lag_gradients(cell, params, xs, loss_fn, carry)
        return lags, path, products, full

    lags, path, products, full = host(probes_path_and_products(params, xs, carry, target))
    dh_t = lags.h[-1]  # ∂L/∂h_T
    _close(lags.c[:-1], dh_t * path.c)
    _close(lags.n[:-1], dh_t * path.n)
    _close(path.forget_product, products)
    if start == "zero":
        np.testing.assert_array_equal(path.forget_product[0], 0.0)  # f'_1 = 0: empty carry
    assert not np.allclose(full.c[:-1], lags.c[:-1])


@pytest.mark.parametrize(("name", "cell"), MODERN_CELLS, ids=MODERN_IDS)
def test_check_grads(x64, name, cell):
    """Forward- and reverse-mode derivatives against finite differences, through the scan and
    (where there is one) the parallel form."""
    params, xs = _setup(name, cell, steps=4)
    carry = _carry(cell, name)
    impls = ["scan"] + (["parallel"] if cell.parallel is not None else [])
    for impl in impls:

        @jax.jit  # check_grads evaluates it and its derivatives at several points
        def f(p, xs, impl=impl):
            return lstm_jax.unroll(cell, p, xs, carry, impl=impl)[1]

        modes = ("fwd", "rev") if impl == "scan" else ("rev",)
        check_grads(f, (params, xs), order=1, modes=modes, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Errors


def test_bad_options_give_clear_errors():
    with pytest.raises(ValueError, match=r"sLSTM heads=3 must divide hidden_size=4"):
        lstm_jax.slstm(heads=3).init(jax.random.key(0), 2, 4)
    with pytest.raises(ValueError, match=r"mLSTM heads=3 must divide hidden_size=4"):
        lstm_jax.mlstm(heads=3).init(jax.random.key(0), 2, 4)
    with pytest.raises(ValueError, match=r"forget_gate must be one of \['exp', 'sigmoid'\]"):
        lstm_jax.slstm(forget_gate="tanh")
    with pytest.raises(ValueError, match=r"forget_gate must be one of"):
        lstm_jax.mlstm(forget_gate="relu")
    with pytest.raises(ValueError, match=r"heads must be a positive int, got 0"):
        lstm_jax.slstm(heads=0)
    with pytest.raises(ValueError, match=r"candidate must be one of \['g', 'linear'\]"):
        lstm_jax.mingru(candidate="tanh")
    with pytest.raises(ValueError, match=r"bad options for cell 'minlstm'"):
        lstm_jax.cells.build_cell("minlstm", options={"heads": 2})


def test_parallel_where_it_does_not_apply():
    xs = jnp.ones((3, 2, 2))
    slstm = lstm_jax.slstm()
    with pytest.raises(ValueError, match=r"impl='parallel' does not support this cell"):
        lstm_jax.unroll(slstm, slstm.init(jax.random.key(0), 2, 4), xs, impl="parallel")
    mingru = lstm_jax.mingru()
    params = mingru.init(jax.random.key(0), 2, 4)
    with pytest.raises(ValueError, match=r"impl='parallel' does not support window, lengths "):
        lstm_jax.unroll(
            mingru, params, xs, lengths=jnp.array([1, 2]), window=2, reverse=True, impl="parallel"
        )
    with pytest.raises(ValueError, match=r"impl must be one of \['auto', 'fused', 'parallel'"):
        lstm_jax.unroll(mingru, params, xs, impl="quadratic")
    # a parallel form is FULL's: TRUNCATED may use it only where the cell declares no cuts
    cutting = mingru._replace(truncation_cuts=True)
    lstm_jax.unroll(mingru, params, xs, gradient="truncated", impl="parallel")
    with pytest.raises(ValueError, match=r"does not support gradient='truncated' for this cell"):
        lstm_jax.unroll(cutting, params, xs, gradient="truncated", impl="parallel")


def test_docstring_examples_run():
    """The doctest examples in the modern cells' docstrings (and the nnx wrapper's) hold."""
    import doctest

    from lstm_jax.cells import minrnn, mlstm
    from lstm_jax.nn import nnx as lnnx

    for module in (slstm_lib, mlstm, minrnn, lnnx):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
