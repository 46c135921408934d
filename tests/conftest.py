"""Shared fixtures, the XLA settings every test process starts with, and the training tests'
helpers (run directories, the CLI). The numerical tests' cells, random data and comparisons are
in helpers.py (re-exported here): `CELLS` is the one list parametrised tests draw from;
`FAMILIES` is its first member of each family, for tests whose cost forbids every variant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# The suite's cost is compiling hundreds of small programs, not running them. Two XLA:CPU code
# generation settings compile them faster: LLVM's level-0 optimisation (measured on 2 cores:
# test_fused.py 79 s -> 57 s, test_experiments.py 139 s -> 111 s), and the older elemental
# fusion emitters instead of the MLIR fusion emitters (backend compile time of two windowed
# tests 19-21 s -> 8 s). XLA's HLO passes (fusion, layout: the programs whose results the tests
# check) are unchanged; only the machine code differs. Set before any backend starts, and
# inherited by the subprocesses some tests launch; a user's own XLA_FLAGS naming either wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false"
    ).strip()
# XLA:CPU splits each program's LLVM module into parts compiled on a thread pool; for the
# suite's small programs on 2 busy cores the split costs more than it saves (one part:
# test_fused.py + test_windowed.py 99 -> 84 CPU-s). Code generation only: the same machine code
# per function, so the same results.
if "xla_cpu_parallel_codegen_split_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_parallel_codegen_split_count=1"
    ).strip()

# One persistent compilation cache for the whole suite: both xdist workers and every subprocess
# a test launches (the CLI, the experiment scripts, the spawned sweep workers) reuse a program
# another one compiled (the same tiny configs are trained in-process and through the CLI).
# Keyed by the program and the compiler's flags, so a hit is the program a miss would build.
# In the run's own temporary directory unless the user names one: a clean clone starts empty.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(
        Path(tempfile.gettempdir())
        / f"lstm_jax_test_cache_{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}"
    )
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# The suite's experiment runs write their records into temporary directories: they may run
# from a checkout with uncommitted changes (`training.provenance.record_provenance`).
os.environ.setdefault("LSTM_JAX_ALLOW_DIRTY", "1")

import jax
import pytest

# The cells, the random data and the comparisons the numerical tests share live in helpers.py;
# re-exported here for the test files that import them from conftest.
from helpers import (  # noqa: F401
    CELL_IDS,
    CELLS,
    EXTRA_CELLS,
    FAMILIES,
    FAMILY_IDS,
    MODERN_CELLS,
    MODERN_IDS,
    random_carry,
    random_params,
    stable_seed,
)

ROOT = Path(__file__).resolve().parents[1]  # the repository root


@pytest.fixture
def x64():
    """Gradient identities are compared in float64."""
    with jax.enable_x64(True):
        yield


def records(out: Path) -> list[dict]:
    """The lines of a run directory's `metrics.jsonl`."""
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def chorales_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> Path:
    """For a test of the Bach-chorales task: skips it where music21 (the optional extra whose
    corpus holds the chorales) is missing, and points the parsed-roll cache at `cache`, not the
    user's."""
    pytest.importorskip("music21")
    monkeypatch.setenv("LSTM_JAX_CACHE", str(cache))
    return cache


def files_under(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes: what "left as it was" compares."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """`python -m lstm_jax *args` from the repository root, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "lstm_jax", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        **kwargs,
    )


@pytest.fixture
def drawn(monkeypatch):
    """The figures saved while the test runs, in order, still open to inspection."""
    from matplotlib.figure import Figure

    figures, save = [], Figure.savefig

    def record(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures
