"""Experiment configuration: YAML files loaded into the frozen, typed sections of `schema`.

A config file has four sections (`task`, `model`, `optimizer`, `training`; `training` nests
`stopping`, `online` and `omega`) and an optional `variants:` mapping of named override sets
(`tiny:` is the one the tests run). Overrides, from a variant or from `--set key=value`, use
dotted keys (`training.steps=100`, `training.online.algorithm=rtrl`, `task.options.length=50`);
they are applied to the file's values before anything is typed, so each section is checked
once, in its final state. Each value is type-checked against the field it sets (a mode against
its Enum, listing the valid values); an unknown key is an error listing the valid keys at that
level, and a key of an earlier config format names the key that replaced it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lstm_jax.training.schema import (
    MOVED,
    SECTIONS,
    Config,
    ConfigError,
    Feedback,
    Gradient,
    Impl,
    ModelConfig,
    OmegaConfig,
    OmegaForm,
    OnlineConfig,
    OptimizerConfig,
    OptimizerName,
    Output,
    Schedule,
    StopOn,
    StoppingConfig,
    TaskConfig,
    TrainingConfig,
)

__all__ = [
    "SECTIONS",
    "Config",
    "ConfigError",
    "Feedback",
    "Gradient",
    "Impl",
    "ModelConfig",
    "OmegaConfig",
    "OmegaForm",
    "OnlineConfig",
    "OptimizerConfig",
    "OptimizerName",
    "Output",
    "Schedule",
    "StopOn",
    "StoppingConfig",
    "TaskConfig",
    "TrainingConfig",
    "dump",
    "flatten",
    "from_dict",
    "load",
    "override",
]

# Values of earlier configs that became another key: (key, value) -> what to set instead.
_MOVED_VALUES = {
    ("model.gradient", "online"): "training.learner=online (the gradient is then the online "
    "algorithm's, training.online.algorithm)",
}

# Sections that were one value in earlier configs: section -> the key that value goes in now.
_WAS_A_VALUE = {"training.omega": "training.omega.weight"}


def load(path: str | Path, variant: str | None = None, overrides: tuple[str, ...] = ()) -> Config:
    """Reads a YAML config, applies a named variant and then `key=value` overrides.

    >>> from lstm_jax.training.cli import resolve_config
    >>> load(resolve_config("quickstart"), "tiny").training.steps
    20
    """
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
    if variant is not None and variant not in variants:
        raise ConfigError(f"{path} has no variant {variant!r}; its variants are {sorted(variants)}")
    settings = list((variants[variant] if variant is not None else {}).items())
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set takes key=value, got {item!r}")
        settings.append((key.strip(), yaml.safe_load(text)))
    for key, value in settings:
        _set(raw, key, value)
    return from_dict(raw, source=str(path))


def from_dict(raw: Mapping[str, Any], source: str = "config") -> Config:
    """The typed `Config` of nested plain values (as `Config.to_dict` gives them).

    >>> from_dict({"task": {"name": "adding"}, "model": {"gradient": "truncated"}}).model.gradient
    <Gradient.TRUNCATED: 'truncated'>
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source} must hold a mapping with sections {list(SECTIONS)}")
    if "task" not in raw:
        _check_keys(raw, SECTIONS, "", source)
        raise ConfigError(f"{source} needs a task section with at least `name`")
    return _section(Config, raw, "", source)


def override(config: Config, key: str, value: Any) -> Config:
    """`config` with the dotted `key` set to `value` (type-checked, the section re-checked).

    >>> config = from_dict({"task": {"name": "adding"}})
    >>> override(config, "training.online.update_every", 10).training.online.update_every
    10
    """
    raw = config.to_dict()
    _set(raw, key, value)
    return from_dict(raw, source="override")


def _section(cls: type, values: Any, path: str, source: str) -> Any:
    """The dataclass `cls` of the mapping `values` found at `path` (`""`: the whole config)."""
    where = f"{source}: section {path!r}" if path else source
    if not isinstance(values, Mapping):
        if path in _WAS_A_VALUE:
            raise ConfigError(
                f"{path} is a section now; the value {values!r} goes in {_WAS_A_VALUE[path]}"
            )
        raise ConfigError(f"{where} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    _check_keys(values, hints, path, source)
    fields = {}
    for key, value in values.items():
        name = f"{path}.{key}" if path else key
        if dataclasses.is_dataclass(hints[key]):
            fields[key] = _section(hints[key], {} if value is None else value, name, source)
        else:
            fields[key] = _typed(name, value, hints[key])
    if "options" in hints:
        fields["options"] = types.MappingProxyType(dict(fields.get("options") or {}))
    try:
        return cls(**fields)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from err


def _set(raw: dict[str, Any], key: str, value: Any) -> None:
    """Sets the dotted `key` of the nested dict `raw` to `value`, each part checked against
    the schema (an `options` mapping takes any name: the task or cell checks it)."""
    parts, cls, node = key.split("."), Config, raw
    for i, part in enumerate(parts):
        path = ".".join(parts[:i])
        hints = typing.get_type_hints(cls)
        _check_keys({part: None}, hints, path, "override")
        if i == len(parts) - 1:
            if not path:
                raise ConfigError(f"override {key!r} must name a field, e.g. {part}.<name>")
            node[part] = copy.deepcopy(value)
            return
        if part == "options" and i == len(parts) - 2:
            options = node.get(part) or {}
            node[part] = {**options, parts[-1]: copy.deepcopy(value)}
            return
        if not dataclasses.is_dataclass(hints[part]):
            raise ConfigError(f"override {key!r} is too deep: {path or part}.{part} is a value")
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node, cls = node[part], hints[part]


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


def _check_keys(
    values: Mapping[str, Any], valid: Mapping[str, Any], path: str, source: str
) -> None:
    for key in values:
        name = f"{path}.{key}" if path else str(key)
        if name in MOVED:
            raise ConfigError(f"{source}: {name} is now {MOVED[name]}")
        if key not in valid:
            close = difflib.get_close_matches(str(key), list(valid), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f"{source}: section {path!r}" if path else source
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; valid keys are {sorted(valid)}")


def _typed(key: str, value: Any, hint: Any) -> Any:
    """`value` if it fits the field's annotation (an int is accepted for a float), else an
    error naming the key, the expected and the received type."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _member(key, value, hint)
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


def _member(key: str, value: Any, kind: type[enum.Enum]) -> enum.Enum:
    """The member of `kind` whose value is `value`, else an error listing the valid ones."""
    if isinstance(value, kind):
        return value
    if (key, value) in _MOVED_VALUES:
        raise ConfigError(f"{key}={value} is now {_MOVED_VALUES[key, value]}")
    try:
        return kind(value)
    except ValueError:
        valid = [member.value for member in kind]
        raise ConfigError(f"{key} must be one of {valid}, got {value!r}") from None


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
