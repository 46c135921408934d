"""The trainer, its configs and command line: learning, resume, data parallelism, bad input."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import ROOT, chorales_cache, files_under, records

from lstm_jax.training import checkpoint, cli
from lstm_jax.training.config import ConfigError, load
from lstm_jax.training.trainer import Diverged, train

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def _train_losses(out: Path) -> list[float]:
    return [r["loss"] for r in records(out) if "eval" not in r]


def _tiny(name: str, *overrides: str):
    extra = (f"task.options.path={ROOT / 'README.md'}",) if name == "char_lm" else ()
    return load(ROOT / "configs" / f"{name}.yaml", "tiny", extra + overrides)


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_runs_its_tiny_variant(tmp_path, monkeypatch, config_path):
    if config_path.stem == "bach_chorales":
        chorales_cache(monkeypatch, tmp_path / "cache")
    summary = train(_tiny(config_path.stem), tmp_path / "run", progress=False, log=lambda s: None)
    assert summary.status in ("budget", "solved")
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "learning_curve.png",
    ):
        assert (tmp_path / "run" / name).is_file(), name
    assert checkpoint.steps(tmp_path / "run")
    assert any("eval" in r for r in records(tmp_path / "run"))


@pytest.mark.parametrize("mode", ["full", "truncated"])
@pytest.mark.parametrize("task", ["adding_1997", "embedded_reber"])
def test_tiny_configs_learn(tmp_path, task, mode):
    # adding_1997 keeps its 2 memory blocks (its biases are per block) and learns on batches
    sizes = (
        ("training.batch_size=8", "training.stopping.rule=test")
        if task == "adding_1997"
        else ("model.hidden_size=8",)
    )
    cfg = _tiny(
        task,
        f"model.gradient={mode}",
        *sizes,
        "optimizer.name=adam",
        "optimizer.learning_rate=0.02",
        "training.steps=150",
        "training.eval_every=150",
    )
    train(cfg, tmp_path, progress=False, log=lambda s: None)
    losses = _train_losses(tmp_path)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)  # measured: 0.04-0.33 of the start


@pytest.mark.parametrize("cell", ["mlstm", "minlstm"])
def test_parallel_form_trains_like_the_scan_on_padded_strings(tmp_path, cell):
    """The trainer with `model.impl=parallel` on strings of several lengths (padded steps are
    identity steps of the parallel form) follows the same loss curve as with the scan."""
    curves = []
    for impl in ("parallel", "scan"):
        cfg = _tiny(
            "formal_languages",
            f"model.cell={cell}",
            f"model.impl={impl}",
            "task.name=modular_arithmetic",
            "training.steps=20",
            "training.eval_every=20",
        )
        train(cfg, tmp_path / impl, progress=False, log=lambda s: None)
        curves.append(_train_losses(tmp_path / impl))
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-4)
    assert len(set(curves[0])) > 1  # it trained: the loss moved


def test_stateful_task_carries_state_across_batches(tmp_path):
    """Continual Reber trains on consecutive chunks of streams: each batch starts from the carry
    the previous batch ended with (gradient-free), and that carry is checkpointed."""
    cfg = _tiny("continual_reber", "training.steps=2")
    train(cfg, tmp_path, progress=False, log=lambda s: None)
    from lstm_jax.training import model
    from lstm_jax.training.experiment import build, init_state
    from lstm_jax.training.sharding import shard_batch

    exp = build(cfg)
    t = cfg.training
    state = init_state(exp)
    batches = [shard_batch(exp, exp.task.batch(t.seed, k, t.batch_size)) for k in range(2)]
    after_one, _ = exp.train_step(state, batches[0])
    after_two, _ = exp.train_step(after_one, batches[1])

    def final_carries(carries):
        b = batches[1]
        kwargs = dict(lengths=b.lengths, resets=b.resets, options=cfg.model.unroll_options())
        return model.apply(exp.cell, after_one.params, b.inputs, carries, **kwargs)[0]

    close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
    jax.tree.map(close, after_two.learner_state, final_carries(after_one.learner_state))
    from_zero = final_carries(init_state(exp).learner_state)
    gap = max(
        float(abs(a - b).max())
        for a, b in zip(
            jax.tree.leaves(after_two.learner_state), jax.tree.leaves(from_zero), strict=True
        )
    )
    assert gap > 1e-3  # batch 2 did not start from zeros: the stored carry made a difference
    saved, _ = checkpoint.load(tmp_path, init_state(exp))
    jax.tree.map(close, saved.learner_state, after_two.learner_state)


def test_resume_after_kill_repeats_the_uninterrupted_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the config by its path in the repository, as the CLI user gives it
    args = [
        "--set",
        "training.steps=60",
        "--set",
        "training.checkpoint_every=10",
        "--set",
        "model.hidden_size=16",
        "--set",
        "training.batch_size=16",
        "--set",
        "training.eval_every=25",
        "--no-progress",
    ]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    run = ["run", "configs/quickstart.yaml", "--variant", "tiny"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lstm_jax", *run, "--out", str(killed), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        saved = checkpoint.steps(killed)
        if saved and saved[-1] >= 20:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    assert not (killed / "summary.json").exists()  # it really died mid-run
    killed_at = checkpoint.read_meta(killed)["step"]
    assert 20 <= killed_at < 60

    # The resumed, uninterrupted and changed runs in this process (`cli.main`, the program
    # `python -m lstm_jax` runs): only the killed run needs a process of its own.
    assert cli.main([*run, "--out", str(killed), "--resume", *args]) == 0, capsys.readouterr()
    assert cli.main([*run, "--out", str(whole), *args]) == 0, capsys.readouterr()
    assert (killed / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()

    capsys.readouterr()
    changed = [
        *run,
        "--out",
        str(killed),
        "--resume",
        *args,
        "--set",
        "optimizer.learning_rate=0.1",
    ]
    assert cli.main(changed) == cli.EXIT_BAD_INPUT
    assert (
        "config differs (optimizer.learning_rate: 0.005 in the run, 0.1 now)"
        in capsys.readouterr().err
    )


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = _tiny(
        "quickstart",
        "optimizer.name=sgd",
        "optimizer.learning_rate=1e30",
        "optimizer.clip_norm=null",
        "training.checkpoint_every=1",
    )
    with pytest.raises(
        Diverged, match=r"loss became (nan|inf) .* at step (\d+); the update was not applied"
    ) as err:
        train(cfg, tmp_path, progress=False, log=lambda s: None)
    step = int(err.value.args[0].split(" at step ")[1].split(";")[0])
    assert step >= 2
    newest = tmp_path / "checkpoints" / str(step - 1)
    assert f"Last good checkpoint: {newest} (step {step - 1})" in str(err.value)
    assert checkpoint.read_meta(tmp_path)["step"] == step - 1
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


DATA_PARALLEL = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from lstm_jax.training.config import load
    from lstm_jax.training.experiment import build, init_state
    from lstm_jax.training.sharding import shard_batch, shard_state
    for path in sys.argv[1:]:
        cfg = load(path, "tiny", ("training.batch_size=8",))
        exp = build(cfg)
        assert exp.mesh is not None and exp.mesh.size == 4
        state = init_state(exp)
        batch = exp.task.batch(0, 0, 8)
        sharded_batch = shard_batch(exp, batch)
        s4, stats4 = exp.train_step(shard_state(exp, state), sharded_batch)
        one = exp._replace(mesh=None)
        s1, stats1 = one.train_step(shard_state(one, state), shard_batch(one, batch))
        gap = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                  for a, b in zip(jax.tree.leaves(s4.params), jax.tree.leaves(s1.params)))
        print(json.dumps({
            "devices": jax.device_count(),
            "input_shards": len(sharded_batch.inputs.sharding.device_set),
            "shard_shape": list(sharded_batch.inputs.addressable_shards[0].data.shape),
            "params_replicated": all(
                l.sharding.is_fully_replicated for l in jax.tree.leaves(s4.params)
            ),
            "loss4": float(stats4["loss"]), "loss1": float(stats1["loss"]),
            "grad_norm4": float(stats4["grad_norm"]), "grad_norm1": float(stats1["grad_norm"]),
            "max_param_gap": gap,
        }))
    """
)


def test_data_parallel_step_equals_single_device_step():
    """On 4 host devices (one process for both configs: a process starts in seconds), one
    sharded step of the quickstart and embedded Reber configs equals the single-device step."""
    configs = [str(ROOT / "configs" / f"{name}.yaml") for name in ("quickstart", "embedded_reber")]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL, *configs],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.strip().splitlines()[-2:]]
    for r in results:
        assert r["devices"] == 4 and r["input_shards"] == 4 and r["shard_shape"][1] == 2
        assert r["params_replicated"]
        assert abs(r["loss4"] - r["loss1"]) <= 1e-6 * abs(r["loss1"])
        assert abs(r["grad_norm4"] - r["grad_norm1"]) <= 1e-5 * abs(r["grad_norm1"])
        assert r["max_param_gap"] < 1e-6
    assert results[0]["loss1"] != results[1]["loss1"]  # two configs, two different steps


def test_resuming_a_finished_run_keeps_its_outcome(tmp_path):
    """A solved (or budget-exhausted) run resumed again trains no further and reports the same
    status, step and test metrics; its checkpoint is not rewritten."""
    cfg = _tiny(
        "quickstart",
        "training.steps=40",
        "training.eval_every=20",
        "optimizer.learning_rate=0.02",
        "training.eval_size=32",
    )
    first = train(cfg, tmp_path, progress=False, log=lambda s: None)
    ckpt = files_under(tmp_path / "checkpoints")
    again = train(cfg, tmp_path, resume=True, progress=False, log=lambda s: None)
    assert (again.status, again.steps, again.solved_at_step) == (
        first.status,
        first.steps,
        first.solved_at_step,
    )
    assert again.final_eval == first.final_eval and again.final_eval
    assert files_under(tmp_path / "checkpoints") == ckpt
    # A run killed mid-write leaves a partial last line: resume drops it instead of crashing.
    metrics = tmp_path / "metrics.jsonl"
    whole = metrics.read_text()
    metrics.write_text(whole + '{"step": 40, "lo')
    train(cfg, tmp_path, resume=True, progress=False, log=lambda s: None)
    assert metrics.read_text() == whole
    # A changed size is reported as the config difference, not as a checkpoint shape error.
    bigger = _tiny(
        "quickstart",
        "training.steps=40",
        "training.eval_every=20",
        "optimizer.learning_rate=0.02",
        "training.eval_size=32",
        "model.hidden_size=16",
    )
    with pytest.raises(
        ConfigError, match=r"config differs \(model.hidden_size: 8 in the run, 16 now\)"
    ):
        train(bigger, tmp_path, resume=True, progress=False, log=lambda s: None)
    # A bad line before the last is corruption: a clear CheckpointError, the file left alone.
    lines = whole.splitlines()
    metrics.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    with pytest.raises(checkpoint.CheckpointError, match=r"metrics.jsonl line 2 is not a JSON"):
        train(cfg, tmp_path, resume=True, progress=False, log=lambda s: None)
