"""What a user sees of runs and measurements: the figures (`plotting`), drawn with matplotlib
from plain arrays and records, for the trainer, the CLI and the experiments alike."""
