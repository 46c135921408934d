"""The sequence model of the trainer (`training.model`): stacked cells, the readout, the losses;
and the optimiser knobs a config reaches (`optimizers.make_optimizer`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lstm_jax
from lstm_jax.training import model
from lstm_jax.training.config import ConfigError, from_dict
from lstm_jax.training.optimizers import make_optimizer

T, B, I, H, O = 5, 3, 2, 4, 3


def test_apply_is_the_stacked_unroll_then_the_readout():
    cell = lstm_jax.gru()
    params = model.init(cell, jax.random.key(0), I, H, O, num_layers=2)
    assert len(params.rnn) == 2 and params.readout.w.shape == (H, O)
    xs = jax.random.normal(jax.random.key(1), (T, B, I))
    finals, outputs = model.apply(cell, params, xs)
    _, hs = lstm_jax.stacked(cell, params.rnn, xs)
    np.testing.assert_allclose(outputs, hs @ params.readout.w + params.readout.b, rtol=1e-6)
    assert len(finals) == 2 and outputs.shape == (T, B, O)


def test_readout_initialisations():
    """Default U(±1/√H) weights and zero bias; readout_range a: weights and bias U(±a) (1997);
    readout_std σ: N(0, σ²) weights, zero bias (Pascanu et al. 2013); not both."""
    cell, hidden = lstm_jax.rnn(), 400
    default = model.init(cell, jax.random.key(0), I, hidden, 50, 1).readout
    assert float(jnp.abs(default.w).max()) <= hidden**-0.5 and not default.b.any()
    ranged = model.init(cell, jax.random.key(0), I, hidden, 50, 1, readout_range=0.1).readout
    assert float(jnp.abs(ranged.w).max()) <= 0.1 and 0 < float(jnp.abs(ranged.b).max()) <= 0.1
    normal = model.init(cell, jax.random.key(0), I, hidden, 50, 1, readout_std=0.01).readout
    assert float(jnp.std(normal.w)) == pytest.approx(0.01, rel=0.02) and not normal.b.any()
    assert float(jnp.abs(normal.w).max()) > 0.03  # Gaussian tails, not a uniform ±0.01
    with pytest.raises(ValueError, match="readout_range or readout_std, not both"):
        model.init(cell, jax.random.key(0), I, H, O, 1, readout_range=0.1, readout_std=0.1)


def test_losses_average_over_the_masked_steps_only():
    outputs = jnp.zeros((T, B, O))
    targets = jnp.ones((T, B, O))
    mask = jnp.zeros((T, B)).at[-1].set(1.0)
    assert float(model.mse_loss(outputs, targets, mask)) == pytest.approx(O)  # Σ over outputs
    logits = jnp.zeros((T, B, O))
    labels = jnp.zeros((T, B), jnp.int32)
    assert float(model.softmax_loss(logits, labels, mask)) == pytest.approx(np.log(O))
    per_output = float(optax.sigmoid_binary_cross_entropy(jnp.zeros(()), jnp.ones(())))
    assert float(model.sigmoid_loss(logits, targets, mask)) == pytest.approx(O * per_output)
    garbage = outputs.at[0].set(1e6)  # steps outside the mask do not count
    assert float(model.mse_loss(garbage, targets, mask)) == pytest.approx(O)


def _updates(optimizer: dict, steps: int = 6) -> list[float]:
    """The update SGD-like optimisers apply to a parameter whose gradient is always 1."""
    config = from_dict(
        {"task": {"name": "adding"}, "optimizer": optimizer, "training": {"steps": 10}}
    )
    opt = make_optimizer(config)
    params = jnp.zeros(())
    state = opt.init(params)
    out = []
    for _ in range(steps):
        update, state = opt.update(jnp.ones(()), state, params)
        out.append(-float(update))
    return out


def test_schedules_warmup_and_momentum_reach_the_update():
    base = {"name": "sgd", "learning_rate": 0.5}
    np.testing.assert_allclose(_updates(base), [0.5] * 6)
    decay = _updates({**base, "schedule": "exponential", "decay_rate": 0.5, "decay_steps": 2})
    np.testing.assert_allclose(decay, [0.5 * 0.5 ** (k / 2) for k in range(6)], rtol=1e-6)
    warm = _updates({**base, "warmup_steps": 4})
    np.testing.assert_allclose(warm, [0.0, 0.125, 0.25, 0.375, 0.5, 0.5], rtol=1e-6)
    cosine = _updates({**base, "schedule": "cosine", "warmup_steps": 2})
    assert cosine[0] == 0.0 and cosine[2] == pytest.approx(0.5) and cosine[5] < cosine[2]
    momentum = _updates({**base, "name": "momentum", "momentum": 0.5})
    np.testing.assert_allclose(
        momentum, [0.5 * sum(0.5**j for j in range(k + 1)) for k in range(6)]
    )
    clipped = _updates({**base, "clip_norm": 0.1})
    np.testing.assert_allclose(clipped, [0.05] * 6, rtol=1e-6)  # ‖g‖ = 1 rescaled to 0.1


@pytest.mark.parametrize("bound", [-1.0, 0.0, float("nan")])
def test_clip_norm_must_be_positive_or_null(bound):
    # -1 would train by gradient ascent and 0 silently turn clipping off: refused at load
    with pytest.raises(ConfigError, match=r"optimizer.clip_norm must be > 0, or null"):
        from_dict({"task": {"name": "adding"}, "optimizer": {"clip_norm": bound}})
    unclipped = {"task": {"name": "adding"}, "optimizer": {"clip_norm": None}}
    assert make_optimizer(from_dict(unclipped)) is not None


@pytest.mark.parametrize(("key", "value"), [("name", "adamax"), ("schedule", "linear")])
def test_unknown_optimizer_choices_name_the_valid_ones(key, value):
    with pytest.raises(ConfigError, match=rf"optimizer.{key} must be one of \[.*'{_first(key)}'"):
        from_dict({"task": {"name": "adding"}, "optimizer": {key: value}})


def _first(key: str) -> str:
    return {"name": "sgd", "schedule": "constant"}[key]


def test_readout_configuration_errors():
    from conftest import ROOT

    from lstm_jax.training.config import load
    from lstm_jax.training.experiment import build

    path = ROOT / "configs" / "exploding_gradients.yaml"  # readout_std: 0.01
    with pytest.raises(ConfigError, match=r"model.readout_range \(0.1\) and model.readout_std"):
        build(load(path, "tiny", ("model.readout_range=0.1",)))
    with pytest.raises(ConfigError, match=r"model.readout_std must be > 0, got -1.0"):
        build(load(path, "tiny", ("model.readout_std=-1.0",)))
    # sigmoid-judged task outputs need the sigmoid output unit, not a linear readout
    reber = ROOT / "configs" / "continual_reber_2000.yaml"
    with pytest.raises(ConfigError, match=r"needs model.output=sigmoid, got .*'identity'"):
        build(load(reber, "tiny", ("model.output=identity",)))
