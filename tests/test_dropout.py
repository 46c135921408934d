"""Dropout between stacked layers and on the inputs: where it acts, its key, its off switch, in
the functional API, the flax wrappers and the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

import lstm_jax
from lstm_jax.driver.layers import init_stacked, stacked
from lstm_jax.nn import linen as lstm_linen
from lstm_jax.nn import nnx as lstm_nnx
from lstm_jax.training import model
from lstm_jax.training.config import ConfigError, load
from lstm_jax.training.experiment import build, dropout_key, init_state
from lstm_jax.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
CELL = lstm_jax.lstm()


def _setup(layers=2):
    params = jax.jit(init_stacked, static_argnums=(0, 2, 3, 4))(
        CELL, jax.random.key(0), 4, 6, layers
    )
    xs = jax.random.normal(jax.random.key(1), (7, 5, 4))
    return params, xs


def _mask(key, rate, shape):
    """The documented mask: keep with probability 1 - rate, scaled by 1 / (1 - rate)."""
    return jax.random.bernoulli(key, 1.0 - rate, shape) / (1.0 - rate)


def test_masks_sit_on_the_inputs_and_between_layers_not_after_the_last():
    params, xs = _setup()
    key = jax.random.key(7)
    _, got = stacked(CELL, params, xs, dropout=0.5, input_dropout=0.25, key=key)

    @jax.jit
    def by_hand(params, xs, key):
        """The documented masks on the inputs and between the layers, layer by layer."""
        ys = xs * _mask(jax.random.fold_in(key, 0), 0.25, xs.shape)
        for index, layer in enumerate(params):
            ys = lstm_jax.unroll(CELL, layer, ys)[1]
            if index < len(params) - 1:
                ys = ys * _mask(jax.random.fold_in(key, index + 1), 0.5, ys.shape)
        return ys

    np.testing.assert_allclose(got, by_hand(params, xs, key), rtol=1e-6, atol=1e-6)
    again = stacked(CELL, params, xs, dropout=0.5, input_dropout=0.25, key=key)[1]
    np.testing.assert_array_equal(got, again)  # the same key, the same masks
    other = stacked(CELL, params, xs, dropout=0.5, key=jax.random.key(8))[1]
    assert not np.allclose(got, other)
    plain = stacked(CELL, params, xs)[1]
    np.testing.assert_array_equal(stacked(CELL, params, xs, dropout=0.0, key=key)[1], plain)


def test_dropout_arguments_are_checked():
    params, xs = _setup(2)
    with pytest.raises(ValueError, match=r"dropout=0.5 needs a key"):
        stacked(CELL, params, xs, dropout=0.5)
    with pytest.raises(ValueError, match=r"input_dropout must be in \[0, 1\), got 1.0"):
        stacked(CELL, params, xs, input_dropout=1.0, key=jax.random.key(0))


def test_linen_rnn_dropout_uses_the_dropout_rng_and_switches_off():
    _, xs = _setup()
    xs = jnp.swapaxes(xs, 0, 1)  # batch-major, flax's default
    module = lstm_linen.RNN(CELL, 6, num_layers=2, dropout=0.5)
    variables = module.init(jax.random.key(0), xs, deterministic=True)
    plain = lstm_linen.RNN(CELL, 6, num_layers=2).apply(variables, xs)[1]
    off = module.apply(variables, xs, deterministic=True)[1]
    np.testing.assert_array_equal(off, plain)
    a = module.apply(variables, xs, deterministic=False, rngs={"dropout": jax.random.key(1)})[1]
    b = module.apply(variables, xs, deterministic=False, rngs={"dropout": jax.random.key(1)})[1]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, plain)
    assert isinstance(module, linen.Module)


def test_nnx_rnn_dropout_follows_train_and_eval():
    _, xs = _setup()
    xs = jnp.swapaxes(xs, 0, 1)
    rnn = lstm_nnx.RNN(CELL, 4, 6, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0))
    plain = stacked(CELL, nnx.as_pure(rnn.layers), xs, time_major=False)[1]
    first, second = rnn(xs)[1], rnn(xs)[1]  # training mode: a fresh mask per call
    assert not np.allclose(first, second) and not np.allclose(first, plain)
    rnn.eval()
    np.testing.assert_array_equal(rnn(xs)[1], plain)
    rnn.train()
    assert not np.allclose(rnn(xs)[1], plain)


def test_trainer_dropout_is_deterministic_per_step_and_off_at_evaluation(tmp_path):
    settings = ("model.num_layers=2", "model.dropout=0.5", "model.input_dropout=0.1")
    config = load(ROOT / "configs/quickstart.yaml", "tiny", (*settings, "training.steps=4"))
    assert train(config, tmp_path, progress=False, log=lambda _: None).steps == 4
    exp = build(config)
    state = init_state(exp)
    batch = exp.task.batch(0, 0, 8)
    loss = [float(exp.train_step(state, batch, dropout_key(0, k))[1]["loss"]) for k in (1, 1, 2)]
    assert loss[0] == loss[1] != loss[2]  # the masks are a function of (seed, step)
    logged = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    assert logged == pytest.approx(loss[0], rel=1e-6)  # step 1 of the run drew those masks
    test = exp.task.test_set(0, 8)
    out = exp.predict(state.params, test)
    _, want = model.apply(exp.cell, state.params, test.inputs, None, lengths=test.lengths)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-7)  # no masks at evaluation


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (("model.dropout=0.3",), r"acts between stacked layers and model.num_layers is 1"),
        (("model.num_layers=2", "model.dropout=1.0"), r"model.dropout must be in \[0, 1\)"),
    ],
)
def test_dropout_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        build(load(ROOT / "configs/quickstart.yaml", "tiny", settings))
