"""What every sweep experiment script shares: its command-line options and its `--check`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from lstm_jax.reporting import check
from lstm_jax.training.sweeps.rerun import TOLERANCES, remeasure


def experiment_parser(doc: str, here: Path, runs: str, seeds: int) -> argparse.ArgumentParser:
    """The options every experiment script shares: `--seeds --workers --variant --out --runs
    --check`; `here` is the script's folder (the default `--out`).

    >>> experiment_parser("Doc.", Path("."), "runs/x", 3).parse_args([]).seeds
    3
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variant", help="a variant of every config, e.g. tiny (the tests)")
    parser.add_argument("--out", type=Path, default=here, help="where results.json goes")
    parser.add_argument("--runs", type=Path, default=Path(runs), help="run directories (cache)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="re-run the cheapest run recorded in --out/results.json and compare; exit 1 if "
        "it differs",
    )
    return parser


def run_check(args: argparse.Namespace) -> NoReturn:
    """`--check` (`reporting.check.run_check`): re-trains the cheapest run recorded in
    `args.out/results.json`; exits 0 when it matches the record, 1 when it does not.

    >>> run_check(argparse.Namespace(out=Path("/nonexistent")))
    Traceback (most recent call last):
    SystemExit: 1
    """
    path = args.out / "results.json"
    check.run_check(path, lambda record: remeasure(record, path), TOLERANCES)
