"""Backward passes over a cell's `Derivation`, between the cells and the driver: the reference
backward pass (`analytic`), the fused unroll whose `custom_vjp` runs it (`fused`), and Pascanu
et al.'s Ω regulariser on the same Jacobians (`regularizers`)."""

from lstm_jax.backward import analytic, fused, regularizers

__all__ = ["analytic", "fused", "regularizers"]
