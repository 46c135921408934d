"""The temporal order problem (Hochreiter & Schmidhuber 1997, exp. 6a / 6b)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lstm_jax.training.tasks.base import (
    Batch,
    _argmax_correct,
    _check_int,
    _few_wrong,
    _last_step,
    _log_softmax,
    _one_hot,
    _Sampled,
    _sequences_correct,
    _under_one_percent,
    _valid,
)

TEMPORAL_ORDER_SYMBOLS = "abcdBEXY"  # one-hot order of the 8 input symbols
_DISTRACTORS, _B, _E, _X = 4, 4, 5, 6
# 1997 exp. 6a / 6b positions of the relevant symbols (for sequences of length 100-110).
_PAPER_POSITIONS = {2: ((10, 20), (50, 60)), 3: ((10, 20), (33, 43), (66, 76))}


@dataclass(frozen=True)
class TemporalOrder(_Sampled):
    """Temporal order (Hochreiter & Schmidhuber 1997, exp. 6a with 2 symbols, 6b with 3).

    Inputs one-hot over `a b c d B E X Y`. A sequence of length uniform in
    [min_length, max_length] starts with E, ends with the trigger symbol B, and is otherwise
    random distractors a-d except at the relevant positions t1 < t2 (< t3), which hold X or Y
    (each 1/2). Paper positions (0-based, E at 0): 6a t1 in [10, 20], t2 in [50, 60];
    6b t1 in [10, 20], t2 in [33, 43], t3 in [66, 76]. With `positions=None` these are scaled
    by min_length / 100 (floored), so short configurations keep the paper's proportions;
    `positions` sets the inclusive ranges explicitly. Class (softmax target at the last valid
    step, the B): the relevant symbols read as binary digits, X = 0, Y = 1, first most
    significant: 6a XX, XY, YX, YY -> 0..3 (the paper's Q, R, S, U); 6b XXX .. YYY -> 0..7.

    `targets="classes"` (the default): integer classes for a softmax readout. `targets="one_hot"`:
    the paper's set-up, one output unit per class (sigmoid, `model.output: sigmoid`) trained
    on the squared error against the one-hot class vector.

    The paper counts a sequence correct iff every output unit's final absolute error is below
    0.3; for softmax outputs that is target probability > 0.7 (`wrong_1997`), which `solved`
    applies with the 1997 test criterion (at most 1 wrong per 2,560). `wrong` counts argmax
    errors. Published (6a): 1 of 2,560 test sequences wrong after 31,390 training sequences.
    """

    name: ClassVar[str] = "temporal_order"
    tolerance: ClassVar[float] = 0.3  # 1997: every output unit's final |error| < 0.3

    symbols: int = 2
    min_length: int = 100
    max_length: int = 110
    positions: tuple[tuple[int, int], ...] | None = None
    targets: str = "classes"

    @property
    def loss(self) -> str:
        return "mse" if self.targets == "one_hot" else "softmax"

    def __post_init__(self) -> None:
        if self.targets not in ("classes", "one_hot"):
            raise ValueError(f"targets must be 'classes' or 'one_hot', got {self.targets!r}")
        if self.symbols not in (2, 3):
            raise ValueError(f"symbols must be 2 (exp. 6a) or 3 (exp. 6b), got {self.symbols!r}")
        _check_int("min_length", self.min_length, 3)
        _check_int("max_length", self.max_length, self.min_length)
        if self.positions is not None:
            try:
                ranges = tuple((int(lo), int(hi)) for lo, hi in self.positions)
            except (TypeError, ValueError):
                raise ValueError(
                    f"positions must be {self.symbols} (lo, hi) integer pairs, got "
                    f"{self.positions!r}"
                ) from None
            object.__setattr__(self, "positions", ranges)  # lists from a config become tuples
        ranges = self.ranges
        source = "positions" if self.positions is not None else "the scaled paper positions"
        if len(ranges) != self.symbols:
            raise ValueError(f"positions must have {self.symbols} ranges, got {len(ranges)}")
        bound = 0  # E occupies step 0
        for lo, hi in ranges:
            if not bound < lo <= hi:
                raise ValueError(
                    f"{source} {ranges} must be increasing, non-overlapping inclusive ranges "
                    f"after step 0 (E)"
                )
            bound = hi
        if bound > self.min_length - 2:
            raise ValueError(
                f"{source} {ranges} must end before the trigger B at step min_length - 1 = "
                f"{self.min_length - 1}"
            )

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        """The inclusive position ranges of the relevant symbols actually used."""
        if self.positions is not None:
            return self.positions
        return tuple(
            (lo * self.min_length // 100, hi * self.min_length // 100)
            for lo, hi in _PAPER_POSITIONS[self.symbols]
        )

    @property
    def input_size(self) -> int:
        return len(TEMPORAL_ORDER_SYMBOLS)

    @property
    def output_size(self) -> int:
        return 2**self.symbols

    def _sample(self, rng: np.random.Generator, size: int) -> Batch:
        steps, cols = self.max_length, np.arange(size)
        lengths = rng.integers(self.min_length, self.max_length + 1, size)
        codes = rng.integers(0, _DISTRACTORS, (steps, size))
        codes[0] = _E
        codes[lengths - 1, cols] = _B
        labels = rng.integers(0, 2, (self.symbols, size))  # 0 = X, 1 = Y
        for (lo, hi), label in zip(self.ranges, labels, strict=True):
            codes[rng.integers(lo, hi + 1, size), cols] = _X + label
        codes[~_valid(lengths, steps)] = -1
        classes = sum(label << (self.symbols - 1 - k) for k, label in enumerate(labels))
        last = _last_step(lengths, steps)
        targets = np.where(last, classes, 0).astype(np.int32)
        if self.targets == "one_hot":
            targets = _one_hot(np.where(last, targets, -1), self.output_size)
        return Batch(
            inputs=_one_hot(codes, self.input_size),
            targets=targets,
            mask=last.astype(np.float32),
            lengths=lengths.astype(np.int32),
            resets=None,
        )

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """`accuracy`, `wrong` (argmax), `wrong_1997` (some output's final |error| >= 0.3: for
        softmax outputs, target probability <= 0.7), `sequences`."""
        mask = batch.mask > 0
        outputs = np.asarray(outputs, np.float64)
        if self.targets == "one_hot":
            targets = np.argmax(batch.targets[mask], axis=-1)
            wrong_1997 = np.sum(~self.correct(outputs, batch))
            scores = outputs[mask]
        else:
            targets = batch.targets[mask]
            scores = _log_softmax(outputs)[mask]
            wrong_1997 = np.sum(np.exp(scores[np.arange(targets.size), targets]) <= 0.7)
        wrong = int(np.sum(np.argmax(scores, axis=-1) != targets))
        return {
            "accuracy": 1.0 - wrong / targets.size,
            "wrong": float(wrong),
            "wrong_1997": float(wrong_1997),
            "sequences": float(targets.size),
        }

    def correct(self, outputs: np.ndarray, batch: Batch) -> np.ndarray:
        """`[B]` bool, the paper's rule: every output's |error| < 0.3 at the last step (for
        softmax outputs: the target class's probability > 0.7)."""
        mask = batch.mask > 0
        if self.targets == "one_hot":
            close = np.all(np.abs(np.asarray(outputs) - batch.targets) < self.tolerance, axis=-1)
            return _sequences_correct(close, mask)
        p = np.exp(_log_softmax(np.asarray(outputs, np.float64)))
        p_target = np.take_along_axis(p, batch.targets[..., None], axis=-1)[..., 0]
        return _sequences_correct(p_target > 1 - self.tolerance, mask)

    def solved(self, metrics: dict[str, float]) -> bool:
        """At most 1 wrong (1997 criterion: every output error < 0.3) per 2,560 sequences."""
        return _few_wrong(metrics["wrong_1997"], metrics["sequences"])


PASCANU_TEMPORAL_ORDER_SYMBOLS = "ABcdef"  # one-hot order of their 6 input symbols


@dataclass(frozen=True)
class PascanuTemporalOrder(_Sampled):
    """The temporal order problem as Pascanu, Mikolov & Bengio (2013) generate it (their
    released `TempOrderTask`), the task of their Figure 7.

    Inputs one-hot over 6 symbols `A B c d e f`; every sequence has exactly `length` steps
    (no start or end marker). Each step is a random distractor c-f except one position p0 in
    [L//10, 2L//10) and one p1 in [5L//10, 6L//10), which hold A or B (each 1/2). Class, read
    at the last step by a softmax: `v0 + 2 v1` (A = 0, B = 1), i.e. AA, BA, AB, BB -> 0..3.
    A sequence is wrong when the argmax is not its class; solved when under 1 % of the test
    sequences are wrong ("misclassified sequences was under 1% out of 10000 freshly random
    generated sequences", §4.1; their code's own stopping test is 0 wrong).
    """

    name: ClassVar[str] = "temporal_order_pascanu"
    loss: ClassVar[str] = "softmax"

    length: int = 100

    def __post_init__(self) -> None:
        _check_int("length", self.length, 10)  # both position ranges must be non-empty

    @property
    def input_size(self) -> int:
        return len(PASCANU_TEMPORAL_ORDER_SYMBOLS)

    @property
    def output_size(self) -> int:
        return 4

    def _sample(self, rng: np.random.Generator, size: int) -> Batch:
        steps, cols = self.length, np.arange(size)
        codes = rng.integers(2, 6, (steps, size))  # distractors c-f
        tenth = steps // 10
        values = rng.integers(0, 2, (2, size))  # 0 = A, 1 = B
        codes[tenth + rng.integers(0, tenth, size), cols] = values[0]
        codes[5 * tenth + rng.integers(0, tenth, size), cols] = values[1]
        lengths = np.full(size, steps)
        last = _last_step(lengths, steps)
        return Batch(
            inputs=_one_hot(codes, self.input_size),
            targets=np.where(last, values[0] + 2 * values[1], 0).astype(np.int32),
            mask=last.astype(np.float32),
            lengths=lengths.astype(np.int32),
            resets=None,
        )

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """`accuracy`, `wrong` (argmax), `sequences`."""
        mask = batch.mask > 0
        wrong = int(np.sum(~_argmax_correct(outputs, batch) & mask))
        sequences = int(mask.sum())
        return {
            "accuracy": 1.0 - wrong / sequences,
            "wrong": float(wrong),
            "sequences": float(sequences),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        """Under 1 % of the test sequences wrong (Pascanu et al. 2013, §4.1)."""
        return _under_one_percent(metrics["wrong"], metrics["sequences"])


# --- embedded Reber grammar (1997 exp. 1; Gers et al. 2000) ----------------------------------
