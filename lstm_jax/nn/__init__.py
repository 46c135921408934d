"""Framework wrappers: `nn.linen` and `nn.nnx` make any `Cell` a flax.linen or flax.nnx module
(import them directly; they are not imported here, so `import lstm_jax` does not import flax);
`nn.batching` lets both take any number of leading batch axes, `nn.flax_options` gives them
flax's `kernel_init`, `recurrent_kernel_init`, `bias_init` and `dtype`."""
