"""Online learning in the trainer (`training.learner: online`, `training.learners.online`): weights
updated during the sequence from an online algorithm (the 1997 traces by default, RTRL, e-prop,
RFLO, UORO...), random feedback, the reset on error, checkpoints."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import ROOT

from lstm_jax.training import checkpoint
from lstm_jax.training.config import ConfigError, load
from lstm_jax.training.experiment import build, init_state


def _config(name: str, *overrides: str):
    return load(ROOT / "configs" / f"{name}.yaml", "tiny", overrides)


def _as64(tree):
    return jax.tree.map(
        lambda a: jnp.asarray(a, jnp.float64) if a.dtype == jnp.float32 else a, tree
    )


@pytest.mark.parametrize("update_every", [1, 22])
def test_online_sgd_on_one_sequence_equals_a_truncated_sgd_step(x64, update_every):
    """The adding problem has one target per sequence, at its end: online SGD over one
    sequence (updates every step or once) applies exactly one nonzero update, the truncated
    gradient (plain SGD leaves the weights alone on a zero gradient)."""
    common = (
        "training.batch_size=1",
        "optimizer.name=sgd",
        "optimizer.learning_rate=0.3",
        "training.stopping.rule=test",
    )
    batch_exp = build(_config("adding_1997", *common, "model.gradient=truncated"))
    online_exp = build(
        _config(
            "adding_1997",
            *common,
            "training.learner=online",
            f"training.online.update_every={update_every}",
        )
    )
    batch = jax.tree.map(
        lambda a: None if a is None else (a.astype(np.float64) if a.dtype == np.float32 else a),
        batch_exp.task.batch(0, 0, 1),
    )
    assert batch.inputs.shape[0] == 22  # lengths 20-22, padded to 22
    want, _ = batch_exp.train_step(_as64(init_state(batch_exp)), batch)
    got, _ = online_exp.train_step(_as64(init_state(online_exp)), batch)
    moved = jax.tree.map(
        lambda a, b: float(jnp.max(jnp.abs(a - b))), want.params, init_state(batch_exp).params
    )
    assert max(jax.tree.leaves(moved)) > 1e-4  # the step did something
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12),
        got.params,
        want.params,
    )


@pytest.mark.parametrize(
    ("cell", "algorithm", "mode"),
    [
        (("model.variant=1997",), "rtrl", "full"),
        (
            ("model.cell=rnn", "model.variant=null", "model.options={alpha: 0.5}"),
            "rflo",
            "truncated",
        ),
        (
            ("model.cell=gru", "model.variant=null", "model.options={}"),
            "rtrl_truncated",
            "truncated",
        ),
    ],
)
def test_any_online_algorithm_trains_as_its_gradient_says(x64, cell, algorithm, mode):
    """One adding sequence, one update at its end: online SGD from `algorithm` = one SGD step
    on the gradient it computes exactly (RTRL: full BPTT; RFLO, truncated RTRL: the truncated
    one; e-prop's equality with it is in tests/test_eligibility.py)."""
    common = (
        *cell,
        "training.batch_size=1",
        "optimizer.name=sgd",
        "optimizer.learning_rate=0.3",
        "training.stopping.rule=test",
        "model.output=identity",
        "model.readout_range=null",
    )
    batch_exp = build(_config("adding_1997", *common, f"model.gradient={mode}"))
    online_exp = build(
        _config(
            "adding_1997",
            *common,
            "training.learner=online",
            f"training.online.algorithm={algorithm}",
            "training.online.update_every=22",
        )
    )
    batch = jax.tree.map(
        lambda a: None if a is None else (a.astype(np.float64) if a.dtype == np.float32 else a),
        batch_exp.task.batch(0, 0, 1),
    )
    start = _as64(init_state(batch_exp))
    want, _ = batch_exp.train_step(start, batch)
    got, _ = online_exp.train_step(_as64(init_state(online_exp)), batch)
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), want.params, start.params)
    assert max(jax.tree.leaves(moved)) > 1e-5
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
        got.params,
        want.params,
    )


def test_random_feedback_moves_the_layer_differently_and_the_readout_alike():
    """`training.online.feedback=random`: the readout's update is the exact one, the layer's
    is not."""
    common = (
        "model.variant=1997",
        "training.learner=online",
        "training.online.algorithm=traces_1997",
        "training.batch_size=1",
        "training.online.update_every=22",
        "optimizer.name=sgd",
        "training.stopping.rule=test",
    )
    exps = [
        build(_config("adding_1997", *common, f"training.online.feedback={f}"))
        for f in ("symmetric", "random")
    ]
    batch = exps[0].task.batch(0, 0, 1)
    (sym, _), (rand, _) = [e.train_step(init_state(e), batch) for e in exps]
    np.testing.assert_allclose(rand.params.readout.w, sym.params.readout.w, rtol=1e-6)
    assert not np.allclose(rand.params.rnn[0].w, sym.params.rnn[0].w)
    assert (
        init_state(exps[1]).learner_state.feedback.shape
        == (exps[1].config.model.hidden_size, 1)[::-1]
    )


def test_reset_on_error_ends_each_stream_at_its_first_error():
    """An untrained net errs at once in every episode: with the reset, it errs exactly once per
    episode (learning pauses until the next string starts); without, far more often."""
    common = (
        "model.variant=1997",
        "training.learner=online",
        "training.batch_size=1",
        "optimizer.name=sgd",
        "optimizer.learning_rate=0.0",  # weights frozen: the count is the net's, not learning's
        "task.options.chunk_length=200",
    )
    exp = build(_config("continual_reber", *common, "training.online.reset_on_error=true"))
    batch = exp.task.batch(0, 0, 1)
    episodes = 1 + int(batch.starts[1:].sum())  # the stream's first string and every later one
    _, stats = exp.train_step(init_state(exp), batch)
    assert int(stats["errors"]) == episodes
    free = build(_config("continual_reber", *common))
    _, stats = free.train_step(init_state(free), batch)
    assert "errors" not in stats or int(stats["errors"]) == 0  # counted only with the reset


def test_the_decay_schedule_counts_symbols_under_online_learning():
    """The learning-rate schedule advances once per weight update, so once per symbol under
    per-symbol online learning: `continual_reber_2000`'s decay is x0.99 per 100,000 symbols
    (its first version counted 100 updates as if they were 100 chunks, and froze every net
    within 50,000 symbols)."""
    exp = build(_config("continual_reber_2000", "optimizer.schedule=exponential"))
    state, _ = exp.train_step(init_state(exp), exp.task.batch(0, 0, 1))
    symbols = exp.task.batch(0, 0, 1).inputs.shape[0]
    assert int(optax.tree_utils.tree_get(state.opt_state, "count")) == symbols

    def rate_after(updates: int) -> float:  # SGD's step on a unit gradient after `updates`
        opt_state = optax.tree_utils.tree_set(
            exp.optimizer.init(jnp.zeros(())), count=jnp.asarray(updates, jnp.int32)
        )
        step, _ = exp.optimizer.update(jnp.ones(()), opt_state)
        return -float(step)

    np.testing.assert_allclose(rate_after(0), 0.25, rtol=1e-6)
    np.testing.assert_allclose(rate_after(100_000), 0.25 * 0.99, rtol=1e-6)
    np.testing.assert_allclose(rate_after(30_000_000), 0.25 * 0.99**300, rtol=1e-4)


@pytest.mark.parametrize("algorithm", ["traces_1997", "uoro"])
def test_online_state_survives_a_checkpoint(tmp_path, algorithm):
    """The algorithm's state (carry, traces; UORO's estimates and key), the pending sum and the
    waiting flags are saved and restored: 3 + 3 chunks through a checkpoint equal 6 straight."""
    cfg = _config(
        "continual_reber",
        "model.variant=1997",
        "training.learner=online",
        f"training.online.algorithm={algorithm}",
        "model.hidden_size=4",
        "training.batch_size=2",
        "training.online.update_every=7",  # a partial sum pending at every chunk boundary
        "training.online.reset_on_error=true",
        "optimizer.name=sgd",
        "optimizer.learning_rate=0.5",
    )
    exp = build(cfg)
    straight = init_state(exp)
    for k in range(6):
        straight, _ = exp.train_step(straight, exp.task.batch(0, k, 2))
    state = init_state(exp)
    for k in range(3):
        state, _ = exp.train_step(state, exp.task.batch(0, k, 2))
    checkpoint.save(tmp_path, 3, state, {"step": 3})
    state, _ = checkpoint.load(tmp_path, init_state(exp))
    for k in range(3, 6):
        state, _ = exp.train_step(state, exp.task.batch(0, k, 2))
    jax.tree.map(np.testing.assert_array_equal, state, straight)


@pytest.mark.parametrize(
    ("name", "overrides", "pattern"),
    [
        (
            "adding_1997",
            ("model.gradient=backprop",),
            r"model.gradient must be one of \['full', 'truncated'\], got 'backprop'",
        ),
        (
            "adding_1997",
            ("training.learner=online", "model.cell=gru", "model.variant=null", "model.options={}"),
            r"online algorithm 'traces_1997' is not defined for this cell.*valid for it: \['rtrl'",
        ),
        (
            "adding_1997",
            ("training.learner=online", "training.online.algorithm=bptt"),
            r"training.online.algorithm: unknown online algorithm 'bptt'; valid: \['eprop'",
        ),
        (
            "adding_1997",
            ("training.learner=online", "training.online.feedback=transpose"),
            r"training.online.feedback must be one of \['symmetric', 'random'\], got 'transpose'",
        ),
        (
            "adding_1997",
            ("training.learner=online", "model.num_layers=2"),
            r"needs model.num_layers=1, got 2",
        ),
        (
            "adding_1997",
            ("training.learner=online", "training.online.update_every=0"),
            r"update_every must be >= 1",
        ),
        (
            "adding_1997",
            ("training.learner=online", "training.online.reset_on_error=true"),
            r"reset_on_error needs a task that judges each step",
        ),
        (
            "continual_reber",
            ("training.online.reset_on_error=true",),
            r"training.online applies to training.learner=online; the learner is 'bptt'",
        ),
        (
            "adding_1997",
            ("training.learner=online", "optimizer.schedule=cosine"),
            r"schedule=cosine decays over training.steps weight updates, but "
            r"training.learner=online",
        ),
    ],
)
def test_online_configuration_errors(name, overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build(_config(name, "training.stopping.rule=test", *overrides))
