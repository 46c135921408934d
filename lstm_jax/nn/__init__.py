"""Framework wrappers: `nn.linen` makes any `Cell` a flax.linen module (import it directly; it is
not imported here, so `import lstm_jax` does not import flax.linen)."""
