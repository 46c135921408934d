"""Formal-language tasks with length extrapolation (Delétang et al. 2023, "Neural Networks and the
Chomsky Hierarchy"; the xLSTM paper's formal-language benchmark, Beck et al. 2024, uses them).

Training strings have lengths drawn uniformly from `[min_length, max_length]`; the test set
draws from `[test_min_length, test_max_length]`, longer than any training string, so a net
scores well only if it learnt the rule rather than the lengths it saw. Each string is one-hot,
one symbol per step; the class is read at the string's last step (softmax over the classes).
The score is the xLSTM paper's scaled accuracy, `(acc - 1/C) / (1 - 1/C)` (0: chance, 1: every
test string right), with accuracy over the test strings of every length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lstm_jax.training.tasks.base import (
    _TEST,
    Batch,
    _argmax_correct,
    _check_int,
    _last_step,
    _one_hot,
    _rng,
    _train_rng,
)


class _LengthExtrapolation:
    """Sampling and scoring shared by the formal-language tasks: training and test strings
    differ in length only; subclasses define `num_classes`, `input_size` and `_strings`."""

    loss: ClassVar[str] = "softmax"
    stateful: ClassVar[bool] = False
    num_classes: ClassVar[int]

    min_length: int
    max_length: int
    test_min_length: int
    test_max_length: int

    def _check_lengths(self, shortest: int) -> None:
        _check_int("min_length", self.min_length, shortest)
        _check_int("test_min_length", self.test_min_length, shortest)
        for low, high in (("min_length", "max_length"), ("test_min_length", "test_max_length")):
            if _check_int(high, getattr(self, high), 1) < getattr(self, low):
                raise ValueError(
                    f"{high} must be >= {low}, got {high}={getattr(self, high)} < "
                    f"{low}={getattr(self, low)}"
                )

    @property
    def output_size(self) -> int:
        return self.num_classes

    def batch(self, seed: int, step: int, batch_size: int) -> Batch:
        """Training strings, padded to `max_length` steps (one compiled shape)."""
        rng = _train_rng(seed, step)
        size = _check_int("batch_size", batch_size, 1)
        return self._sample(rng, size, self.min_length, self.max_length)

    def test_set(self, seed: int, size: int) -> Batch:
        """Test strings of lengths in `[test_min_length, test_max_length]`, padded to the max."""
        rng = _rng(seed, _TEST)
        size = _check_int("size", size, 1)
        return self._sample(rng, size, self.test_min_length, self.test_max_length)

    def _sample(self, rng: np.random.Generator, size: int, low: int, high: int) -> Batch:
        lengths = rng.integers(low, high + 1, size)
        codes, labels, lengths = self._strings(rng, lengths, high)  # codes [T, B], -1 = padding
        last = _last_step(lengths, high)
        return Batch(
            inputs=_one_hot(codes, self.input_size),
            targets=np.where(last, labels[None, :], 0).astype(np.int32),
            mask=last.astype(np.float32),
            lengths=lengths.astype(np.int32),
            resets=None,
        )

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """`accuracy` over strings and the `scaled_accuracy` `(acc - 1/C) / (1 - 1/C)`."""
        correct = _argmax_correct(outputs, batch)[batch.mask > 0]
        accuracy = float(np.mean(correct))
        chance = 1.0 / self.num_classes
        return {"accuracy": accuracy, "scaled_accuracy": (accuracy - chance) / (1.0 - chance)}

    def solved(self, metrics: dict[str, float]) -> bool:
        """Every test string right."""
        return metrics["accuracy"] == 1.0


@dataclass(frozen=True)
class ParityCheck(_LengthExtrapolation):
    """Parity (regular; Delétang et al.'s "Parity Check"): a string over {0, 1}; the class is the
    number of 1s modulo 2. Needs state tracking: a net without nonlinear memory mixing (a
    diagonal linear recurrence) cannot represent it at all lengths (Merrill et al. 2024)."""

    name: ClassVar[str] = "parity"
    num_classes: ClassVar[int] = 2

    min_length: int = 3
    max_length: int = 40
    test_min_length: int = 41
    test_max_length: int = 256

    def __post_init__(self) -> None:
        self._check_lengths(1)

    @property
    def input_size(self) -> int:
        return 2

    def _strings(self, rng, lengths, steps):
        bits = rng.integers(0, 2, (steps, lengths.size))
        valid = np.arange(steps)[:, None] < lengths[None, :]
        labels = np.sum(bits * valid, axis=0) % 2
        return np.where(valid, bits, -1), labels, lengths


OPERATORS = ("+", "-", "*")
"""Modular arithmetic's operators, coded `modulus + index` after the numbers."""


@dataclass(frozen=True)
class ModularArithmetic(_LengthExtrapolation):
    """Modular arithmetic without brackets (regular; Delétang et al.'s "Modular Arithmetic
    (Simple)"): `n op n op … n` with numbers in `{0, …, modulus-1}` and operators `+ - *`
    uniform, evaluated with the usual precedence (products first) modulo `modulus`, e.g. mod 5:
    `1 + 2 * 3 = 2`, `1 - 1 - 1 = 4`. Strings have odd length (an even draw loses one step, as
    in Delétang et al.); the input alphabet is the numbers and the operators."""

    name: ClassVar[str] = "modular_arithmetic"

    modulus: int = 5
    min_length: int = 3
    max_length: int = 40
    test_min_length: int = 41
    test_max_length: int = 256

    def __post_init__(self) -> None:
        _check_int("modulus", self.modulus, 2)
        self._check_lengths(1)

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return self.modulus

    @property
    def input_size(self) -> int:
        return self.modulus + len(OPERATORS)

    def _strings(self, rng, lengths, steps):
        lengths = lengths - (1 - lengths % 2)  # odd
        size = lengths.size
        numbers = rng.integers(0, self.modulus, (steps // 2 + 1, size))
        ops = rng.integers(0, len(OPERATORS), (steps // 2, size))
        codes = np.full((steps, size), -1)
        codes[::2] = numbers[: (steps + 1) // 2]
        codes[1::2] = self.modulus + ops[: steps // 2]
        codes[np.arange(steps)[:, None] >= lengths[None, :]] = -1
        return codes, arithmetic_value(numbers, ops, lengths // 2, self.modulus), lengths


def arithmetic_value(
    numbers: np.ndarray, ops: np.ndarray, num_ops: np.ndarray, modulus: int
) -> np.ndarray:
    """`numbers[0] ops[0] numbers[1] …` up to `num_ops` operators per column, products first,
    modulo `modulus`: `[K+1, B]` numbers, `[K, B]` operator indices into `OPERATORS` -> `[B]`."""
    total = np.zeros(numbers.shape[1], dtype=np.int64)
    term = numbers[0].astype(np.int64)  # the signed product being built
    for k in range(ops.shape[0]):
        active = k < num_ops
        nxt = numbers[k + 1].astype(np.int64)
        op = ops[k]
        multiply = active & (op == OPERATORS.index("*"))
        close = active & ~multiply  # + or -: the term is complete
        total = np.where(close, (total + term) % modulus, total)
        sign = np.where(op == OPERATORS.index("-"), -1, 1)
        term = np.where(multiply, (term * nxt) % modulus, np.where(close, sign * nxt, term))
    return (total + term) % modulus
