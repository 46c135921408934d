"""A cell defined entirely here, with its derivation, runs through every generic part of the
library without a library change: `unroll` (scan and fused), `analytic.backward`, the truncated
mode, `diagnostics.per_lag_norms`, `stacked` / `bidirectional`, the flax wrappers and the
trainer (after one `register_cell`).

The leaky Elman cell, `a` a fixed leak rate::

    u_t = tanh(W x_t + R h_{t-1} + b),   h_t = (1 - a) h_{t-1} + a u_t
    δū_t = a δh_t ⊙ (1 - u_t²),   δh_{t-1} = (1 - a) δh_t + Rᵀ δū_t

Truncation (cut every recurrent input into a nonlinear pre-activation, keep the linear carry
paths) keeps `(1 - a) δh_t` only, so under TRUNCATED `∂h_T/∂h_k = (1 - a)^{T-k} I` exactly.
Its params are not named `w`/`r`, so `Cell.sizes` is the cell's own.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, host, normal, random_carry, random_params

import lstm_jax
from lstm_jax import analytic, diagnostics
from lstm_jax.cells import registry
from lstm_jax.cells.protocol import outer_sum, sum_leading, zero_state
from lstm_jax.modes import Gradient, cut_nothing
from lstm_jax.nn import linen as lj

T, B, I, H = 6, 3, 4, 5
LEAK = 0.3


class LeakyParams(NamedTuple):
    kernel: jax.Array  # [I, H]
    recurrent: jax.Array  # [H, H]
    bias: jax.Array  # [H]


def _init(key, input_size, hidden_size, dtype=jnp.float32):
    k_w, k_r = jax.random.split(key)
    return LeakyParams(
        kernel=jax.random.normal(k_w, (input_size, hidden_size), dtype) / input_size**0.5,
        recurrent=jax.nn.initializers.orthogonal()(k_r, (hidden_size, hidden_size), dtype),
        bias=jnp.zeros((hidden_size,), dtype),
    )


def _step(a, params, h, x, cut=cut_nothing):
    u = jnp.tanh(x @ params.kernel + params.bias + cut(h) @ params.recurrent)
    h = (1 - a) * h + a * u
    return h, h


def _forward(a, params, h_prev, xw):
    u = jnp.tanh(xw + params.bias + h_prev @ params.recurrent)
    return (1 - a) * h_prev + a * u, u, None


def _delta(a, params, h_prev, h, u, saved, dh, dy, mode):
    dh = dh + dy
    d_pre = a * dh * (1 - u**2)
    through_r = d_pre @ params.recurrent.T if mode is Gradient.FULL else 0.0
    return (1 - a) * dh + through_r, d_pre, None


def _grads(params, x, h_prev, h, d_pre, saved):
    return LeakyParams(outer_sum(x, d_pre), outer_sum(h_prev, d_pre), sum_leading(d_pre))


def leaky(alpha: float = LEAK) -> lstm_jax.Cell:
    """The leaky Elman cell as a `Cell` with its `Derivation`."""
    step = functools.partial(_step, alpha)
    derivation = lstm_jax.Derivation(
        project=lambda params, xs: xs @ params.kernel,
        forward=functools.partial(_forward, alpha),
        delta=functools.partial(_delta, alpha),
        grads=_grads,
        input_grad=lambda params, d: d @ params.kernel.T,
    )
    return lstm_jax.Cell(
        init=_init,
        initial_carry=zero_state,
        step=step,
        truncated_step=functools.partial(step, cut=jax.lax.stop_gradient),
        options=("leaky", alpha),
        sizes=lambda params: (params.kernel.shape[0], params.recurrent.shape[0]),
        derivation=derivation,
    )


CELL = leaky()


def _setup(seed: int = 0, batch: tuple[int, ...] = (B,)) -> tuple[Any, Any, jax.Array]:
    k_p, k_c, k_x = jax.random.split(jax.random.key(seed), 3)
    params = random_params(CELL, k_p, I, H)
    carry = random_carry(CELL, k_c, batch, H)
    return params, carry, normal(k_x, (T, *batch, I))


def _close(a, b, tol=1e-11):
    assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", ["full", "truncated"])
def test_fused_unroll_equals_the_scan(x64, mode):
    params, carry, xs = _setup()

    def loss(impl, params, xs, carry):
        def f(params, xs, carry):
            final, ys = lstm_jax.unroll(CELL, params, xs, carry, gradient=mode, impl=impl)
            return jnp.sum(jnp.sin(ys)) + jnp.sum(final**2)

        return jax.value_and_grad(f, argnums=(0, 1, 2))(params, xs, carry)

    fused, scan = jax.jit(lambda *args: [loss(impl, *args) for impl in ("fused", "scan")])(
        params, xs, carry
    )
    _close(fused, scan)
    assert lstm_jax.driver.resolve_impl("auto", CELL) is lstm_jax.Impl.FUSED


@pytest.mark.parametrize("mode", ["full", "truncated"])
def test_analytic_backward_equals_autodiff_of_the_scan(x64, mode):
    params, carry, xs = _setup(1)
    dys = normal(jax.random.key(5), (T, B, H))
    dfinal = normal(jax.random.key(6), (B, H))

    @jax.jit
    def analytic_and_vjp(params, xs, carry, dys, dfinal):
        _, vjp = jax.vjp(
            lambda p, x, c: lstm_jax.unroll(CELL, p, x, c, gradient=mode, impl="scan"),
            params,
            xs,
            carry,
        )
        got = analytic.backward(CELL, params, xs, carry, dys, dfinal, gradient=mode)
        return tuple(got), vjp((dfinal, dys))

    _close(*analytic_and_vjp(params, xs, carry, dys, dfinal), 1e-10)


def test_truncated_per_lag_gradient_is_the_leak_product(x64):
    """`∂L/∂h_k = (1 - a)^{T-k} ∂L/∂h_T` under TRUNCATED; FULL adds the paths through `R`."""
    params, _, xs = _setup(2)

    @jax.jit
    def norms_and_direct(params, xs):
        """Both modes' per-lag norms (L = Σ h_T) and the gradient at h_0 by jax.grad."""
        norms = [
            diagnostics.per_lag_norms(CELL, params, xs, gradient=mode)
            for mode in ("truncated", "full")
        ]
        direct = jax.grad(lambda c: jnp.sum(lstm_jax.unroll(CELL, params, xs, c, impl="scan")[0]))
        return norms, direct(jnp.zeros((B, H)))

    (norms, full), direct = host(norms_and_direct(params, xs))
    want = np.sqrt(H) * (1 - LEAK) ** np.arange(T, -1, -1.0)
    np.testing.assert_allclose(norms[:, 0], want, rtol=1e-12)
    np.testing.assert_allclose(full[0], np.linalg.norm(direct, axis=-1), rtol=1e-12)
    assert float(np.abs(full[0] - norms[0]).max()) > 1e-3  # the modes differ


def test_stacked_and_bidirectional_compose_the_new_cell(x64):
    params, _, xs = _setup(3)
    init = jax.jit(lstm_jax.init_stacked, static_argnums=(0, 2, 3, 4), static_argnames="dtype")
    layers = init(CELL, jax.random.key(7), I, H, 2, dtype=jnp.float64)

    @jax.jit
    def composed(params, layers, xs):
        """Stacked vs layer by layer, bidirectional's backward half vs a reversed unroll, and
        the stack's gradients on the scan and the fused path: one program."""
        finals, ys = lstm_jax.stacked(CELL, layers, xs)
        _, first = lstm_jax.unroll(CELL, layers[0], xs)
        last, want = lstm_jax.unroll(CELL, layers[1], first)
        (_, _), both = lstm_jax.bidirectional(CELL, (params, params), xs)
        _, backward = lstm_jax.unroll(CELL, params, xs[::-1])
        grads = [
            jax.grad(
                lambda p, impl=impl: jnp.sum(
                    lstm_jax.stacked(CELL, p, xs, options=lstm_jax.UnrollOptions(impl=impl))[1]
                )
            )(layers)
            for impl in ("scan", "fused")
        ]
        return ((finals[1], ys), (last, want)), (both[..., H:], backward[::-1]), grads

    stack, bidirectional, (scan, fused) = composed(params, layers, xs)
    _close(*stack, 1e-12)
    _close(*bidirectional, 1e-12)
    _close(fused, scan)


def test_flax_wrappers_run_the_new_cell(x64):
    _, _, xs = _setup(4)
    module = nn.RNN(lj.CellModule(CELL, H, param_dtype=jnp.float64), time_major=True)
    layer = lj.RNN(CELL, H, num_layers=2, param_dtype=jnp.float64, time_major=True)

    @jax.jit
    def wrapped_and_functional(xs):
        """Each wrapper's outputs (its own init) and the functional API's on its params."""
        variables = module.init(jax.random.key(8), xs)
        params = variables["params"]["cell"]["cell"]
        lvars = layer.init(jax.random.key(9), xs)
        return [
            (module.apply(variables, xs), lstm_jax.unroll(CELL, params, xs)[1]),
            (layer.apply(lvars, xs)[1], lstm_jax.stacked(CELL, lvars["params"]["layers"], xs)[1]),
        ]

    for got, want in wrapped_and_functional(xs):
        _close(got, want, 1e-12)


def test_bad_params_for_the_new_cell_are_named_errors():
    params = random_params(CELL, jax.random.key(0), I, H, jnp.float32)
    with pytest.raises(ValueError, match=r"params.recurrent has shape \(5, 4\) but expected"):
        lstm_jax.unroll(CELL, params._replace(recurrent=jnp.ones((H, H - 1))), jnp.ones((T, I)))
    with pytest.raises(ValueError, match="xs has input size 3"):
        lstm_jax.unroll(CELL, params, jnp.ones((T, I - 1)))


def test_the_trainer_runs_the_new_cell_by_name(tmp_path, monkeypatch):
    from lstm_jax.training.config import load
    from lstm_jax.training.trainer import train

    monkeypatch.setattr(registry, "CELLS", dict(registry.CELLS))  # keep the registration local
    lstm_jax.register_cell("leaky", leaky)
    with pytest.raises(ValueError, match="already registered"):
        lstm_jax.register_cell("leaky", lambda: CELL)
    config = load(
        Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml",
        "tiny",
        (
            "model.cell=leaky",
            "model.variant=null",
            "model.options={alpha: 0.5}",
            "training.steps=30",
            "training.stopping.when_solved=false",
        ),
    )
    summary = train(config, tmp_path / "run", progress=False, log=lambda s: None)
    assert summary.status == "budget" and summary.steps == 30
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 30 and np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # it learns something
