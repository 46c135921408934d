"""Training modes on one protocol (`protocol.Learner`): `bptt` (full, truncated and windowed
backpropagation through time, with Pascanu et al.'s Ω) and `online` (SGD while the stream runs,
from any online gradient algorithm). `training.learner` names one of `LEARNERS`."""

from __future__ import annotations

from lstm_jax.training.learners import bptt, online
from lstm_jax.training.learners.protocol import Learner, Setup, StepFn, TrainState
from lstm_jax.training.schema import ConfigError

LEARNERS: dict[str, Learner] = {"bptt": bptt.LEARNER, "online": online.LEARNER}


def register_learner(name: str, learner: Learner) -> None:
    """Makes `learner` available to configs as `training.learner: name`.

    >>> register_learner("bptt", LEARNERS["bptt"])  # the same learner again: allowed
    """
    if name in LEARNERS and LEARNERS[name] is not learner:
        raise ValueError(f"a different learner is already registered as {name!r}")
    LEARNERS[name] = learner


def get_learner(name: str) -> Learner:
    """The learner registered as `name`; a ConfigError listing the registered ones otherwise.

    >>> get_learner("online") is LEARNERS["online"]
    True
    """
    if name not in LEARNERS:
        raise ConfigError(f"training.learner must be one of {sorted(LEARNERS)}, got {name!r}")
    return LEARNERS[name]


__all__ = [
    "LEARNERS",
    "Learner",
    "Setup",
    "StepFn",
    "TrainState",
    "get_learner",
    "register_learner",
]
