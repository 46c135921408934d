"""The config's sections: frozen dataclasses whose fields say what they hold, and the modes as
Enums, so that a config that loads is one whose values are all known.

Each section checks its own values when it is made (`__post_init__`: ranges, and the pairs of
fields that exclude each other); what needs the built task or cell is checked by the
component that uses the section (`model.validate`, `stopping.validate`, each learner's
`validate`). Optional parts nest: `training.online`, `training.stopping`, `training.omega`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any

from lstm_jax.backward.regularizers import OmegaForm
from lstm_jax.driver.options import UnrollOptions
from lstm_jax.driver.scan import Impl
from lstm_jax.modes import Gradient

__all__ = ["Gradient", "Impl", "OmegaForm"]  # the modes of other layers a config names


class ConfigError(ValueError):
    """A malformed config, an unknown key or a value of the wrong type."""


class Output(enum.Enum):
    """The readout's output unit (`model.output`)."""

    IDENTITY = "identity"  # linear: the losses apply softmax / sigmoid themselves
    SIGMOID = "sigmoid"  # the 1997 output unit, y = σ(h W + b), trained on squared error


class OptimizerName(enum.Enum):
    SGD = "sgd"
    MOMENTUM = "momentum"
    ADAM = "adam"
    ADAMW = "adamw"


class Schedule(enum.Enum):
    CONSTANT = "constant"
    COSINE = "cosine"
    EXPONENTIAL = "exponential"


class StopOn(enum.Enum):
    """What a run is judged solved on (`training.stopping.rule`)."""

    TEST = "test"  # the task's criterion on the test set, at each evaluation
    TRAIN = "train"  # the 1997 training-set rule (`training.stopping.TrainingSetRule`)


class Feedback(enum.Enum):
    """How the error reaches the recurrent layer under online learning."""

    SYMMETRIC = "symmetric"  # through the readout's transpose
    RANDOM = "random"  # through a fixed random matrix (random e-prop, RFLO as Murray states it)


def _at_least(section: str, **values: Any) -> None:
    """Each of `values` (name: (value, lowest)) must be >= its lowest."""
    for name, (value, lowest) in values.items():
        if value is not None and not value >= lowest:
            raise ConfigError(f"{section}.{name} must be >= {lowest}, got {value}")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    name: str  # a key of lstm_jax.training.tasks.TASKS
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the task's fields


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    cell: str = "lstm"  # a name in lstm_jax.cells.registry.CELLS
    variant: str | None = None  # for cells with variants: the LSTM's (lstm_jax.LSTM_VARIANTS)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the builder's keywords
    hidden_size: int = 32
    num_layers: int = 1
    gradient: Gradient = Gradient.FULL  # under the bptt learner (online: the algorithm's own)
    window: int | None = None  # windowed truncated BPTT, steps per window
    impl: Impl = Impl.AUTO  # scan | fused | parallel (mLSTM, min-RNNs) | auto
    output: Output = Output.IDENTITY
    readout_range: float | None = None  # readout weights and bias U(±a); None: U(±1/√H), b = 0
    readout_std: float | None = None  # readout weights N(0, std²), b = 0 (Pascanu et al. 2013)
    dropout: float = 0.0  # between stacked layers, in training only (torch.nn.LSTM's dropout)
    input_dropout: float = 0.0  # on the inputs of the first layer, in training only

    def __post_init__(self) -> None:
        _at_least("model", hidden_size=(self.hidden_size, 1), num_layers=(self.num_layers, 1))
        _at_least("model", window=(self.window, 1))
        for name in ("readout_range", "readout_std"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"model.{name} must be > 0, got {value}")
        if self.readout_range is not None and self.readout_std is not None:
            raise ConfigError(
                f"model.readout_range ({self.readout_range}) and model.readout_std "
                f"({self.readout_std}) are two initialisations of the readout: set one"
            )
        for name in ("dropout", "input_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.dropout and self.num_layers < 2:
            raise ConfigError(
                f"model.dropout={self.dropout} acts between stacked layers and model.num_layers "
                f"is {self.num_layers}: set model.num_layers >= 2, or use model.input_dropout"
            )

    def unroll_options(self) -> UnrollOptions:
        """How the model's layers unroll in training: `gradient`, `window`, `impl`."""
        return UnrollOptions(gradient=self.gradient, window=self.window, impl=self.impl)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    name: OptimizerName = OptimizerName.ADAM
    learning_rate: float = 1e-3  # 0: frozen weights; a negative rate would ascend
    momentum: float = 0.9  # "momentum" only
    beta2: float = 0.999  # "adam", "adamw": the second-moment decay (xLSTM's formal tasks: 0.99)
    weight_decay: float = 0.0  # "adamw": decoupled weight decay (Loshchilov & Hutter 2019)
    schedule: Schedule = Schedule.CONSTANT
    decay_rate: float = 0.1  # "exponential": learning rate x decay_rate every decay_steps
    # Schedules count weight updates: one per training step, but under the online learner one
    # per training.online.update_every symbols (1000 per step for a 1000-symbol chunk).
    decay_steps: int = 1000
    warmup_steps: int = 0
    min_learning_rate: float = 0.0  # "cosine": the learning rate it decays to
    clip_norm: float | None = None  # Pascanu et al. 2013, Algorithm 1: rescale if ‖g‖ > clip_norm

    def __post_init__(self) -> None:
        ranges = {  # name: (value, lowest, highest)
            "learning_rate": (self.learning_rate, 0.0, math.inf),
            "min_learning_rate": (self.min_learning_rate, 0.0, self.learning_rate),
            "weight_decay": (self.weight_decay, 0.0, math.inf),
            "beta2": (self.beta2, 0.0, 1.0),
            "momentum": (self.momentum, 0.0, 1.0),
        }
        for name, (value, low, high) in ranges.items():
            if not low <= value <= high:
                bound = f">= {low}" + (f" and <= {high}" if high < math.inf else "")
                raise ConfigError(f"optimizer.{name} must be {bound}, got {value}")
        if self.clip_norm is not None and not self.clip_norm > 0:  # NaN fails `> 0` too
            raise ConfigError(  # a negative bound flips every gradient, zero zeroes them
                f"optimizer.clip_norm must be > 0, or null for no clipping; got {self.clip_norm}"
            )
        _at_least("optimizer", decay_steps=(self.decay_steps, 1))
        _at_least("optimizer", warmup_steps=(self.warmup_steps, 0))


@dataclasses.dataclass(frozen=True)
class StoppingConfig:
    """When a run counts as solved, and whether it stops there (`training.stopping`)."""

    rule: StopOn = StopOn.TEST
    when_solved: bool = True  # stop once the rule is met
    window: int = 2000  # rule=train: the most recent training sequences that must be right
    max_loss: float = 0.01  # rule=train: ... and the bound on their mean training loss

    def __post_init__(self) -> None:
        _at_least("training.stopping", window=(self.window, 1))


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """SGD while the stream runs (`training.learner: online`; `training.learners.online`)."""

    algorithm: str = "traces_1997"  # a name of lstm_jax.online.registry.ONLINE_ALGORITHMS
    update_every: int = 1  # steps between weight updates (1: after every symbol)
    feedback: Feedback = Feedback.SYMMETRIC
    reset_on_error: bool = False  # a stream ends at its first error, the net is reset (Gers
    #                               et al. 2000); learning resumes at the next episode

    def __post_init__(self) -> None:
        _at_least("training.online", update_every=(self.update_every, 1))


@dataclasses.dataclass(frozen=True)
class OmegaConfig:
    """Pascanu et al.'s (2013) regulariser Ω (`backward.regularizers`), under the bptt learner."""

    weight: float = 0.0  # α; 0: off
    form: OmegaForm = OmegaForm.PAPER  # paper: eq. 9 as printed; released: as their code
    #                                    computes it (squared norms, mean over steps, R only)

    def __post_init__(self) -> None:
        _at_least("training.omega", weight=(self.weight, 0.0))


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
    learner: str = "bptt"  # a name of lstm_jax.training.learners.LEARNERS: bptt | online
    stopping: StoppingConfig = dataclasses.field(default_factory=StoppingConfig)
    online: OnlineConfig = dataclasses.field(default_factory=OnlineConfig)
    omega: OmegaConfig = dataclasses.field(default_factory=OmegaConfig)

    def __post_init__(self) -> None:
        positive = ("batch_size", "steps", "eval_every", "eval_size", "checkpoint_every")
        _at_least("training", **{k: (getattr(self, k), 1) for k in positive})
        _at_least("training", keep_checkpoints=(self.keep_checkpoints, 1))


@dataclasses.dataclass(frozen=True)
class Config:
    task: TaskConfig
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts, Enums as their values (for YAML, JSON and checkpoints)."""
        return _plain(self)


SECTIONS: dict[str, type] = {
    "task": TaskConfig,
    "model": ModelConfig,
    "optimizer": OptimizerConfig,
    "training": TrainingConfig,
}

# Keys of earlier configs, each with where it lives now (an old file gets an error naming it).
MOVED: dict[str, str] = {
    "training.online_algorithm": "training.online.algorithm",
    "training.update_every": "training.online.update_every",
    "training.feedback": "training.online.feedback",
    "training.reset_on_error": "training.online.reset_on_error",
    "training.stop_on": "training.stopping.rule",
    "training.stop_when_solved": "training.stopping.when_solved",
    "training.train_window": "training.stopping.window",
    "training.train_loss": "training.stopping.max_loss",
    "training.omega_form": "training.omega.form",
}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
