"""Training from configs: `config` (YAML into typed dataclasses), `tasks` (the classic problems,
one module per family), `model` (stacked cell + readout + losses), `trainer` (the loop),
`checkpoint`, `sweeps` (settings × seeds in worker processes), `cli` (`lstm-jax`) and
`load_run` (a run directory's trained model, ready to predict)."""

from lstm_jax.training.load import LoadedRun, load_run

__all__ = ["LoadedRun", "load_run"]
