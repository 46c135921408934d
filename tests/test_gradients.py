"""Gradient modes and their cuts (`lstm_jax.modes`): the identity forward, exactly the
named paths removed backward, and one resolution of the mode's name."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax
from lstm_jax.modes import Gradient, cut_gate_recurrence, cut_nothing, cut_window, resolve_gradient


@pytest.mark.parametrize(
    ("given", "want"),
    [("full", Gradient.FULL), ("Truncated", Gradient.TRUNCATED), (Gradient.FULL, Gradient.FULL)],
)
def test_resolve_gradient(given, want):
    assert resolve_gradient(given) is want


@pytest.mark.parametrize("bad", ["fulll", "", None, 1])
def test_resolve_gradient_names_the_choices(bad):
    with pytest.raises(ValueError, match=r"gradient must be one of \['full', 'truncated'\]"):
        resolve_gradient(bad)


def test_cuts_are_the_identity_forward_and_cut_backward():
    tree = {"h": jnp.arange(3.0), "c": jnp.ones(2)}
    for cut in (cut_nothing, cut_gate_recurrence):
        jax.tree.map(np.testing.assert_array_equal, cut(tree), tree)
    assert float(jax.grad(lambda x: jnp.sum(cut_nothing(x) ** 2))(2.0)) == 4.0
    assert float(jax.grad(lambda x: jnp.sum(cut_gate_recurrence(x) ** 2))(2.0)) == 0.0


def test_cut_window_cuts_only_where_the_boundary_is_set():
    carry = jnp.ones((3, 2))  # [batch, H]
    boundary = jnp.array([True, False, True])

    def f(c):
        return jnp.sum(cut_window(c, boundary) * jnp.arange(1.0, 3.0))

    np.testing.assert_array_equal(jax.grad(f)(carry), [[0, 0], [1, 2], [0, 0]])
    np.testing.assert_array_equal(cut_window(carry, boundary), carry)


def test_step_for_takes_the_resolved_mode():
    cell = lstm_jax.lstm()
    assert cell.step_for(Gradient.FULL) is cell.step
    assert cell.step_for(Gradient.TRUNCATED) is cell.truncated_step
