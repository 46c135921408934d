"""Training as 2 processes on localhost (`jax.distributed`, Gloo collectives on CPU) equals the
single-process run, and a run resumes across processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from lstm_jax.training import checkpoint, distributed
from lstm_jax.training.config import load
from lstm_jax.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = (
    "training.steps=40",
    "training.checkpoint_every=20",
    "training.eval_every=20",
    "training.batch_size=8",
    "training.eval_size=32",
    "model.hidden_size=16",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _two_processes(out: Path) -> None:
    port = _free_port()
    sets = [arg for setting in SETTINGS for arg in ("--set", setting)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}  # one CPU device each
    command = [sys.executable, "-m", "lstm_jax", "run", "configs/quickstart.yaml", "--variant"]
    command += ["tiny", "--out", str(out), "--no-progress", *sets]
    command += ["--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id"]
    procs = [
        subprocess.Popen(
            [*command, str(k)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (_, stderr) in zip(procs, results, strict=True):
        assert p.returncode == 0, stderr[-3000:]
    assert "run directory" in results[0][0] and "run directory" not in results[1][0]


def _losses(out: Path) -> np.ndarray:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return np.array([r["loss"] for r in map(json.loads, lines) if "loss" in r])


def _params(out: Path):
    return checkpoint.load(out, None)[0]["params"]


def test_two_processes_equal_one_and_resume_across_processes(tmp_path):
    config = load(ROOT / "configs/quickstart.yaml", "tiny", SETTINGS)
    single = tmp_path / "single"
    train(config, single, progress=False, log=lambda _: None)
    multi = tmp_path / "multi"
    _two_processes(multi)
    assert len(_losses(multi)) == 40
    np.testing.assert_allclose(_losses(multi), _losses(single), rtol=1e-6)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)  # noqa: E731
    jax.tree.map(close, _params(multi), _params(single))

    # Resume across process counts: the 2-process run as if killed after its step-20
    # checkpoint (written by both processes), continued by one process, ends where the
    # uninterrupted runs did.
    resumed = tmp_path / "resumed"
    shutil.copytree(multi, resumed)
    shutil.rmtree(resumed / checkpoint.DIRECTORY / "40")
    (resumed / "summary.json").unlink()
    train(config, resumed, resume=True, progress=False, log=lambda _: None)
    np.testing.assert_allclose(_losses(resumed), _losses(single), rtol=1e-6)
    jax.tree.map(close, _params(resumed), _params(single))


def test_process_settings_are_checked(monkeypatch):
    for name in distributed.ENV.values():
        monkeypatch.delenv(name, raising=False)
    assert distributed.settings() is None
    with pytest.raises(distributed.DistributedError, match=r"missing.*--process-id"):
        distributed.settings("localhost:1234", 2)
    with pytest.raises(distributed.DistributedError, match=r"got 2 of 2 processes"):
        distributed.settings("localhost:1234", 2, 2)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "host:99")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    assert distributed.settings() == {
        "coordinator": "host:99",
        "num_processes": 4,
        "process_id": 3,
    }
