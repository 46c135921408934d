"""`python -m lstm_jax` is the `lstm-jax` command."""

import sys

from lstm_jax.training.cli import main

sys.exit(main())
