"""Experiment configuration: YAML files loaded into frozen, typed dataclasses.

A config file has four sections (`task`, `model`, `optimizer`, `training`) and an optional
`variants:` mapping of named override sets (`tiny:` is the one the tests run). Overrides, from
a variant or from `--set key=value`, use dotted keys (`training.steps=100`,
`task.options.length=50`); each value is type-checked against the field it sets, and an
unknown key is an error listing the valid keys at that level.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A malformed config, an unknown key or a value of the wrong type."""


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    name: str  # a key of lstm_jax.training.tasks.TASKS
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the task's fields


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    cell: str = "lstm"  # a name in lstm_jax.cells.registry.CELLS: "lstm" | "gru" | "rnn" |
    #                     "slstm" | "mlstm" | "mingru" | "minlstm"
    variant: str | None = None  # for cells with variants: the LSTM's (lstm_jax.LSTM_VARIANTS)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the builder's keywords
    hidden_size: int = 32
    num_layers: int = 1
    gradient: str = "full"  # "full" | "truncated" | "online" (SGD at every step from an online
    #                         algorithm, training.online_algorithm: training.online_updates)
    window: int | None = None  # windowed truncated BPTT, steps per window
    impl: str = "auto"  # lstm_jax.Impl: "auto" | "scan" | "fused" | "parallel" (mLSTM, min-RNNs)
    output: str = "identity"  # a key of training.model.OUTPUTS: "identity" | "sigmoid" (1997)
    readout_range: float | None = None  # readout weights and bias U(±a); None: U(±1/√H), b = 0
    readout_std: float | None = None  # readout weights N(0, std²), b = 0 (Pascanu et al. 2013)
    dropout: float = 0.0  # between stacked layers, in training only (torch.nn.LSTM's dropout)
    input_dropout: float = 0.0  # on the inputs of the first layer, in training only


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"  # "sgd" | "momentum" | "adam" | "adamw"
    learning_rate: float = 1e-3
    momentum: float = 0.9  # "momentum" only
    beta2: float = 0.999  # "adam", "adamw": the second-moment decay (xLSTM's formal tasks: 0.99)
    weight_decay: float = 0.0  # "adamw": decoupled weight decay (Loshchilov & Hutter 2019)
    schedule: str = "constant"  # "constant" | "cosine" | "exponential"
    decay_rate: float = 0.1  # "exponential": learning rate x decay_rate every decay_steps
    # Schedules count weight updates: one per training step, but under model.gradient=online
    # one per training.update_every symbols (1000 per step for a 1000-symbol chunk).
    decay_steps: int = 1000
    warmup_steps: int = 0
    min_learning_rate: float = 0.0  # "cosine": the learning rate it decays to
    clip_norm: float | None = None  # Pascanu et al. 2013, Algorithm 1: rescale if ‖g‖ > clip_norm


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    seed: int = 0
    batch_size: int = 32
    steps: int = 1000  # the step budget
    eval_every: int = 100
    eval_size: int = 256  # test-set size (sequences, or streams for stateful tasks)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3  # the newest checkpoints kept (Orbax deletes older steps)
    tensorboard: bool = False  # also log to <run>/tensorboard/ (the `tensorboard` extra)
    keep_host_memory: bool = True  # reuse freed host memory (training.host_memory): fewer page
    #                                faults per step on CPU; the process keeps its peak heap
    stop_when_solved: bool = True  # stop once the stopping rule (`stop_on`) is met
    stop_on: str = "test"  # "test": the task's criterion at an evaluation; "train": the 1997
    #                        training-set rule (`training.stopping.TrainingSetRule`)
    train_window: int = 2000  # "train": the most recent training sequences that must be right
    train_loss: float = 0.01  # "train": ... and the bound on their mean training loss
    update_every: int = 1  # model.gradient=online: steps between weight updates (1: every symbol)
    online_algorithm: str = "traces_1997"  # model.gradient=online: a name in
    #                  online.registry.ONLINE_ALGORITHMS (rtrl, uoro, eprop, rflo...)
    feedback: str = "symmetric"  # online: the error reaches the layer through the readout's
    #                              transpose ("symmetric") or a fixed random matrix ("random")
    omega: float = 0.0  # weight α of Pascanu et al.'s (2013) regulariser Ω (backward.regularizers)
    omega_form: str = "paper"  # "paper": eq. 9 as printed; "released": as their code computes
    #                            it (squared norms, mean over steps, R only), the form α=4 weighs
    reset_on_error: bool = False  # online: a stream ends at its first error, the net is reset
    #                               (Gers et al. 2000); learning resumes at the next episode


@dataclasses.dataclass(frozen=True)
class Config:
    task: TaskConfig
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts (for YAML, JSON and checkpoint metadata)."""
        return {
            name: {f.name: _plain(getattr(section, f.name)) for f in dataclasses.fields(section)}
            for name, section in ((name, getattr(self, name)) for name in SECTIONS)
        }


SECTIONS: dict[str, type] = {
    "task": TaskConfig,
    "model": ModelConfig,
    "optimizer": OptimizerConfig,
    "training": TrainingConfig,
}


def load(path: str | Path, variant: str | None = None, overrides: tuple[str, ...] = ()) -> Config:
    """Reads a YAML config, applies a named variant and then `key=value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping with sections {list(SECTIONS)}")
    variants = raw.pop("variants", None) or {}
    config = from_dict(raw, source=str(path))
    if variant is not None:
        if variant not in variants:
            raise ConfigError(
                f"{path} has no variant {variant!r}; its variants are {sorted(variants)}"
            )
        for key, value in variants[variant].items():
            config = override(config, key, value)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set takes key=value, got {item!r}")
        config = override(config, key.strip(), yaml.safe_load(text))
    return config


def from_dict(raw: Mapping[str, Any], source: str = "config") -> Config:
    _check_keys(raw, SECTIONS, source)
    if "task" not in raw:
        raise ConfigError(f"{source} needs a task section with at least `name`")
    sections = {}
    for name, cls in SECTIONS.items():
        values = raw.get(name) or {}
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: section {name!r} must be a mapping, got {values!r}")
        hints = typing.get_type_hints(cls)
        _check_keys(values, hints, f"{source}: section {name!r}")
        checked = {key: _typed(f"{name}.{key}", value, hints[key]) for key, value in values.items()}
        if name in ("task", "model"):
            checked["options"] = types.MappingProxyType(dict(checked.get("options", {})))
        try:
            sections[name] = cls(**checked)
        except TypeError as err:
            raise ConfigError(f"{source}: section {name!r}: {err}") from err
    return Config(**sections)


def override(config: Config, key: str, value: Any) -> Config:
    """Returns `config` with the dotted `key` set to `value` (type-checked)."""
    parts = key.split(".")
    section = parts[0]
    _check_keys({section: None}, SECTIONS, "override")
    hints = typing.get_type_hints(SECTIONS[section])
    if len(parts) < 2:
        raise ConfigError(f"override {key!r} must name a field, e.g. {section}.{next(iter(hints))}")
    _check_keys({parts[1]: None}, hints, f"section {section!r}")
    current = getattr(config, section)
    if parts[1] == "options" and len(parts) == 3:
        options = dict(current.options)
        options[parts[2]] = value  # checked against the task's / cell's own fields when built
        new = dataclasses.replace(current, options=types.MappingProxyType(options))
    elif len(parts) == 2:
        typed = _typed(key, value, hints[parts[1]])
        if parts[1] == "options":
            typed = types.MappingProxyType(dict(typed))
        new = dataclasses.replace(current, **{parts[1]: typed})
    else:
        raise ConfigError(f"override {key!r} is too deep; only `<section>.options.<name>` nests")
    return dataclasses.replace(config, **{section: new})


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"model.gradient": "full", ...}` of a nested config dict (empty dicts kept as values).

    >>> flatten({"model": {"gradient": "full", "options": {}}})
    {'model.gradient': 'full', 'model.options': {}}
    """
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def dump(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def _check_keys(values: Mapping[str, Any], valid: Mapping[str, Any], where: str) -> None:
    for key in values:
        if key not in valid:
            close = difflib.get_close_matches(str(key), list(valid), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; valid keys are {sorted(valid)}")


def _typed(key: str, value: Any, hint: Any) -> Any:
    """`value` if it fits the field's annotation (an int is accepted for a float), else an
    error naming the key, the expected and the received type."""
    allowed = {hint, *typing.get_args(hint)}
    if type(value) is int and str in allowed and int not in allowed:
        # YAML reads `--set model.variant=1997` as a number; a text field takes its digits.
        value = str(value)
    if isinstance(value, str) and float in allowed and str not in allowed:
        # YAML 1.1 reads 1e-3 (no dot) as a string; a float field takes it as the number it is.
        with contextlib.suppress(ValueError):
            value = float(value)
    if _fits(value, hint):
        whole = isinstance(value, int) and not isinstance(value, bool)
        return float(value) if whole and float in allowed and int not in allowed else value
    raise ConfigError(f"{key} expects {_describe(hint)}, got {type(value).__name__} {value!r}")


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is not None:  # Mapping[str, Any]
        return isinstance(value, Mapping)
    if hint is Any:
        return True
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
