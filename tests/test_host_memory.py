"""`training.host_memory`: the malloc settings apply on Linux with glibc and leave JAX working."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_host_memory_applies_before_jax_starts():
    code = (
        "from lstm_jax.training.host_memory import keep_freed_host_memory\n"
        "assert keep_freed_host_memory() and keep_freed_host_memory()\n"  # idempotent
        "import jax.numpy as jnp\n"
        "print(float(jnp.arange(4.0).sum()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "6.0", done.stderr
