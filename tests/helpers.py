"""Helpers the numerical tests share: random data drawn on the host, and the comparisons.

The suite's cost is compiling XLA programs, not running them: every eager `jax` operation on a
new shape compiles one. So the numerical tests

- draw their random params, carries and inputs here with NumPy (`random_params`,
  `random_carry`, `normal`: shapes from `jax.eval_shape`, values from a generator seeded by the
  JAX key given, so a test still names its data by key): no program is compiled for test data;
- compute everything they compare in one `jax.jit`-compiled function per case (a test body
  run eagerly compiles an XLA program per operation: 68 for one float64 case of
  `test_fused_equals_scan_float64`, 1 jitted), shared across parametrised cases where the
  statics and shapes match, and compare its outputs on the host (`assert_close`).

`conftest.py` re-exports the cell lists and `random_params`/`random_carry`/`stable_seed` for the
test files that import them from there.
"""

from __future__ import annotations

import functools
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np

import lstm_jax

# (id, kind, cell) for every cell and variant; `kind` picks the reference implementation.
CELLS = (
    [("rnn", "rnn", lstm_jax.rnn())]
    + [(f"lstm-{v}", "lstm", lstm_jax.lstm(v)) for v in lstm_jax.LSTM_VARIANTS]
    + [
        ("lstm-vanilla-chrono", "lstm", lstm_jax.lstm("vanilla", chrono=50)),
        # the 1997 net: memory blocks of 2 cells sharing their gates (the test sizes H are
        # even), gate activations fed back into every unit
        ("lstm-1997-net", "lstm", lstm_jax.lstm("1997", block_size=2, gate_inputs=True)),
        ("gru-reset_after", "gru", lstm_jax.gru(reset_after=True)),
        ("gru-reset_before", "gru", lstm_jax.gru(reset_after=False)),
    ]
)
# Cells whose maths other cells' entries already cover, checked by the cheaper tests only
# (scan = fused = reference in float64): memory blocks with a forget gate, sigmoid and leaky
# Elman units.
EXTRA_CELLS = [
    ("lstm-blocks", "lstm", lstm_jax.lstm("standard", block_size=2, output_bias=-1.0)),
    ("rnn-sigmoid", "rnn", lstm_jax.rnn(activation="sigmoid")),  # Pascanu et al.'s units
    ("rnn-leaky", "rnn", lstm_jax.rnn(alpha=0.3)),  # Murray's (2019) leaky RNN, RFLO's cell
]
# The modern cells (xLSTM, minimal RNNs): no reference `kind` or derivation; their identities are
# in test_modern_cells.py, and the generic tests that need neither run them too.
MODERN_CELLS = [
    ("slstm", lstm_jax.slstm(heads=2)),
    ("slstm-exp", lstm_jax.slstm(forget_gate="exp")),
    ("mlstm", lstm_jax.mlstm(heads=2)),
    ("mingru", lstm_jax.mingru()),
    ("minlstm", lstm_jax.minlstm()),
]
MODERN_IDS = [c[0] for c in MODERN_CELLS]
CELL_IDS = [c[0] for c in CELLS]
FAMILIES = [
    next(c for c in CELLS if c[0] == name) for name in ("lstm-vanilla", "gru-reset_after", "rnn")
]
FAMILY_IDS = [c[0] for c in FAMILIES]


def stable_seed(name: str) -> int:
    """A per-name seed that is the same in every process (`hash` of a str is salted)."""
    return zlib.crc32(name.encode())


# ---------------------------------------------------------------------------------------------
# Random data, drawn on the host


def _rng(key, salt: int) -> np.random.Generator:
    """A NumPy generator seeded by a JAX key's bits (and `salt`, so that params, carries and
    inputs drawn from one key differ); reading the bits compiles nothing."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng([*np.asarray(key).ravel().tolist(), salt])


def _draw(rng: np.random.Generator, like, scale: float):
    """`like`'s tree with every leaf `scale` × N(0, 1), in its shape and dtype, on the device."""
    leaves, tree = jax.tree.flatten(like)
    drawn = [(scale * rng.standard_normal(l.shape)).astype(l.dtype) for l in leaves]
    return jax.tree.unflatten(tree, [jax.device_put(a) for a in drawn])


@functools.cache
def _params_like(cell, input_size, hidden_size, dtype):
    return jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size, hidden_size, dtype))


@functools.cache
def _carry_like(cell, batch_shape, hidden_size, dtype):
    return jax.eval_shape(lambda: cell.initial_carry(batch_shape, hidden_size, dtype))


def random_params(cell, key, input_size, hidden_size, dtype=jnp.float64, scale=0.5):
    """Params of `cell` with every leaf `scale` × N(0, 1) (biases, peepholes and b_rh too, so no
    path hides at 0), in the layout and dtypes of `cell.init`; drawn on the host from `key`."""
    dtype = jax.dtypes.canonicalize_dtype(dtype)  # float32 outside `jax.enable_x64`
    like = _params_like(cell, input_size, hidden_size, dtype)
    return _draw(_rng(key, 1), like, scale)


def random_carry(cell, key, batch_shape, hidden_size, dtype=jnp.float64, scale=0.5):
    """A carry of `cell` for `batch_shape` with every leaf `scale` × N(0, 1), drawn on the host."""
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    like = _carry_like(cell, tuple(batch_shape), hidden_size, dtype)
    return _draw(_rng(key, 2), like, scale)


def normal(key, shape, dtype=jnp.float64):
    """`jax.random.normal(key, shape, dtype)`'s role, drawn on the host: N(0, 1) of that shape."""
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    return jax.device_put(_rng(key, 3).standard_normal(shape).astype(dtype))


# ---------------------------------------------------------------------------------------------
# Comparisons


def assert_close(got, want, rtol=1e-7, atol=0.0, what=""):
    """Every leaf of `got` within `atol + rtol |want|` of `want`'s, the trees of one structure
    (`chex.assert_trees_all_close`, read on the host); `what` names the case in a failure."""
    try:
        chex.assert_trees_all_close(*jax.device_get((got, want)), rtol=rtol, atol=atol)
    except AssertionError as err:
        if not what:
            raise
        raise AssertionError(f"{what}: {err}") from None


def host(tree):
    """`tree` with its leaves as NumPy arrays: indexing and arithmetic on them compile nothing."""
    return jax.tree.map(np.asarray, jax.device_get(tree))


def flat(tree) -> np.ndarray:
    """Every leaf of `tree`, raveled and concatenated on the host in float64."""
    return np.concatenate([np.asarray(l, np.float64).ravel() for l in jax.tree.leaves(host(tree))])


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4))
def init(cell, key, input_size, hidden_size, dtype=jnp.float32):
    """`cell.init` compiled as one program (eagerly its draws and orthogonal factorisations
    compile one program per operation)."""
    return cell.init(key, input_size, hidden_size, dtype)


# ---------------------------------------------------------------------------------------------
# Online algorithms against BPTT (test_online_algorithms.py, test_eligibility.py): T steps of B
# sequences, I inputs, H units, a squared-error loss at some steps only (the last included).

ONLINE_T, ONLINE_B, ONLINE_I, ONLINE_H = 5, 2, 3, 4


def online_loss(y, target):
    value, weight = target
    return 0.5 * weight * jnp.sum((y - value) ** 2)


def bptt(cell, params, xs, carry, targets, gradient):
    """The reference: `jax.value_and_grad` of Σ_t ℓ_t through the scan unroll."""

    def total(params):
        _, ys = lstm_jax.unroll(cell, params, xs, carry, gradient=gradient, impl="scan")
        values, weights = targets
        weights = weights.reshape(-1, *[1] * (ys.ndim - 1))
        return 0.5 * jnp.sum(weights * (ys - values) ** 2)

    return jax.value_and_grad(total)(params)


bptt_jit = jax.jit(bptt, static_argnums=(0, 5))


def online_setup(cell, name, batch_shape):
    """`(params, xs, carry, targets)` for the cell named `name`, drawn on the host."""
    seed = stable_seed(name)
    params = random_params(cell, jax.random.key(seed + 1), ONLINE_I, ONLINE_H)
    k_x, k_y = jax.random.split(jax.random.key(seed))
    xs = normal(k_x, (ONLINE_T, *batch_shape, ONLINE_I))
    values = normal(k_y, (ONLINE_T, *batch_shape, ONLINE_H))
    carry = random_carry(cell, jax.random.key(7), batch_shape, ONLINE_H)
    # losses at some steps only, the last included: "at every step" and "at the end" at once
    return params, xs, carry, (values, jnp.array([0.0, 1.0, 0.0, 0.5, 1.0]))


def check_online(cell, name, gradient, batch_shape, algorithm=None, params=None):
    """`algorithm` (default: exact RTRL, `rtrl(cell, gradient)`) against `bptt`, both in one
    compiled program; returns BPTT's gradient."""
    from lstm_jax.online.protocol import accumulate
    from lstm_jax.online.rtrl import rtrl

    default, xs, carry, targets = online_setup(cell, name, batch_shape)
    params = default if params is None else params
    algorithm = algorithm or rtrl(cell, gradient)
    got, (want_loss, want) = jax.jit(
        lambda p: (
            accumulate(algorithm, p, xs, targets, online_loss, carry),
            bptt(cell, p, xs, carry, targets, gradient),
        )
    )(params)
    np.testing.assert_allclose(got.loss, want_loss, rtol=1e-12)
    assert_close(got.grads, want, rtol=1e-10, atol=1e-12)
    return want
