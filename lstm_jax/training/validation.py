"""Config checks that need the built task and cell: each names the key, the value and what
was expected (`ConfigError`), before anything compiles."""

from __future__ import annotations

from typing import Any

import jax

from lstm_jax.backward.regularizers import OmegaForm, resolve_omega_form
from lstm_jax.online.registry import online_algorithm
from lstm_jax.training import model
from lstm_jax.training.config import Config, ConfigError
from lstm_jax.training.online_updates import FEEDBACK
from lstm_jax.training.tasks import Task


def check_output_and_stopping(config: Config, task: Task) -> None:
    m, t = config.model, config.training
    if m.output not in model.OUTPUTS:
        raise ConfigError(f"model.output must be one of {list(model.OUTPUTS)}, got {m.output!r}")
    if m.output == "sigmoid" and task.loss != "mse":
        raise ConfigError(
            f"model.output=sigmoid (the 1997 output unit) is trained on squared error; task "
            f"{config.task.name!r} uses the {task.loss!r} loss, which takes a linear readout"
        )
    if getattr(task, "outputs", None) == "sigmoid" and m.output != "sigmoid":
        raise ConfigError(
            f"task.options.outputs=sigmoid judges outputs in [0, 1] (at 0.5, or by max_error): "
            f"it needs model.output=sigmoid, got model.output={m.output!r}"
        )
    if m.readout_range is not None and not m.readout_range > 0:
        raise ConfigError(f"model.readout_range must be > 0, got {m.readout_range}")
    if m.readout_std is not None and not m.readout_std > 0:
        raise ConfigError(f"model.readout_std must be > 0, got {m.readout_std}")
    if m.readout_range is not None and m.readout_std is not None:
        raise ConfigError(
            f"model.readout_range ({m.readout_range}) and model.readout_std ({m.readout_std}) "
            "are two initialisations of the readout: set one"
        )
    rules = ("test", "train")
    if t.stop_on not in rules:
        raise ConfigError(f"training.stop_on must be one of {list(rules)}, got {t.stop_on!r}")
    if t.stop_on == "train" and not hasattr(task, "correct"):
        raise ConfigError(
            f"training.stop_on=train needs a task that scores each training sequence "
            f"(adding, multiplication, temporal_order); {config.task.name!r} does not"
        )
    if t.train_window < 1:
        raise ConfigError(f"training.train_window must be >= 1, got {t.train_window}")


def check_dropout(config: Config) -> None:
    """Rates in [0, 1); `dropout` acts between stacked layers, so it needs two of them; the
    online gradient has no dropout."""
    m = config.model
    for key in ("dropout", "input_dropout"):
        rate = getattr(m, key)
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"model.{key} must be in [0, 1), got {rate}")
    if m.dropout and m.num_layers < 2:
        raise ConfigError(
            f"model.dropout={m.dropout} acts between stacked layers and model.num_layers is "
            f"{m.num_layers}: set model.num_layers >= 2, or use model.input_dropout"
        )
    if (m.dropout or m.input_dropout) and m.gradient == "online":
        raise ConfigError(
            "model.gradient=online has no dropout: set model.dropout and model.input_dropout to 0"
        )


def check_online(config: Config, task: Task, cell: Any) -> None:
    m, t = config.model, config.training
    if t.reset_on_error and m.gradient != "online":
        raise ConfigError("training.reset_on_error needs model.gradient=online (per-step learning)")
    if t.reset_on_error and not hasattr(task, "step_correct"):
        raise ConfigError(
            f"training.reset_on_error needs a task that judges each step (the Reber tasks); "
            f"{config.task.name!r} does not"
        )
    problems = {
        "model.num_layers": (m.num_layers, 1),
        "model.window": (m.window, None),
        "training.stop_on": (t.stop_on, "test"),
        "devices": (jax.device_count(), 1),
    }
    for key, (value, needed) in problems.items():
        if value != needed:
            raise ConfigError(f"model.gradient=online needs {key}={needed}, got {value}")
    if t.update_every < 1:
        raise ConfigError(f"training.update_every must be >= 1, got {t.update_every}")
    if m.gradient == "online" and config.optimizer.schedule == "cosine":
        # Its horizon is training.steps updates, but online learning makes several per step.
        raise ConfigError(
            "optimizer.schedule=cosine decays over training.steps weight updates, but "
            "model.gradient=online updates every training.update_every symbols; use "
            "'constant' or 'exponential' (decay_steps and warmup_steps count updates)"
        )
    if t.feedback not in FEEDBACK:
        raise ConfigError(f"training.feedback must be one of {list(FEEDBACK)}, got {t.feedback!r}")
    try:
        online_algorithm(t.online_algorithm, cell)
    except ValueError as err:
        raise ConfigError(f"training.online_algorithm: {err}") from None


def check_omega(config: Config, task: Task, cell: Any) -> None:
    """`training.omega` (Pascanu et al.'s Ω): a known `omega_form`, a weight >= 0, and where
    it is on, one layer whose carry is one array, a task of independent sequences, full BPTT."""
    m, t = config.model, config.training
    try:
        form = resolve_omega_form(t.omega_form)
    except ValueError as err:
        raise ConfigError(f"training.omega_form: {err}") from None
    if t.omega < 0:
        raise ConfigError(f"training.omega must be >= 0, got {t.omega}")
    if not t.omega:
        return
    needs = {
        "model.num_layers": (m.num_layers, 1),
        "model.gradient": (m.gradient, "full"),
        "model.window": (m.window, None),
        "a task of independent sequences (stateful)": (task.stateful, False),
    }
    for key, (value, needed) in needs.items():
        if value != needed:
            raise ConfigError(f"training.omega needs {key}={needed}, got {value}")
    if not isinstance(cell.initial_carry((1,), 2), jax.Array):
        raise ConfigError(
            f"training.omega needs a cell whose carry is one array (rnn, gru); model.cell="
            f"{m.cell!r} carries a {type(cell.initial_carry((1,), 2)).__name__}"
        )
    if form is OmegaForm.RELEASED and cell.derivation is None:
        raise ConfigError(
            f"training.omega_form=released needs a cell with a Derivation; model.cell="
            f"{m.cell!r} has none"
        )
