"""What every task shares: the `Batch` layout, the `Task` protocol, and the helpers for
deterministic randomness, masks and the papers' success criteria."""

from __future__ import annotations

from typing import ClassVar, NamedTuple, Protocol

import numpy as np


class Batch(NamedTuple):
    """One batch, time-major. Steps past a sequence's length are zeros in every array."""

    inputs: np.ndarray  # [T, B, I] float32
    targets: np.ndarray  # [T, B, O] float32 ("mse", "sigmoid") or [T, B] int32 ("softmax")
    mask: np.ndarray  # [T, B] float32: 1 where the loss and the metrics apply
    lengths: np.ndarray  # [B] int32 valid lengths
    resets: np.ndarray | None  # [T, B] bool: zero the carry before this step; or None
    starts: np.ndarray | None = None  # [T, B] bool: an episode (a string of a stream) starts
    #                                  here, where `training.online.reset_on_error` resumes learning


class Task(Protocol):
    """What the trainer relies on; every task class below implements it."""

    name: ClassVar[str]
    loss: ClassVar[str]  # "mse" | "softmax" | "sigmoid"
    stateful: ClassVar[bool]  # consecutive batches continue the same B streams

    @property
    def input_size(self) -> int: ...

    @property
    def output_size(self) -> int: ...

    def batch(self, seed: int, step: int, batch_size: int) -> Batch: ...

    def test_set(self, seed: int, size: int) -> Batch: ...

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]: ...

    def solved(self, metrics: dict[str, float]) -> bool: ...


# --- shared helpers --------------------------------------------------------------------------

# `purpose` words of the RNG keys. Each purpose uses a fixed key length, and SeedSequence pads
# short keys with zeros, so distinct purpose words are what keeps the streams apart.
_TRAIN, _TRAIN_SET, _STREAM, _TEST_STREAM, _TEST = 1, 2, 3, 4, 2**31 - 1

# 1997 test criterion (exp. 4, 6): at most 1 wrong sequence in 2,560 test sequences.
_WRONG_PER_SEQUENCES = 2560


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _rng(seed: int, purpose: int, *index: int) -> np.random.Generator:
    return np.random.default_rng([_check_int("seed", seed, 0), purpose, *index])


def _train_rng(seed: int, step: int) -> np.random.Generator:
    return _rng(seed, _TRAIN, _check_int("step", step, 0))


def _valid(lengths: np.ndarray, steps: int) -> np.ndarray:
    """[T, B] bool: step t < length."""
    return np.arange(steps)[:, None] < np.asarray(lengths)[None, :]


def _last_step(lengths: np.ndarray, steps: int) -> np.ndarray:
    """[T, B] bool: step t is the sequence's last valid step."""
    return np.arange(steps)[:, None] == np.asarray(lengths)[None, :] - 1


def _one_hot(codes: np.ndarray, depth: int) -> np.ndarray:
    """float32 one-hot of integer codes; a negative code (padding) gives a zero vector."""
    return (codes[..., None] == np.arange(depth)).astype(np.float32)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _few_wrong(wrong: float, sequences: float) -> bool:
    """The 1997 criterion: wrong / sequences <= 1 / 2560."""
    return wrong * _WRONG_PER_SEQUENCES <= sequences


# Pascanu, Mikolov & Bengio (2013, §4.1): solved when "misclassified sequences was under 1% out
# of 10000 freshly random generated sequences" (their released code stops only at 0 wrong).
_PASCANU_WRONG_FRACTION = 0.01


def _under_one_percent(wrong: float, sequences: float) -> bool:
    """Pascanu et al.'s criterion: wrong / sequences < 1 %."""
    return wrong < _PASCANU_WRONG_FRACTION * sequences


def _sequence_regression_metrics(
    outputs: np.ndarray, batch: Batch, tolerance: float
) -> dict[str, float]:
    """One target per sequence (the masked step): wrong iff |error| >= tolerance."""
    mask = batch.mask > 0
    error = np.asarray(outputs, dtype=np.float64)[..., 0][mask] - batch.targets[..., 0][mask]
    wrong = int(np.sum(np.abs(error) >= tolerance))
    return {
        "correct_fraction": 1.0 - wrong / error.size,
        "wrong": float(wrong),
        "mse": float(np.mean(error**2)),
        "sequences": float(error.size),
    }


def _argmax_correct(outputs: np.ndarray, batch: Batch) -> np.ndarray:
    """[T, B] bool: the largest logit is the target class."""
    return np.argmax(np.asarray(outputs), axis=-1) == batch.targets


def _sets_correct(outputs: np.ndarray, batch: Batch, threshold: float = 0.0) -> np.ndarray:
    """[T, B] bool: the set {output > threshold} equals the multi-hot target set (threshold 0
    for logits, i.e. sigmoid > 0.5; 0.5 for sigmoid outputs)."""
    return np.all((np.asarray(outputs) > threshold) == (batch.targets > 0.5), axis=-1)


def _sequences_correct(correct: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[B] bool: correct at every masked step."""
    return np.all(correct | ~mask, axis=0)


class _Sampled:
    """Training batches and the test set are independent draws of one generator `_sample`."""

    stateful: ClassVar[bool] = False

    def batch(self, seed: int, step: int, batch_size: int) -> Batch:
        return self._sample(_train_rng(seed, step), _check_int("batch_size", batch_size, 1))

    def test_set(self, seed: int, size: int) -> Batch:
        return self._sample(_rng(seed, _TEST), _check_int("size", size, 1))

    def _sample(self, rng: np.random.Generator, size: int) -> Batch:
        raise NotImplementedError


# --- adding and multiplication (1997 exp. 4, 5) ----------------------------------------------


_Layout = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
