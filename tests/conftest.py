"""Shared fixtures: every cell the library offers, with random (not init-default) params.

`CELLS` is the one list parametrised tests draw from; `FAMILIES` is its first member of each
family, for tests whose cost forbids every variant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
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

# The suite's experiment runs write their records into temporary directories: they may run
# from a checkout with uncommitted changes (`training.provenance.record_provenance`).
os.environ.setdefault("LSTM_JAX_ALLOW_DIRTY", "1")

import jax
import jax.numpy as jnp
import pytest

import lstm_jax

# (id, kind, cell) for every cell and variant; `kind` picks the reference implementation.
CELLS = (
    [("rnn", "rnn", lstm_jax.rnn())]
    + [(f"lstm-{v}", "lstm", lstm_jax.lstm(v)) for v in lstm_jax.LSTM_VARIANTS]
    + [
        ("lstm-vanilla-chrono", "lstm", lstm_jax.lstm("vanilla", chrono=50)),
        # the 1997 net: memory blocks of 2 cells sharing their gates (the test sizes H are
        # even), gate activations fed back into every unit
        ("lstm-1997-net", "lstm", lstm_jax.lstm("1997", block_size=2, gate_inputs=True)),
        ("gru-reset_after", "gru", lstm_jax.gru(reset_after=True)),
        ("gru-reset_before", "gru", lstm_jax.gru(reset_after=False)),
    ]
)
# Cells whose maths other cells' entries already cover, checked by the cheaper tests only
# (scan = fused = reference in float64): memory blocks with a forget gate, sigmoid and leaky
# Elman units.
EXTRA_CELLS = [
    ("lstm-blocks", "lstm", lstm_jax.lstm("standard", block_size=2, output_bias=-1.0)),
    ("rnn-sigmoid", "rnn", lstm_jax.rnn(activation="sigmoid")),  # Pascanu et al.'s units
    ("rnn-leaky", "rnn", lstm_jax.rnn(alpha=0.3)),  # Murray's (2019) leaky RNN, RFLO's cell
]
# The modern cells (xLSTM, minimal RNNs): no reference `kind` or derivation; their identities are
# in test_modern_cells.py, and the generic tests that need neither run them too.
MODERN_CELLS = [
    ("slstm", lstm_jax.slstm(heads=2)),
    ("slstm-exp", lstm_jax.slstm(forget_gate="exp")),
    ("mlstm", lstm_jax.mlstm(heads=2)),
    ("mingru", lstm_jax.mingru()),
    ("minlstm", lstm_jax.minlstm()),
]
MODERN_IDS = [c[0] for c in MODERN_CELLS]
ROOT = Path(__file__).resolve().parents[1]  # the repository root
CELL_IDS = [c[0] for c in CELLS]
FAMILIES = [
    next(c for c in CELLS if c[0] == name) for name in ("lstm-vanilla", "gru-reset_after", "rnn")
]
FAMILY_IDS = [c[0] for c in FAMILIES]


def stable_seed(name: str) -> int:
    """A per-name seed that is the same in every process (`hash` of a str is salted)."""
    return zlib.crc32(name.encode())


@pytest.fixture
def x64():
    """Gradient identities are compared in float64."""
    with jax.enable_x64(True):
        yield


def random_params(cell, key, input_size, hidden_size, dtype=jnp.float64, scale=0.5):
    """Params with every leaf random (biases, peepholes and b_rh too), so no path hides at 0."""
    params = cell.init(key, input_size, hidden_size, dtype)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    leaves = [
        l + scale * jax.random.normal(k, l.shape, l.dtype)
        for l, k in zip(leaves, keys, strict=False)
    ]
    return jax.tree.unflatten(tree, leaves)


def random_carry(cell, key, batch_shape, hidden_size, dtype=jnp.float64, scale=0.5):
    carry = cell.initial_carry(batch_shape, hidden_size, dtype)
    leaves, tree = jax.tree.flatten(carry)
    keys = jax.random.split(key, len(leaves))
    leaves = [
        scale * jax.random.normal(k, l.shape, l.dtype) for l, k in zip(leaves, keys, strict=False)
    ]
    return jax.tree.unflatten(tree, leaves)


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
