"""Training modes on one protocol (`training.learners`): a new mode is one module and one
registration; the modes and sections of a config are checked when it loads."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

from lstm_jax.driver import UnrollOptions
from lstm_jax.modes import Gradient
from lstm_jax.training import model
from lstm_jax.training.config import ConfigError, load
from lstm_jax.training.experiment import build, init_state
from lstm_jax.training.learners import LEARNERS, Learner, TrainState, register_learner
from lstm_jax.training.schema import MOVED
from lstm_jax.training.trainer import train

QUICKSTART = ROOT / "configs" / "quickstart.yaml"
STEP_SIZE = 0.1
TRUNCATED = UnrollOptions(gradient="truncated")


# The whole of a new training mode: plain SGD with a fixed step on the 1997 truncated gradient.
def _validate(setup) -> None:
    if setup.task.stateful:
        raise ConfigError("training.learner=sgd_truncated needs a task of independent sequences")


def _init(setup, params, key):
    return None


def _step(setup):
    def loss(params, batch):
        _, outputs = model.apply(
            setup.cell, params, batch.inputs, None, lengths=batch.lengths, options=TRUNCATED
        )
        return setup.loss(outputs, batch.targets, batch.mask)

    def train_step(state, batch, key=None):
        value, grads = jax.value_and_grad(loss)(state.params, batch)
        params = jax.tree.map(lambda p, g: p - STEP_SIZE * g, state.params, grads)
        norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))
        return TrainState(params, state.opt_state, None), {"loss": value, "grad_norm": norm}

    return train_step


SGD_TRUNCATED = Learner(validate=_validate, init=_init, step=_step)


@pytest.fixture(scope="module")
def registered():
    register_learner("sgd_truncated", SGD_TRUNCATED)
    yield "sgd_truncated"
    del LEARNERS["sgd_truncated"]


def test_a_new_learner_is_one_module_and_one_registration(registered, tmp_path):
    overrides = (f"training.learner={registered}", "training.steps=3")
    config = load(QUICKSTART, "tiny", overrides)
    exp = build(config)
    start = init_state(exp)
    batch = exp.task.batch(config.training.seed, 0, config.training.batch_size)

    def truncated_loss(params):
        _, ys = model.apply(exp.cell, params, batch.inputs, None, lengths=batch.lengths,
                            options=UnrollOptions(gradient=Gradient.TRUNCATED))  # fmt: skip
        return model.LOSSES[exp.task.loss](ys, batch.targets, batch.mask)

    want = jax.tree.map(
        lambda p, g: p - STEP_SIZE * g, start.params, jax.grad(truncated_loss)(start.params)
    )
    got, _ = exp.train_step(start, batch)
    for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    summary = train(config, tmp_path / "run", progress=False, log=lambda s: None)
    assert summary.steps == 3 and summary.status == "budget"
    assert (tmp_path / "run" / "summary.json").is_file()


def test_an_unknown_learner_lists_the_registered_ones():
    config = load(QUICKSTART, "tiny", ("training.learner=sgd_fancy",))
    with pytest.raises(ConfigError, match=r"training.learner must be one of \['bptt', 'online'"):
        build(config)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_key_of_an_earlier_config_names_the_key_that_replaced_it(old):
    value = {"training.omega_form": "paper", "training.stop_on": "test"}.get(old, 1)
    with pytest.raises(ConfigError, match=rf"{old} is now {MOVED[old]}"):
        load(QUICKSTART, "tiny", (f"{old}={value}",))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("model.gradient=online", r"model.gradient=online is now training.learner=online"),
        ("training.omega=4", r"training.omega is a section now.*training.omega.weight"),
        ("model.gradient=fulll", r"model.gradient must be one of \['full', 'truncated'\]"),
        ("model.impl=cuda", r"model.impl must be one of \['auto', 'fused', 'parallel', 'scan'\]"),
        ("model.output=tanh", r"model.output must be one of \['identity', 'sigmoid'\]"),
        (
            "training.stopping.rule=val",
            r"training.stopping.rule must be one of \['test', 'train'\]",
        ),
        ("training.online.feedback=x", r"training.online.feedback must be one of \['symmetric'"),
        ("training.stopping.window=0", r"training.stopping.window must be >= 1, got 0"),
        ("training.online.update_every=0", r"training.online.update_every must be >= 1"),
        ("training.stopping.wait=3", r"unknown key 'wait'.*valid keys are \['max_loss', 'rule'"),
    ],
)
def test_modes_and_sections_are_checked_when_the_config_loads(setting, message):
    with pytest.raises(ConfigError, match=message):
        load(QUICKSTART, "tiny", (setting,))


def test_each_learner_refuses_the_sections_of_the_other():
    with pytest.raises(ConfigError, match=r"training.online applies to training.learner=online"):
        build(load(QUICKSTART, "tiny", ("training.online.algorithm=rtrl",)))
    online = ("training.learner=online", "training.omega.weight=1.0")
    with pytest.raises(ConfigError, match=r"training.learner=online needs training.omega="):
        build(load(QUICKSTART, "tiny", online))


def test_the_config_round_trips_through_its_plain_form():
    config = load(ROOT / "configs" / "continual_reber_2000.yaml", "tiny")
    from lstm_jax.training.config import from_dict

    assert from_dict(config.to_dict()) == config
    assert config.to_dict()["training"]["online"]["reset_on_error"] is True
