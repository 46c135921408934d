"""The adding and multiplication problems (Hochreiter & Schmidhuber 1997, exp. 4 and 5;
Pascanu et al. 2013's adding variant): two marked values among noise, a target that needs both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lstm_jax.training.tasks.base import (
    Batch,
    _check_int,
    _few_wrong,
    _last_step,
    _Layout,
    _Sampled,
    _sequence_regression_metrics,
    _under_one_percent,
    _valid,
)


def _marked_pairs_1997(
    rng: np.random.Generator, size: int, length: int, low: float, neutral: float
) -> _Layout:
    """(values, markers, lengths, first, second) of the 1997 layout."""
    lengths = rng.integers(length, length + length // 10 + 1, size)
    steps = length + length // 10
    cols = np.arange(size)
    values = rng.uniform(low, 1.0, (steps, size))
    first = rng.integers(0, 10, size)
    # "one of the first T/2 - 1 still unmarked pairs": positions 0 .. T/2 - 1 except `first`.
    draw = rng.integers(0, length // 2 - 1, size)
    second = draw + (draw >= first)
    markers = np.zeros((steps, size))
    markers[0] = -1.0
    markers[lengths - 1, cols] = -1.0
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    values[0, (first == 0) | (second == 0)] = neutral  # "X1 is set to zero" (1.0 in exp. 5)
    values[~_valid(lengths, steps)] = 0.0
    return values, markers, lengths, first, second


def _marked_pairs_pascanu(rng: np.random.Generator, size: int, length: int) -> _Layout:
    """(values, markers, lengths, first, second) of Pascanu et al.'s `AddTask`."""
    lengths = rng.integers(length, length + length // 10, size)
    steps = length + length // 10 - 1
    cols = np.arange(size)
    values = rng.uniform(0.0, 1.0, (steps, size))
    first = rng.integers(0, lengths // 10)
    second = lengths // 10 + rng.integers(0, 4 * lengths // 10)
    markers = np.zeros((steps, size))
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    values[~_valid(lengths, steps)] = 0.0
    return values, markers, lengths, first, second


@dataclass(frozen=True)
class _MarkedPairs(_Sampled):
    """Inputs (value, marker) pairs; one regression target at each sequence's last valid step."""

    loss: ClassVar[str] = "mse"
    tolerance: ClassVar[float] = 0.04  # 1997: a sequence is correct iff |error| < 0.04

    length: int = 100

    @property
    def input_size(self) -> int:
        return 2

    @property
    def output_size(self) -> int:
        return 1

    def _layout(self, rng: np.random.Generator, size: int) -> _Layout:
        """(values, markers, lengths, first, second): [T, B] inputs, [B] lengths, positions."""
        raise NotImplementedError

    def _target(self, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _sample(self, rng: np.random.Generator, size: int) -> Batch:
        values, markers, lengths, first, second = self._layout(rng, size)
        cols = np.arange(size)
        target = self._target(values[first, cols], values[second, cols])
        last = _last_step(lengths, values.shape[0])
        return Batch(
            inputs=np.stack([values, markers], axis=-1).astype(np.float32),
            targets=np.where(last, target, 0.0)[..., None].astype(np.float32),
            mask=last.astype(np.float32),
            lengths=lengths.astype(np.int32),
            resets=None,
        )

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """`correct_fraction`, `wrong` (|error| >= `tolerance`), `mse`, `sequences`."""
        return _sequence_regression_metrics(outputs, batch, self.tolerance)

    def correct(self, outputs: np.ndarray, batch: Batch) -> np.ndarray:
        """`[B]` bool: |error| < `tolerance` at the sequence's target step (the 1997 training-set
        stopping rule scores each training sequence with this)."""
        error = np.sum((np.asarray(outputs)[..., 0] - batch.targets[..., 0]) * batch.mask, axis=0)
        return np.abs(error) < self.tolerance

    def solved(self, metrics: dict[str, float]) -> bool:
        """1997 test criterion: at most 1 wrong per 2,560 test sequences."""
        return _few_wrong(metrics["wrong"], metrics["sequences"])


@dataclass(frozen=True)
class AddingProblem(_MarkedPairs):
    """Adding problem (Hochreiter & Schmidhuber 1997, exp. 4).

    `variant="1997"`: inputs are (value, marker) pairs, values ~ U[-1, 1]; each sequence's
    length is uniform in [T, T + T//10] (padded to T + T//10). Exactly two pairs are marked
    with +1: one of the first 10 (X1), then one of the first T/2 - 1 still unmarked pairs, i.e.
    a position in [0, T/2) other than X1's (X2). The first and the last valid pair carry marker
    -1 unless marked; when the first pair is marked its value is set to 0 (the paper: "X1 is
    set to zero in the rare case where the first pair of the sequence got marked"). Target
    `0.5 + (X1 + X2) / 4` at the last valid step only. Correct iff |error| < 0.04. Published:
    T = 100 solved after 74,000 training sequences, T = 500 after 209,000, T = 1000 after
    853,000, with 0-1 wrong of 2,560 test sequences.

    `variant="pascanu"` (Pascanu, Mikolov & Bengio 2013, their released `AddTask`): values
    ~ U[0, 1], markers 0/1 only; length uniform in [T, T + T//10 - 1] (their code draws one
    length per minibatch, here per sequence); with l the length, X1 at a position in
    [0, l//10) and X2 in [l//10, l//10 + 4l//10), i.e. in the first 10 % and in 10-50 %;
    target the mean `(X1 + X2) / 2`.
    """

    name: ClassVar[str] = "adding"
    variant: str = "1997"

    def __post_init__(self) -> None:
        if self.variant not in ("1997", "pascanu"):
            raise ValueError(f"variant must be '1997' or 'pascanu', got {self.variant!r}")
        _check_int("length", self.length, 20 if self.variant == "1997" else 10)

    @property
    def tolerance(self) -> float:
        """|error| at which a sequence is wrong: 0.04 (1997), 0.2 (Pascanu: squared error .04)."""
        return 0.04 if self.variant == "1997" else 0.2

    def solved(self, metrics: dict[str, float]) -> bool:
        """1997: at most 1 wrong per 2,560 test sequences; Pascanu et al.: under 1 % wrong."""
        if self.variant == "1997":
            return super().solved(metrics)
        return _under_one_percent(metrics["wrong"], metrics["sequences"])

    def _layout(self, rng: np.random.Generator, size: int) -> _Layout:
        if self.variant == "1997":
            return _marked_pairs_1997(rng, size, self.length, low=-1.0, neutral=0.0)
        return _marked_pairs_pascanu(rng, size, self.length)

    def _target(self, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        return 0.5 + (x1 + x2) / 4 if self.variant == "1997" else (x1 + x2) / 2


@dataclass(frozen=True)
class MultiplicationProblem(_MarkedPairs):
    """Multiplication problem (Hochreiter & Schmidhuber 1997, exp. 5).

    The 1997 adding layout (see `AddingProblem`) with values ~ U[0, 1] and target `X1 * X2`;
    when the first pair is marked its value is set to 1.0 (the neutral element, as the paper
    does). The paper counts a test sequence wrong when its absolute error is >= 0.04, as in
    the adding problem, on 2,560 test sequences; T = 100. No published figure is recorded here;
    `solved` applies the adding problem's criterion (at most 1 wrong per 2,560).
    """

    name: ClassVar[str] = "multiplication"

    def __post_init__(self) -> None:
        _check_int("length", self.length, 20)

    def _layout(self, rng: np.random.Generator, size: int) -> _Layout:
        return _marked_pairs_1997(rng, size, self.length, low=0.0, neutral=1.0)

    def _target(self, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        return x1 * x2


# --- temporal order (1997 exp. 6) ------------------------------------------------------------
