"""Many runs of one config (settings × seeds) in parallel worker processes, and what they come
to: `grid` (the runs, the suites, their directories), `runner` (training them, a finished run
read back), `outcome` (what a run ended with), `summary` (statistics, table, figure),
`records` (`results.json` with its provenance), `rerun` (the `--check` of a recorded sweep)
and `script` (the options every experiment script shares).

    runs = grid({"full": ("model.gradient=full",), "truncated": ()}, seeds=range(5))
    outcomes = sweep("configs/adding_1997.yaml", runs, out_dir="runs/sweep", workers=2)
"""

from lstm_jax.training.sweeps.grid import Run, Suite, grid, run_dir
from lstm_jax.training.sweeps.outcome import Outcome
from lstm_jax.training.sweeps.records import report_provenance, to_json, write_report
from lstm_jax.training.sweeps.rerun import check_report
from lstm_jax.training.sweeps.runner import compare, finished, sweep
from lstm_jax.training.sweeps.script import experiment_parser, run_check
from lstm_jax.training.sweeps.summary import Stats, fmt_count, rate_text, stats, table

__all__ = [
    "Outcome",
    "Run",
    "Stats",
    "Suite",
    "check_report",
    "compare",
    "experiment_parser",
    "finished",
    "fmt_count",
    "grid",
    "rate_text",
    "report_provenance",
    "run_check",
    "run_dir",
    "stats",
    "sweep",
    "table",
    "to_json",
    "write_report",
]
