"""Config loading, overrides and their errors; atomic checkpoints and their errors."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import files_under
from flax import serialization

from lstm_jax.modes import Gradient
from lstm_jax.training import checkpoint
from lstm_jax.training.config import ConfigError, dump, load

CONFIG = """\
# A test config
task:
  name: adding
  options: {length: 20}
model:
  cell: lstm
  hidden_size: 8
optimizer:
  name: adam
  learning_rate: 0.01
training:
  steps: 10
variants:
  tiny:
    training.steps: 2
    task.options.length: 10
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    return path


def test_load_applies_variant_then_overrides(config_file):
    cfg = load(config_file)
    assert (
        cfg.training.steps == 10 and cfg.model.hidden_size == 8 and cfg.task.options["length"] == 20
    )
    assert cfg.optimizer.learning_rate == 0.01 and cfg.model.gradient is Gradient.FULL  # default
    tiny = load(
        config_file, "tiny", ("training.steps=5", "optimizer.clip_norm=1", "model.window=null")
    )
    assert tiny.training.steps == 5 and tiny.task.options["length"] == 10
    assert tiny.optimizer.clip_norm == 1.0 and isinstance(tiny.optimizer.clip_norm, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.training.steps = 3
    with pytest.raises(TypeError):
        tiny.task.options["length"] = 3  # options are read-only too
    assert load(config_file, "tiny").to_dict()["task"]["options"] == {"length": 10}
    assert "hidden_size: 8" in dump(cfg)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (
            ("training.stpes=5",),
            r"unknown key 'stpes' \(did you mean 'steps'\?\); valid keys are \[",
        ),
        (("trainig.steps=5",), r"unknown key 'trainig' \(did you mean 'training'\?\)"),
        (("training.steps=abc",), r"training.steps expects int, got str 'abc'"),
        (("training.steps=1.5",), r"training.steps expects int, got float 1.5"),
        (("optimizer.learning_rate=fast",), r"optimizer.learning_rate expects float, got str"),
        (("model.window=true",), r"model.window expects int or null, got bool True"),
        (("training.steps",), r"--set takes key=value, got 'training.steps'"),
        (("training",), r"takes key=value"),
        (("model.hidden_size.x=1",), r"too deep"),
    ],
)
def test_override_errors(config_file, overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load(config_file, None, overrides)


def test_file_errors(tmp_path, config_file):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad)
    bad.write_text("task: {name: adding}\nmodle: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'modle' \(did you mean 'model'\?\)"):
        load(bad)
    bad.write_text("model: {hidden_size: 3}\n")
    with pytest.raises(ConfigError, match="needs a task section"):
        load(bad)
    bad.write_text("task: {name: adding}\nmodel: {hidden_size: '8'}\n")
    with pytest.raises(ConfigError, match=r"model\.hidden_size expects int, got str '8'"):
        load(bad)
    with pytest.raises(ConfigError, match=r"has no variant 'huge'; its variants are \['tiny'\]"):
        load(config_file, "huge")


def _state():
    return {"params": (jnp.arange(3.0), {"w": jnp.ones((2, 2))}), "step": jnp.asarray(7)}


def test_checkpoint_round_trip_keeps_the_last_n(tmp_path):
    for step in (10, 20, 30, 40):
        checkpoint.save(tmp_path, step, _state(), {"step": step}, keep=2)
    assert checkpoint.steps(tmp_path) == [30, 40]  # keep-the-last-N: older steps deleted
    state, meta = checkpoint.load(tmp_path, _state())
    assert meta == {"step": 40}
    jax.tree.map(np.testing.assert_array_equal, state, _state())
    assert jax.tree.map(lambda x: x.dtype, state) == jax.tree.map(lambda x: x.dtype, _state())
    assert checkpoint.read_meta(tmp_path, 30) == {"step": 30}
    # no temporary directory is left behind by a completed save
    assert sorted(p.name for p in (tmp_path / checkpoint.DIRECTORY).iterdir()) == ["30", "40"]


def test_a_save_cut_short_is_ignored_and_the_previous_step_resumes(tmp_path):
    checkpoint.save(tmp_path, 10, _state(), {"step": 10})
    # what Orbax leaves when killed mid-write: the step's temporary directory, never renamed
    partial = tmp_path / checkpoint.DIRECTORY / "20.orbax-checkpoint-tmp-1234"
    (partial / "state").mkdir(parents=True)
    (partial / "state" / "manifest.ocdbt").write_bytes(b"\x00" * 7)
    assert checkpoint.steps(tmp_path) == [10]
    assert checkpoint.load(tmp_path, _state())[1] == {"step": 10}


def test_corrupt_and_mismatched_checkpoints_raise_and_are_left_alone(tmp_path):
    checkpoint.save(tmp_path, 7, _state(), {"step": 7})
    checkpoint.save(tmp_path, 8, _state(), {"step": 8})
    other = {"params": (jnp.arange(4.0), {"w": jnp.ones((2, 2))}), "step": jnp.asarray(0)}
    with pytest.raises(
        checkpoint.CheckpointError, match=r"params.0 has shape \(3,\), this run expects \(4,\)"
    ):
        checkpoint.load(tmp_path, other)
    with pytest.raises(
        checkpoint.CheckpointError, match=r"does not match.*missing extra; unexpected none"
    ):
        checkpoint.load(tmp_path, {"params": _state()["params"], "extra": jnp.zeros(1), "step": 0})
    for path in (tmp_path / checkpoint.DIRECTORY / "8").rglob("*"):
        if path.is_file():  # every file of the newest step cut to half its length
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = files_under(tmp_path)
    with pytest.raises(
        checkpoint.CheckpointError, match=r"8 is corrupt or incomplete .*left as it is.*\[7\]"
    ):
        checkpoint.load(tmp_path, _state())
    assert files_under(tmp_path) == before
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "none", _state())
    with pytest.raises(checkpoint.CheckpointError, match=r"no checkpoint of step 5 .*\[7, 8\]"):
        checkpoint.load(tmp_path, _state(), step=5)


def test_damaged_data_or_manifests_are_a_short_message_and_nothing_else(tmp_path, capfd):
    for name in ("data", "manifests"):
        checkpoint.save(tmp_path / name, 3, _state(), {"step": 3})
    state = tmp_path / "data" / checkpoint.DIRECTORY / "3" / "state"
    data_files = [p for p in state.rglob("*") if p.parent.name == "d"]
    assert data_files
    for path in data_files:  # the array data, cut to 10 bytes
        path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(checkpoint.CheckpointError) as data:
        checkpoint.load(tmp_path / "data", _state())
    # the gist, not the dozens of lines of TensorStore spec Orbax appends
    assert "is corrupt or incomplete" in str(data.value) and "tensorstore" not in str(data.value)
    assert len(str(data.value)) < 800 and "\n" not in str(data.value)
    for path in (tmp_path / "manifests").rglob("manifest.ocdbt"):
        path.unlink()
    capfd.readouterr()
    with pytest.raises(checkpoint.CheckpointError, match=r"missing state/manifest.ocdbt, state/"):
        checkpoint.load(tmp_path / "manifests", _state())
    assert capfd.readouterr().err == ""  # no asyncio tracebacks from TensorStore's callbacks


def _legacy_file(path, payload):
    """A checkpoint as lstm_jax 0.1 wrote it (msgpack through flax.serialization)."""
    path.write_bytes(serialization.msgpack_serialize(payload))


def test_old_msgpack_run_directories_are_read_then_superseded(tmp_path):
    state = serialization.to_state_dict(_state())
    _legacy_file(
        tmp_path / checkpoint.LEGACY,
        {"format": "lstm_jax-checkpoint", "version": 1, "meta": {"step": 7}, "state": state},
    )
    assert checkpoint.exists(tmp_path) and checkpoint.read_meta(tmp_path) == {"step": 7}
    restored, meta = checkpoint.load(tmp_path, _state())
    assert meta == {"step": 7}
    jax.tree.map(np.testing.assert_array_equal, restored, _state())
    checkpoint.save(tmp_path, 9, _state(), {"step": 9})  # the next save: the Orbax format
    assert checkpoint.read_meta(tmp_path) == {"step": 9}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / checkpoint.LEGACY).write_bytes(b"\x81\xa1a\x01")  # valid msgpack, not ours
    with pytest.raises(checkpoint.CheckpointError, match="not an lstm_jax checkpoint"):
        checkpoint.load(bad, _state())
    (bad / checkpoint.LEGACY).write_bytes(b"\x85\xa6for")  # cut short
    with pytest.raises(checkpoint.CheckpointError, match=r"corrupt or truncated.*left as it is"):
        checkpoint.read_meta(bad)


def test_scientific_notation_is_a_float(config_file):
    """YAML 1.1 reads `1e-3` as a string; float fields accept it as a number."""
    cfg = load(config_file, None, ("optimizer.learning_rate=1e-3", "optimizer.clip_norm=5e0"))
    assert cfg.optimizer.learning_rate == 1e-3 and cfg.optimizer.clip_norm == 5.0
    with pytest.raises(ConfigError, match=r"training\.steps expects int, got str '1e3'"):
        load(config_file, None, ("training.steps=1e3",))


def test_digits_for_a_text_field_are_text(config_file):
    """`--set model.variant=1997` (YAML: an int) names the 1997 variant; a float or a bool for a
    text field is still an error naming the field."""
    assert load(config_file, None, ("model.variant=1997",)).model.variant == "1997"
    with pytest.raises(ConfigError, match=r"model\.variant expects str or null, got float 19\.97"):
        load(config_file, None, ("model.variant=19.97",))
    with pytest.raises(ConfigError, match=r"model\.variant expects str or null, got bool True"):
        load(config_file, None, ("model.variant=true",))
