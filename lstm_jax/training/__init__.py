"""Training from configs: `config` (YAML into typed dataclasses), `tasks` (the classic problems,
one module per family), `model` (stacked cell + readout + losses), `trainer` (the loop),
`checkpoint`, `sweep` (settings × seeds in worker processes) and `cli` (`lstm-jax`)."""
