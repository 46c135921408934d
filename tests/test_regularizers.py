"""Pascanu et al. (2013)'s Ω (`backward.regularizers.omega`) against its formula written with the
closed-form Elman Jacobian `diag(φ'_t) R` and an explicit backward recursion (float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import host, normal, random_params

import lstm_jax
from lstm_jax.backward.regularizers import OmegaForm, omega, resolve_omega_form
from lstm_jax.cells import elman

T, B, I, H = 7, 2, 3, 5


def _loss(states, targets):
    return 0.5 * jnp.sum((states - targets) ** 2)


def _explicit(cell, params, xs, targets):
    """Ω by hand: states by a loop, δ_t = (s_t - y_t) + δ_{t+1} J_{t+1}, J from elman.jacobian."""
    s = jnp.zeros((B, H), xs.dtype)
    states = []
    for x in xs:
        s, _ = cell.step(params, s, x)
        states.append(s)
    fixed = jax.lax.stop_gradient(params)
    jac = [elman.jacobian(fixed, jax.lax.stop_gradient(h), "full", cell.options) for h in states]
    deltas = [None] * T
    deltas[-1] = jax.lax.stop_gradient(states[-1] - targets[-1])
    for t in range(T - 2, -1, -1):
        carried = jnp.einsum("ba,bac->bc", deltas[t + 1], jac[t + 1])
        deltas[t] = jax.lax.stop_gradient(states[t] - targets[t] + carried)
    total = 0.0
    for t in range(1, T):
        j_t = elman.jacobian(params, states[t], "full", cell.options)  # differentiable
        back = jnp.einsum("ba,bac->bc", deltas[t], j_t)
        ratio = jnp.linalg.norm(back, axis=-1) / jnp.linalg.norm(deltas[t], axis=-1)
        total = total + jnp.sum((ratio - 1) ** 2)
    return total / B


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_omega_equals_its_formula_and_so_does_its_gradient(x64, activation):
    cell = lstm_jax.rnn(activation=activation)
    params = random_params(cell, jax.random.key(0), I, H)
    xs = normal(jax.random.key(1), (T, B, I))
    targets = normal(jax.random.key(2), (T, B, H))

    @jax.jit
    def values_and_gradients(params, xs, targets):
        """Ω and the formula's, and their gradients: one program."""

        def ours(params):
            return omega(cell, params, xs, lambda s: _loss(s, targets))

        def explicit(params):
            return _explicit(cell, params, xs, targets)

        return [jax.value_and_grad(f)(params) for f in (ours, explicit)]

    (got, got_grad), (want, want_grad) = host(values_and_gradients(params, xs, targets))
    assert float(want) > 1e-3  # the Jacobians do not preserve norms: Ω is not vacuous
    np.testing.assert_allclose(got, want, rtol=1e-10)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12), got_grad, want_grad
    )


def _explicit_released(cell, params, xs, targets):
    """Ω as Pascanu et al.'s code computes it, by hand: squared-norm ratios at every step
    t = 0..T-1 (the first carried back to h_0 = 0), averaged over the (step, sequence) pairs,
    with the states and δ held fixed, so only R (inside diag(φ'_t) R) is differentiated."""
    s = jnp.zeros((B, H), xs.dtype)
    states = []
    for x in xs:
        s, _ = cell.step(jax.lax.stop_gradient(params), s, x)
        states.append(jax.lax.stop_gradient(s))
    fixed = jax.lax.stop_gradient(params)
    deltas = [None] * T
    deltas[-1] = states[-1] - targets[-1]
    for t in range(T - 2, -1, -1):
        jac = elman.jacobian(fixed, states[t + 1], "full", cell.options)
        deltas[t] = states[t] - targets[t] + jnp.einsum("ba,bac->bc", deltas[t + 1], jac)
    total = 0.0
    for t in range(T):
        back = jnp.einsum("ba,bac->bc", deltas[t], elman.jacobian(params, states[t], "full"))
        ratio = jnp.sum(back**2, axis=-1) / jnp.sum(deltas[t] ** 2, axis=-1)
        total = total + jnp.sum((ratio - 1) ** 2)
    return total / (T * B)


def test_omega_released_form_equals_pascanu_code_and_reaches_r_only(x64):
    cell = lstm_jax.rnn()
    params = random_params(cell, jax.random.key(0), I, H)
    xs = normal(jax.random.key(1), (T, B, I))
    targets = normal(jax.random.key(2), (T, B, H))

    @jax.jit
    def values_and_gradients(params, xs, targets):
        """The released Ω and the code's formula, their gradients, and the paper's Ω."""

        def ours(params):
            return omega(cell, params, xs, lambda s: _loss(s, targets), form="released")

        def explicit(params):
            return _explicit_released(cell, params, xs, targets)

        paper = omega(cell, params, xs, lambda s: _loss(s, targets))
        return [jax.value_and_grad(f)(params) for f in (ours, explicit)], paper

    ((value, got), (want, want_grad)), paper = host(values_and_gradients(params, xs, targets))
    assert float(want) > 1e-3
    np.testing.assert_allclose(value, want, rtol=1e-10)
    assert not np.isclose(float(value), float(paper))
    np.testing.assert_allclose(got.r, want_grad.r, rtol=1e-9)
    assert float(np.abs(got.r).max()) > 1e-6
    np.testing.assert_array_equal(got.w, 0.0)  # the code adds α ∂Ω/∂W_hh to W_hh alone
    np.testing.assert_array_equal(got.b, 0.0)
    with pytest.raises(ValueError, match=r"Ω form must be one of \['paper', 'released'\]"):
        resolve_omega_form("eq9")


def test_omega_skips_the_steps_past_a_sequence_length(x64):
    cell = lstm_jax.rnn()
    params = random_params(cell, jax.random.key(0), I, H)
    xs = normal(jax.random.key(1), (T, B, I))
    targets = normal(jax.random.key(2), (T, B, H))

    @jax.jit
    def batch_and_rows(params, xs, targets):
        """Ω of the padded batch, and of its two rows on their own."""
        lengths = jnp.array([T, T - 3])
        valid = (jnp.arange(T)[:, None] < lengths[None, :])[..., None]
        batch = omega(cell, params, xs, lambda s: _loss(s * valid, targets * valid), lengths)
        first = omega(cell, params, xs[:, :1], lambda s: _loss(s, targets[:, :1]))
        short = omega(cell, params, xs[: T - 3, 1:], lambda s: _loss(s, targets[: T - 3, 1:]))
        return batch, first, short

    batch, first, short = batch_and_rows(params, xs, targets)
    np.testing.assert_allclose(2 * batch, first + short, rtol=1e-10)


def test_omega_needs_an_array_carry():
    cell = lstm_jax.lstm()
    params = random_params(cell, jax.random.key(0), I, H, jnp.float32)
    with pytest.raises(TypeError, match=r"Ω needs a cell whose carry is one array .*LSTMCarry"):
        omega(cell, params, jnp.zeros((T, B, I)), jnp.sum)


def test_trainer_adds_alpha_omega_to_the_loss(x64):
    """`training.omega: α`: one SGD step follows ∇(E + α Ω), Ω computed on the layer's states
    with the readout and the task loss; Ω is logged, the logged loss is E alone."""
    from conftest import ROOT

    from lstm_jax.training import model
    from lstm_jax.training.config import load
    from lstm_jax.training.experiment import build, init_state

    overrides = (
        "training.omega.weight=2.0",
        "optimizer.clip_norm=null",
        "optimizer.learning_rate=0.05",
    )
    cfg = load(ROOT / "configs" / "exploding_gradients.yaml", "tiny", overrides)
    assert cfg.training.omega.form is OmegaForm.RELEASED
    exp = build(cfg)
    state = init_state(exp)
    state = state._replace(params=jax.tree.map(lambda a: a.astype(jnp.float64), state.params))
    state = state._replace(opt_state=exp.optimizer.init(state.params))
    batch = exp.task.batch(0, 0, 8)
    batch = batch._replace(inputs=batch.inputs.astype(np.float64))
    new, stats = exp.train_step(state, batch)
    loss_fn = model.LOSSES[exp.task.loss]

    def total(params):
        (layer,), readout = params
        _, ys = model.apply(exp.cell, params, batch.inputs, lengths=batch.lengths)
        loss = loss_fn(ys, batch.targets, batch.mask)

        def of_states(states):
            return loss_fn(states @ readout.w + readout.b, batch.targets, batch.mask)

        penalty = omega(exp.cell, layer, batch.inputs, of_states, batch.lengths, form="released")
        return loss + 2.0 * penalty

    grads = jax.grad(total)(state.params)
    want = jax.tree.map(lambda p, g: p - 0.05 * g, state.params, grads)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10), new.params, want)
    assert float(stats["omega"]) > 0


def test_omega_configuration_errors():
    from conftest import ROOT

    from lstm_jax.training.config import ConfigError, load
    from lstm_jax.training.experiment import build

    path = ROOT / "configs" / "exploding_gradients.yaml"
    with pytest.raises(ConfigError, match=r"training.omega needs a cell whose carry is one array"):
        build(
            load(path, "tiny", ("training.omega.weight=1.0", "model.cell=lstm", "model.options={}"))
        )
    with pytest.raises(ConfigError, match=r"training.omega needs model.gradient=full"):
        build(load(path, "tiny", ("training.omega.weight=1.0", "model.gradient=truncated")))
    with pytest.raises(ConfigError, match=r"training.omega.weight must be >= 0"):
        load(path, "tiny", ("training.omega.weight=-1.0",))  # refused at load time
    with pytest.raises(ConfigError, match=r"training.omega.form must be one of \['paper', "):
        load(path, "tiny", ("training.omega.form=eq9",))
    with pytest.raises(ConfigError, match=r"training.omega is a section now.*omega.weight"):
        load(path, "tiny", ("training.omega=1.0",))  # the key of earlier configs
