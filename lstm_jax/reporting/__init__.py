"""What a user sees of runs and measurements: the figures (`plotting`), drawn with matplotlib
from plain arrays and records, for the trainer, the CLI and the experiments alike; and the
experiments' `--check` of their committed records against a fresh measurement (`check`)."""
