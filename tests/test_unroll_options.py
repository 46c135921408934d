"""`UnrollOptions`: the unroll's static choices travel as one value through `stacked`,
`bidirectional`, the flax wrappers and the trainer's model, and mean there what they mean to
`unroll`."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax
from lstm_jax import UnrollOptions
from lstm_jax.nn import linen as lj

T, B, I, H = 7, 2, 3, 4
OPTIONS = UnrollOptions(gradient="truncated", window=3, impl="scan", scan_unroll=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gradient": "fulll"}, r"gradient must be one of \['full', 'truncated'\]"),
        ({"impl": "cuda"}, r"impl must be one of \['auto', 'fused', 'parallel', 'scan'\]"),
    ],
)
def test_a_misspelt_mode_fails_when_the_options_are_made(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UnrollOptions(**kwargs)


@jax.jit
def _grads(params, xs):
    """Gradients of one loss through `stacked` (with OPTIONS) and through per-layer `unroll`
    calls given the same keywords, and through `bidirectional` both ways."""
    cell = lstm_jax.lstm()

    def through_stacked(p):
        return jnp.sum(lstm_jax.stacked(cell, p, xs, options=OPTIONS)[1] ** 2)

    def layer_by_layer(p):
        ys = xs
        for layer in p:
            ys = lstm_jax.unroll(cell, layer, ys, **OPTIONS.as_kwargs())[1]
        return jnp.sum(ys**2)

    def both_ways(p):
        return jnp.sum(lstm_jax.bidirectional(cell, (p[0], p[0]), xs, options=OPTIONS)[1] ** 2)

    def both_by_hand(p):
        forward = lstm_jax.unroll(cell, p[0], xs, **OPTIONS.as_kwargs())[1]
        backward = lstm_jax.unroll(cell, p[0], xs, reverse=True, **OPTIONS.as_kwargs())[1]
        return jnp.sum(forward**2) + jnp.sum(backward**2)

    return [jax.grad(f)(params) for f in (through_stacked, layer_by_layer, both_ways, both_by_hand)]


def test_stacked_and_bidirectional_pass_the_options_to_every_unroll():
    params = lstm_jax.init_stacked(lstm_jax.lstm(), jax.random.key(0), I, H, num_layers=2)
    xs = jax.random.normal(jax.random.key(1), (T, B, I))
    stacked, by_layer, both, by_hand = _grads(params, xs)
    for got, want in ((stacked, by_layer), (both[0], by_hand[0])):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    full = jax.grad(lambda p: jnp.sum(lstm_jax.stacked(lstm_jax.lstm(), p, xs)[1] ** 2))(params)
    differs = any(
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(stacked), strict=True)
    )
    assert differs  # the options changed the gradient: they reached the unroll


def test_the_linen_wrapper_unrolls_as_its_options_say():
    cell = lstm_jax.lstm()
    xs = jax.random.normal(jax.random.key(2), (T, B, I))
    module = lj.RNN(cell, H, num_layers=2, options=OPTIONS, time_major=True)
    variables = module.init(jax.random.key(0), xs)
    layers = variables["params"]["layers"]

    def wrapped(p):
        return jnp.sum(module.apply({"params": {"layers": p}}, xs)[1] ** 2)

    def direct(p):
        return jnp.sum(lstm_jax.stacked(cell, p, xs, options=OPTIONS)[1] ** 2)

    got, want = jax.jit(lambda p: (jax.grad(wrapped)(p), jax.grad(direct)(p)))(layers)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert isinstance(module, nn.Module)
