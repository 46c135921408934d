"""Training as 2 processes on localhost (`jax.distributed`, Gloo collectives on CPU) equals the
single-process run, and a run resumes across processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from lstm_jax.training import checkpoint, distributed, rendezvous
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


def test_a_coordinator_without_a_port_is_refused_before_jax_sees_it():
    for address in ("notahost", "host:", ":123", "host:0", "host:70000", "host:http"):
        with pytest.raises(distributed.DistributedError, match=r"expected HOST:PORT with a port"):
            distributed.settings(address, 2, 0)


def _meet_all(address: str, ids: list[int], count: int, timeout_s: float) -> dict[int, str]:
    """Each of `ids` meets at `address` in its own thread; what each raised ("ok" if nothing)."""
    outcomes: dict[int, str] = {}

    def meet(position: int, index: int) -> None:
        try:
            rendezvous.meet(address, count, index, timeout_s)
            outcomes[position] = "ok"
        except rendezvous.RendezvousError as err:
            outcomes[position] = str(err)

    threads = [threading.Thread(target=meet, args=pair) for pair in enumerate(ids)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # process 0 first, as usual
    for thread in threads:
        thread.join(timeout_s + 30)
    return outcomes


def test_missing_and_duplicate_processes_fail_fast_naming_ids_address_and_timeout():
    address = f"localhost:{_free_port()}"
    start = time.monotonic()
    missing = _meet_all(address, [0, 2], 4, timeout_s=2)
    assert time.monotonic() - start < 15  # not JAX's 300 s
    assert missing[0] == (
        f"process ids [1, 3] of 4 did not register at the coordinator {address} (timeout 2 s)"
    )
    assert missing[1] == missing[0]  # the waiting process hears why
    address = f"localhost:{_free_port()}"
    duplicate = _meet_all(address, [0, 1, 1], 3, timeout_s=20)
    assert all("process id 1 was given to two processes" in m for m in duplicate.values())
    address = f"localhost:{_free_port()}"
    assert _meet_all(address, [0, 1, 2], 3, timeout_s=20) == {0: "ok", 1: "ok", 2: "ok"}
    # a process whose process 0 never comes, and JAX's abort never reached: a message
    start = time.monotonic()
    with pytest.raises(distributed.DistributedError, match=r"process 0 did not answer at the"):
        distributed.initialize(
            {"coordinator": f"localhost:{_free_port()}", "num_processes": 2, "process_id": 1}, 1
        )
    assert time.monotonic() - start < 10
