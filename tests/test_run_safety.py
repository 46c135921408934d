"""Nothing lost to a mistake: a signal ends a run with a checkpoint, a new run never writes into
a directory of someone else's files, a run directory has one writer, and `--resume` extends a
run's budget (any other change is named with both values)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, files_under

from lstm_jax.training import checkpoint, cli, run_dir, trainer
from lstm_jax.training.config import ConfigError, load
from lstm_jax.training.interrupt import EXIT_INTERRUPTED, Interrupted
from lstm_jax.training.trainer import train

QUICK = ROOT / "configs" / "quickstart.yaml"
QUIET = {"progress": False, "log": lambda s: None}


def _cfg(*overrides: str):
    return load(QUICK, "tiny", ("training.eval_every=10", *overrides))


def test_sigint_saves_then_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    cfg = _cfg("training.steps=20", "training.checkpoint_every=100")
    straight = train(cfg, tmp_path / "straight", **QUIET)
    calls = []
    real_pad_time = trainer.pad_time

    def pad_time_then_signal(batch):  # Ctrl-C arrives while step 7 is being prepared
        calls.append(1)
        if len(calls) == 7:
            os.kill(os.getpid(), signal.SIGINT)
        return real_pad_time(batch)

    monkeypatch.setattr(trainer, "pad_time", pad_time_then_signal)
    out = tmp_path / "stopped"
    with pytest.raises(Interrupted, match=r"SIGINT at step 7: checkpoint and summary written"):
        train(cfg, out, **QUIET)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["steps"]) == ("interrupted", 7)
    assert checkpoint.steps(out) == [7]  # saved although checkpoint_every is 100
    monkeypatch.setattr(trainer, "pad_time", real_pad_time)
    resumed = train(cfg, out, resume=True, **QUIET)
    assert resumed.final_eval == straight.final_eval and resumed.steps == straight.steps
    assert (out / "metrics.jsonl").read_text() == (tmp_path / "straight/metrics.jsonl").read_text()


def test_sigterm_from_outside_exits_130_with_one_line(tmp_path):
    out = tmp_path / "run"
    args = ["run", "quickstart", "--variant", "tiny", "--out", str(out), "--no-progress"]
    child = subprocess.Popen(
        [sys.executable, "-m", "lstm_jax", *args, "--set", "training.steps=1000000"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "config.yaml").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # config.yaml is written just before the first step
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == EXIT_INTERRUPTED, err
    assert err.count("\n") == 1 and err.startswith("stopped: SIGTERM at step "), err
    assert "--resume" in err
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    assert checkpoint.exists(out)


def test_a_directory_of_other_files_is_refused_and_left_alone(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("# my own config, with comments\n")
    (mine / "notes.txt").write_text("do not lose\n")
    before = files_under(mine)
    code = cli.main(["run", str(QUICK), "--variant", "tiny", "--out", str(mine)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert f"--out {mine} is not empty and holds no run (config.yaml, notes.txt)" in err
    assert files_under(mine) == before and not (mine / run_dir.LOCK).exists()


def test_unwritable_out_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    code = cli.main(["run", str(QUICK), "--variant", "tiny", "--out", str(tmp_path / "file/run")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT and "a part of the path is a file" in err, err
    code = cli.main(["run", str(QUICK), "--variant", "tiny", "--out", str(tmp_path / "file")])
    assert code == cli.EXIT_BAD_INPUT and "is a file, not a directory" in capsys.readouterr().err

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    code = cli.main(["run", str(QUICK), "--variant", "tiny", "--out", str(tmp_path / "ro")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT and "the filesystem is read-only" in err, err
    assert "Traceback" not in err


def test_a_second_writer_is_refused_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    train(_cfg("training.steps=10"), out, **QUIET)
    before = files_under(out)
    with run_dir.claimed(out):  # as a first `--resume` does while it trains
        start = time.monotonic()
        resume = ["run", str(QUICK), "--variant", "tiny", "--out", str(out), "--resume"]
        code = cli.main([*resume, "--set", "training.eval_every=10", "--set", "training.steps=10"])
        assert time.monotonic() - start < 60
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert f"{out} is in use by another lstm-jax process (pid {os.getpid()})" in err
    assert {k: v for k, v in files_under(out).items() if k != run_dir.LOCK} == {
        k: v for k, v in before.items() if k != run_dir.LOCK
    }


def test_resume_extends_the_budget_and_names_other_changes(tmp_path):
    out = tmp_path / "run"
    train(_cfg("training.steps=20"), out, **QUIET)
    longer = train(_cfg("training.steps=30"), out, resume=True, **QUIET)
    straight = train(_cfg("training.steps=30"), tmp_path / "straight", **QUIET)
    assert longer.steps == 30 and longer.final_eval == straight.final_eval
    assert (out / "metrics.jsonl").read_text() == (tmp_path / "straight/metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match=r"training.steps=10: it has already taken 30 steps"):
        train(_cfg("training.steps=10"), out, resume=True, **QUIET)
    changed = _cfg("training.steps=40", "model.hidden_size=16")
    with pytest.raises(ConfigError, match=r"model.hidden_size: 8 in the run, 16 now\)"):
        train(changed, out, resume=True, **QUIET)


def test_resume_names_a_mistyped_metrics_record(tmp_path):
    out = tmp_path / "run"
    train(_cfg("training.steps=10"), out, **QUIET)
    metrics = out / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([lines[0], '{"step": "3", "loss": 0.1}', *lines[1:]]) + "\n")
    before = files_under(out)
    with pytest.raises(checkpoint.CheckpointError, match=r'line 2: expected "step" to be an int'):
        train(_cfg("training.steps=20"), out, resume=True, **QUIET)
    assert files_under(out) == before


def test_docstring_examples_run():
    """The `>>>` examples of the training tools and the flax wrappers."""
    import doctest
    import importlib

    names = ["training.run_dir", "training.interrupt", "training.rendezvous"]
    names += ["training.distributed", "training.provenance", "training.paired"]
    names += [f"training.sweeps.{m}" for m in ("grid", "runner", "summary", "records", "rerun")]
    names += ["training.sweeps.script", "reporting.check"]
    names += ["training.tasks.chorales", "training.config", "training.runs"]
    names += ["nn.flax_options", "nn.nnx", "nn.linen"]
    for name in names:
        module = importlib.import_module(f"lstm_jax.{name}")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, name
