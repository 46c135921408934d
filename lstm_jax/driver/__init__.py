"""The driver: `unroll` (the one `lax.scan` over a cell's step, or the fused unroll of its
derivation), the layers composed from it, and the input checks run before anything is traced."""

from lstm_jax.driver.layers import bidirectional, init_stacked, stacked
from lstm_jax.driver.options import UnrollOptions
from lstm_jax.driver.scan import Impl, resolve_impl, scan_steps, unroll

__all__ = [
    "Impl",
    "UnrollOptions",
    "bidirectional",
    "init_stacked",
    "resolve_impl",
    "scan_steps",
    "stacked",
    "unroll",
]
