"""A sweep's grid: the runs (setting × seed) of a config, the suites they are grouped in, and
the run directory each one trains into."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple


class Run(NamedTuple):
    """One run of a sweep: `overrides` are `--set` strings applied after the config variant."""

    label: str  # the setting, e.g. "truncated"
    seed: int
    overrides: tuple[str, ...] = ()


class Suite(NamedTuple):
    """One row group of a comparison (a task, usually): a config, the overrides every setting
    shares, the final test metric its table reports."""

    config: str
    overrides: tuple[str, ...] = ()
    metric: str | None = None


def grid(settings: Mapping[str, Sequence[str]], seeds: Iterable[int]) -> list[Run]:
    """Every setting × every seed, settings outermost: `{label: overrides}` → `[Run]`.

    >>> grid({"full": ("model.gradient=full",)}, range(2))[1]
    Run(label='full', seed=1, overrides=('model.gradient=full', 'training.seed=1'))
    """
    seeds = list(seeds)
    return [
        Run(label, seed, (*overrides, f"training.seed={seed}"))
        for label, overrides in settings.items()
        for seed in seeds
    ]


def safe_name(name: str) -> str:
    """`name` reduced to a safe file name: runs of other characters become one `_`.

    >>> safe_name("adding T=100")
    'adding_T_100'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def run_dir(out_dir: str | Path, run: Run) -> Path:
    """`out_dir/<label>-seed<seed>`, the label reduced to a safe file name.

    >>> run_dir("/x", Run("no forget gate, reset", 3))
    PosixPath('/x/no_forget_gate_reset-seed3')
    """
    safe = safe_name(run.label).strip("_") or "run"
    return Path(out_dir) / f"{safe}-seed{run.seed}"
