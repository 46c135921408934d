"""The classic long-time-lag tasks of SPEC §5 as deterministic NumPy batch generators.

Every task is a small frozen dataclass (its fields are its options) implementing `Task`:
`batch(seed, step, batch_size)` and `test_set(seed, size)` return a time-major `Batch`;
`metrics(outputs, batch)` scores the raw readout values (pre-activation logits for the
"softmax" and "sigmoid" losses) with the paper's measure; `solved(metrics)` applies the paper's
success criterion to test-set metrics. `make_task(name, **options)` builds one by name.

| name              | class                    | loss    | source                           |
|-------------------|--------------------------|---------|----------------------------------|
| `adding`          | `AddingProblem`          | mse     | H&S 1997 exp. 4; Pascanu 2013    |
| `multiplication`  | `MultiplicationProblem`  | mse     | H&S 1997 exp. 5                  |
| `temporal_order`  | `TemporalOrder`          | softmax | H&S 1997 exp. 6a / 6b            |
| `embedded_reber`  | `EmbeddedReber`          | sigmoid | H&S 1997 exp. 1                  |
| `continual_reber` | `ContinualEmbeddedReber` | sigmoid | Gers, Schmidhuber & Cummins 2000 |
| `copy`            | `Copy`                   | softmax | Arjovsky et al. 2016 layout      |
| `char_lm`         | `CharLM`                 | softmax | any UTF-8 text file              |

Randomness: a batch is a pure function of `(seed, step, batch_size)` and a test set of
`(seed, size)`: each draws from its own `np.random.default_rng([seed, purpose, *index])`, with a
distinct `purpose` word per use (training batches, test sets, fixed training sets, streams), so
no two uses ever share a stream. No global RNG state is touched.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple, Protocol

import numpy as np

__all__ = [
    "REBER_SYMBOLS",
    "TASKS",
    "TEMPORAL_ORDER_SYMBOLS",
    "AddingProblem",
    "Batch",
    "CharLM",
    "ContinualEmbeddedReber",
    "Copy",
    "EmbeddedReber",
    "MultiplicationProblem",
    "Task",
    "TemporalOrder",
    "make_task",
    "reber_valid",
]


class Batch(NamedTuple):
    """One batch, time-major. Steps past a sequence's length are zeros in every array."""

    inputs: np.ndarray  # [T, B, I] float32
    targets: np.ndarray  # [T, B, O] float32 ("mse", "sigmoid") or [T, B] int32 ("softmax")
    mask: np.ndarray  # [T, B] float32: 1 where the loss and the metrics apply
    lengths: np.ndarray  # [B] int32 valid lengths
    resets: np.ndarray | None  # [T, B] bool: zero the carry before this step; or None


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


def _sets_correct(outputs: np.ndarray, batch: Batch) -> np.ndarray:
    """[T, B] bool: the set {logit > 0} (sigmoid > 0.5) equals the multi-hot target set."""
    return np.all((np.asarray(outputs) > 0) == (batch.targets > 0.5), axis=-1)


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
        """`correct_fraction`, `wrong` (|error| >= 0.04), `mse`, `sequences`."""
        return _sequence_regression_metrics(outputs, batch, self.tolerance)

    def solved(self, metrics: dict[str, float]) -> bool:
        """1997 test criterion: at most 1 wrong per 2,560 test sequences."""
        return _few_wrong(metrics["wrong"], metrics["sequences"])


@dataclass(frozen=True)
class AddingProblem(_MarkedPairs):
    """Adding problem (Hochreiter & Schmidhuber 1997, exp. 4; SPEC §5).

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

    def _layout(self, rng: np.random.Generator, size: int) -> _Layout:
        if self.variant == "1997":
            return _marked_pairs_1997(rng, size, self.length, low=-1.0, neutral=0.0)
        return _marked_pairs_pascanu(rng, size, self.length)

    def _target(self, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        return 0.5 + (x1 + x2) / 4 if self.variant == "1997" else (x1 + x2) / 2


@dataclass(frozen=True)
class MultiplicationProblem(_MarkedPairs):
    """Multiplication problem (Hochreiter & Schmidhuber 1997, exp. 5; SPEC §5).

    The 1997 adding layout (see `AddingProblem`) with values ~ U[0, 1] and target `X1 * X2`;
    when the first pair is marked its value is set to 1.0 (the neutral element, as the paper
    does). The paper counts a test sequence wrong when its absolute error is >= 0.04, as in
    the adding problem, on 2,560 test sequences; T = 100. SPEC §5 gives no published number;
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

    The paper counts a sequence correct iff every output unit's final absolute error is below
    0.3; for softmax outputs that is target probability > 0.7 (`wrong_1997`), which `solved`
    applies with the 1997 test criterion (at most 1 wrong per 2,560). `wrong` counts argmax
    errors. Published (6a): 1 of 2,560 test sequences wrong after 31,390 training sequences.
    """

    name: ClassVar[str] = "temporal_order"
    loss: ClassVar[str] = "softmax"

    symbols: int = 2
    min_length: int = 100
    max_length: int = 110
    positions: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
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
        return Batch(
            inputs=_one_hot(codes, self.input_size),
            targets=np.where(last, classes, 0).astype(np.int32),
            mask=last.astype(np.float32),
            lengths=lengths.astype(np.int32),
            resets=None,
        )

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """`accuracy`, `wrong` (argmax), `wrong_1997` (target probability <= 0.7), `sequences`."""
        mask = batch.mask > 0
        targets = batch.targets[mask]
        log_p = _log_softmax(outputs)[mask]
        p_target = np.exp(log_p[np.arange(targets.size), targets])
        wrong = int(np.sum(np.argmax(log_p, axis=-1) != targets))
        return {
            "accuracy": 1.0 - wrong / targets.size,
            "wrong": float(wrong),
            "wrong_1997": float(np.sum(p_target <= 0.7)),
            "sequences": float(targets.size),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        """At most 1 wrong (1997 criterion: every output error < 0.3) per 2,560 sequences."""
        return _few_wrong(metrics["wrong_1997"], metrics["sequences"])


# --- embedded Reber grammar (1997 exp. 1; Gers et al. 2000) ----------------------------------

REBER_SYMBOLS = "BTPSXVE"  # one-hot order of inputs and outputs
_BIT = {symbol: 1 << i for i, symbol in enumerate(REBER_SYMBOLS)}
_REBER_CODE = np.full(128, -1, dtype=np.int64)
_REBER_CODE[[ord(s) for s in REBER_SYMBOLS]] = np.arange(len(REBER_SYMBOLS))

# The Reber (1967) grammar of H&S 1997 exp. 1: node -> ((symbol, next node), ...);
# None is the end. Every branch is taken with probability 1/2.
_REBER_GRAPH: tuple[tuple[tuple[str, int | None], ...], ...] = (
    (("B", 1),),
    (("T", 2), ("P", 3)),
    (("S", 2), ("X", 4)),
    (("T", 3), ("V", 5)),
    (("X", 3), ("S", 6)),
    (("P", 4), ("V", 6)),
    (("E", None),),
)
# Multi-hot (bit set) of the symbols that can follow on arriving at each node.
_REBER_NEXT = tuple(sum(_BIT[symbol] for symbol, _ in edges) for edges in _REBER_GRAPH)


class _Coins:
    """Fair coin flips from `rng`, drawn 256 at a time."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng, self._flips = rng, iter(())

    def __call__(self) -> int:
        flip = next(self._flips, None)
        if flip is None:
            self._flips = iter(self._rng.integers(0, 2, 256).tolist())
            flip = next(self._flips)
        return flip


def _embedded_reber(coin: _Coins, after_end: int) -> tuple[str, bytes]:
    """One embedded Reber string and, per symbol, the bit set of the possible next symbols.

    The string is B, T or P, a Reber string, the same T or P, E; `after_end` is the set after
    the final E (0: none, the string ends; {B} in a continual stream).
    """
    outer = "TP"[coin()]
    inner, inner_next, node = [], [], 0
    while node is not None:
        edges = _REBER_GRAPH[node]
        symbol, node = edges[coin()] if len(edges) > 1 else edges[0]
        inner.append(symbol)
        inner_next.append(_BIT[outer] if node is None else _REBER_NEXT[node])
    text = "B" + outer + "".join(inner) + outer + "E"
    nexts = [_BIT["T"] | _BIT["P"], _BIT["B"], *inner_next, _BIT["E"], after_end]
    return text, bytes(nexts)


def _reber_codes(text: str) -> np.ndarray:
    return _REBER_CODE[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]


def _multi_hot(nexts: np.ndarray) -> np.ndarray:
    """[..., 7] float32 from bit sets."""
    return ((nexts[..., None] >> np.arange(len(REBER_SYMBOLS))) & 1).astype(np.float32)


def _reber_batch(strings: list[tuple[str, bytes]]) -> Batch:
    """Pads strings to the longest; the loss applies at every step but each string's last."""
    lengths = np.array([len(text) for text, _ in strings])
    steps = int(lengths.max())
    codes = np.full((steps, len(strings)), -1)
    nexts = np.zeros((steps, len(strings)), dtype=np.uint8)
    for b, (text, following) in enumerate(strings):
        codes[: len(text), b] = _reber_codes(text)
        nexts[: len(text), b] = np.frombuffer(following, dtype=np.uint8)
    return Batch(
        inputs=_one_hot(codes, len(REBER_SYMBOLS)),
        targets=_multi_hot(nexts),
        mask=_valid(lengths - 1, steps).astype(np.float32),
        lengths=lengths.astype(np.int32),
        resets=None,
    )


@functools.lru_cache(maxsize=16)
def _reber_training_set(seed: int, size: int) -> tuple[tuple[str, bytes], ...]:
    coin = _Coins(_rng(seed, _TRAIN_SET))
    return tuple(_embedded_reber(coin, after_end=0) for _ in range(size))


class _ReberIO:
    loss: ClassVar[str] = "sigmoid"

    @property
    def input_size(self) -> int:
        return len(REBER_SYMBOLS)

    @property
    def output_size(self) -> int:
        return len(REBER_SYMBOLS)


@dataclass(frozen=True)
class EmbeddedReber(_ReberIO):
    """Embedded Reber grammar (Hochreiter & Schmidhuber 1997, exp. 1; SPEC §5).

    Strings B, T|P, a Reber string, the same T|P, E; inputs and outputs one-hot / multi-hot
    over `B T P S X V E`. At every step but the last (the final E) the target is the set of
    all symbols that can come next (loss "sigmoid"); strings are padded to the batch's
    longest. Reber graph (node: symbol -> node): 0: B->1; 1: T->2, P->3; 2: S->2, X->4;
    3: T->3, V->5; 4: X->3, S->6; 5: P->4, V->6; 6: E -> end; each branch with probability
    1/2. A string is correct iff at every masked step {logit > 0} (sigmoid > 0.5) is exactly
    the set of possible next symbols. The paper trains on 256 strings and tests on 256:
    `train_size=256` draws batches (with replacement) from a fixed training set of that many
    strings, `train_size=None` draws fresh strings; `test_set(seed, 256)` is the test set.
    Success: every test string correct. Published: 97-100 % of runs succeed within
    8,440-39,740 training sequences.
    """

    name: ClassVar[str] = "embedded_reber"
    stateful: ClassVar[bool] = False

    train_size: int | None = 256

    def __post_init__(self) -> None:
        if self.train_size is not None:
            _check_int("train_size", self.train_size, 1)

    def batch(self, seed: int, step: int, batch_size: int) -> Batch:
        rng = _train_rng(seed, step)
        batch_size = _check_int("batch_size", batch_size, 1)
        if self.train_size is None:
            coin = _Coins(rng)
            return _reber_batch([_embedded_reber(coin, after_end=0) for _ in range(batch_size)])
        pool = _reber_training_set(int(seed), self.train_size)
        return _reber_batch([pool[i] for i in rng.integers(0, self.train_size, batch_size)])

    def test_set(self, seed: int, size: int) -> Batch:
        coin = _Coins(_rng(seed, _TEST))
        size = _check_int("size", size, 1)
        return _reber_batch([_embedded_reber(coin, after_end=0) for _ in range(size)])

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """`strings_correct` and `symbols_correct` fractions."""
        mask = batch.mask > 0
        correct = _sets_correct(outputs, batch)
        return {
            "strings_correct": float(np.mean(_sequences_correct(correct, mask))),
            "symbols_correct": float(np.mean(correct[mask])),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        return metrics["strings_correct"] == 1.0


class _ReberStream:
    """One endless stream of embedded Reber strings, generated on demand from one RNG.

    Keeps the symbols from the start of the last window requested, so consecutive windows cost
    only their own symbols; a window that starts earlier regenerates the stream from scratch.
    """

    def __init__(self, seed: int, purpose: int, *index: int) -> None:
        self._key = (seed, purpose, *index)
        self._restart()

    def _restart(self) -> None:
        self._coin = _Coins(_rng(*self._key))
        self._offset, self._text, self._nexts, self._starts = 0, "", b"", b""

    def window(self, start: int, stop: int) -> tuple[str, bytes, bytes]:
        """Symbols [start, stop): text, next-symbol bit sets, string-start flags."""
        if start < self._offset:
            self._restart()
        texts, nexts, starts = [self._text], [self._nexts], [self._starts]
        end = self._offset + len(self._text)
        while end < stop:
            text, following = _embedded_reber(self._coin, after_end=_BIT["B"])
            texts.append(text)
            nexts.append(following)
            starts.append(b"\x01" + bytes(len(text) - 1))
            end += len(text)
        i, j = start - self._offset, stop - self._offset
        self._text = "".join(texts)[i:]
        self._nexts, self._starts = b"".join(nexts)[i:], b"".join(starts)[i:]
        self._offset = start
        return self._text[: j - i], self._nexts[: j - i], self._starts[: j - i]


_TRAIN_STREAMS: dict[tuple[int, ...], _ReberStream] = {}


def _train_stream(seed: int, index: int, segment: int = 0) -> _ReberStream:
    """The cached training stream `index` of `seed`, restarted `segment` times (the cache is
    only a speed-up)."""
    if len(_TRAIN_STREAMS) > 4096:
        _TRAIN_STREAMS.clear()
    key = (index,) if segment == 0 else (index, segment)
    if (seed, *key) not in _TRAIN_STREAMS:
        _TRAIN_STREAMS[seed, *key] = _ReberStream(seed, _STREAM, *key)
    return _TRAIN_STREAMS[seed, *key]


def _longest_run(flags: np.ndarray) -> int:
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return int(np.max(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1), initial=0))


@dataclass(frozen=True)
class ContinualEmbeddedReber(_ReberIO):
    """Continual embedded Reber grammar (Gers, Schmidhuber & Cummins 2000; SPEC §5).

    Each of the B streams is an endless concatenation of embedded Reber strings (see
    `EmbeddedReber`) with no reset between them; the target at every step is the set of
    possible next symbols, and after a string's final E that is {B}. `stateful`:
    `batch(seed, step, B)` is chunk `step`, symbols [step * chunk_length, (step + 1) *
    chunk_length), of streams 0..B-1 of `seed` (chunks may split strings), so the trainer
    carries the state across batches. `external_reset=True` sets `resets` at the first
    symbol (B) of every string: the carry is zeroed at each string boundary (Gers et al.'s
    "external reset" baseline). `restart_every = n > 0` starts every training stream afresh
    every n chunks, its carry zeroed (`resets` at the new stream's first symbol): like Gers et
    al., who began a new stream from a reset net after each error, it lets the net see the
    zero state it starts each test stream from. Without either, `resets` is None.
    `test_set(seed, size)` is `size`
    separate streams of `test_symbols` symbols each. Success: every test stream predicted
    without an error (Gers et al.: 10 streams of 100,000 symbols). Published (100 nets each):
    LSTM without forget gate 0 % solved; with forget gates 18 % (62 % with learning-rate
    decay); without forget gate but with the external reset 74 %.
    """

    name: ClassVar[str] = "continual_reber"
    stateful: ClassVar[bool] = True

    chunk_length: int = 100
    external_reset: bool = False
    test_symbols: int = 100_000
    restart_every: int = 0

    def __post_init__(self) -> None:
        _check_int("chunk_length", self.chunk_length, 1)
        _check_int("restart_every", self.restart_every, 0)
        _check_int("test_symbols", self.test_symbols, 1)
        if not isinstance(self.external_reset, bool | np.bool_):
            raise ValueError(f"external_reset must be a bool, got {self.external_reset!r}")

    def batch(self, seed: int, step: int, batch_size: int) -> Batch:
        seed = _check_int("seed", seed, 0)
        step = _check_int("step", step, 0)
        streams = range(_check_int("batch_size", batch_size, 1))
        segment, step = divmod(step, self.restart_every) if self.restart_every else (0, step)
        start, stop = step * self.chunk_length, (step + 1) * self.chunk_length
        batch = self._chunk([_train_stream(seed, b, segment).window(start, stop) for b in streams])
        if self.restart_every and not self.external_reset:
            resets = np.zeros(batch.mask.shape, dtype=bool)
            resets[0] = step == 0  # a fresh stream: zero the carry before its first symbol
            batch = batch._replace(resets=resets)
        return batch

    def test_set(self, seed: int, size: int) -> Batch:
        seed = _check_int("seed", seed, 0)
        streams = range(_check_int("size", size, 1))
        return self._chunk(
            [_ReberStream(seed, _TEST_STREAM, b).window(0, self.test_symbols) for b in streams]
        )

    def _chunk(self, windows: list[tuple[str, bytes, bytes]]) -> Batch:
        codes = np.stack([_reber_codes(text) for text, _, _ in windows], axis=1)
        nexts = np.stack([np.frombuffer(n, dtype=np.uint8) for _, n, _ in windows], axis=1)
        starts = np.stack([np.frombuffer(s, dtype=np.uint8) for _, _, s in windows], axis=1)
        steps, size = codes.shape
        return Batch(
            inputs=_one_hot(codes, len(REBER_SYMBOLS)),
            targets=_multi_hot(nexts),
            mask=np.ones((steps, size), dtype=np.float32),
            lengths=np.full(size, steps, dtype=np.int32),
            resets=starts.astype(bool) if self.external_reset else None,
        )

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """`symbols_correct`, `streams_correct` (fractions), `longest_correct_run` (the worst
        stream's longest run of correctly predicted symbols) and `symbols_before_first_error`
        (mean over streams; the stream length when there is none)."""
        mask = batch.mask > 0
        correct = _sets_correct(outputs, batch) | ~mask
        streams = correct.T
        first_error = [int(np.argmin(s)) if not s.all() else s.size for s in streams]
        return {
            "symbols_correct": float(np.mean(correct[mask])),
            "streams_correct": float(np.mean(correct.all(axis=0))),
            "longest_correct_run": float(min(_longest_run(s) for s in streams)),
            "symbols_before_first_error": float(np.mean(first_error)),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        return metrics["streams_correct"] == 1.0


# Independent of the generator's table: the Reber language written as a regular expression,
# derived from the graph (from node 4: (X T* V P)* (S | X T* V V); from node 3: T* V (V | P ...)).
_FROM_4 = r"(?:XT*VP)*(?:S|XT*VV)"
_REBER_RE = rf"B(?:TS*X{_FROM_4}|PT*V(?:V|P{_FROM_4}))E"
_REBER = re.compile(_REBER_RE)
_EMBEDDED_REBER = re.compile(rf"B(?:T{_REBER_RE}T|P{_REBER_RE}P)E")


def reber_valid(string: str, embedded: bool) -> bool:
    """Whether `string` is a (embedded) Reber string; a regular expression, not the table."""
    return (_EMBEDDED_REBER if embedded else _REBER).fullmatch(string) is not None


# --- copy (noiseless memorisation) -----------------------------------------------------------


@dataclass(frozen=True)
class Copy(_Sampled):
    """Copy / noiseless memorisation (Pascanu et al. 2013; layout of Arjovsky et al. 2016).

    Inputs one-hot over num_symbols + 2 (symbols 0..n-1, blank n, go n+1); with
    L = copy_length and D = delay, a sequence has 2L + D steps:
      steps [0, L)          the L random symbols to remember (uniform over num_symbols);
      steps [L, L + D)      blanks, except the go delimiter at step L + D - 1;
      steps [L + D, 2L + D) blanks; the target is the L symbols, in order.
    Softmax over num_symbols; the loss (mask) applies only on the last L steps (Arjovsky et
    al. put a blank-class target, and the loss, on every step; Pascanu et al. show the
    delimiter at the first output step). Success: every test sequence copied exactly.
    """

    name: ClassVar[str] = "copy"
    loss: ClassVar[str] = "softmax"

    num_symbols: int = 8
    copy_length: int = 10
    delay: int = 50

    def __post_init__(self) -> None:
        _check_int("num_symbols", self.num_symbols, 2)
        _check_int("copy_length", self.copy_length, 1)
        _check_int("delay", self.delay, 1)

    @property
    def input_size(self) -> int:
        return self.num_symbols + 2

    @property
    def output_size(self) -> int:
        return self.num_symbols

    def _sample(self, rng: np.random.Generator, size: int) -> Batch:
        n, recall = self.copy_length, self.copy_length + self.delay
        steps = recall + n
        data = rng.integers(0, self.num_symbols, (n, size))
        codes = np.full((steps, size), self.num_symbols)  # blank
        codes[:n] = data
        codes[recall - 1] = self.num_symbols + 1  # go
        targets = np.zeros((steps, size), dtype=np.int32)
        targets[recall:] = data
        mask = np.zeros((steps, size), dtype=np.float32)
        mask[recall:] = 1.0
        return Batch(
            inputs=_one_hot(codes, self.input_size),
            targets=targets,
            mask=mask,
            lengths=np.full(size, steps, dtype=np.int32),
            resets=None,
        )

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """`symbol_accuracy` and `sequences_correct` fractions over the output window."""
        mask = batch.mask > 0
        correct = _argmax_correct(outputs, batch)
        return {
            "symbol_accuracy": float(np.mean(correct[mask])),
            "sequences_correct": float(np.mean(_sequences_correct(correct, mask))),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        return metrics["sequences_correct"] == 1.0


# --- character-level language model ----------------------------------------------------------


class _Corpus(NamedTuple):
    vocabulary: str
    train: np.ndarray  # int32 character ids
    test: np.ndarray


@functools.lru_cache(maxsize=4)
def _load_corpus(path: str, modified: int, test_fraction: float) -> _Corpus:
    text = Path(path).read_text(encoding="utf-8")
    points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    vocabulary, ids = np.unique(points, return_inverse=True)
    n_test = round(len(ids) * test_fraction)
    ids = ids.astype(np.int32)
    return _Corpus(
        "".join(map(chr, vocabulary)), ids[: len(ids) - n_test], ids[len(ids) - n_test :]
    )


@dataclass(frozen=True)
class CharLM:
    """Character-level language model on any UTF-8 text file.

    The vocabulary is the sorted set of the file's characters (input and output size). The
    first 1 - test_fraction of the text trains, the rest tests. `batch` samples B random
    windows of length + 1 characters from the training part (inputs one-hot of window[:-1],
    softmax targets window[1:]); `test_set(seed, size)` is up to `size` consecutive,
    non-overlapping windows of the test part (independent of seed). Metric: `bits_per_char`,
    the mean cross-entropy over masked steps / ln 2 (and argmax `accuracy`). There is no
    published criterion: `solved` is True only when `target_bpc` is set and reached.
    """

    name: ClassVar[str] = "char_lm"
    loss: ClassVar[str] = "softmax"
    stateful: ClassVar[bool] = False

    path: str
    length: int = 100
    test_fraction: float = 0.1
    target_bpc: float | None = None

    def __post_init__(self) -> None:
        _check_int("length", self.length, 1)
        fraction = self.test_fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float)
            or not 0 < fraction < 1
        ):
            raise ValueError(f"test_fraction must be a number in (0, 1), got {fraction!r}")
        if self.target_bpc is not None and not self.target_bpc > 0:
            raise ValueError(f"target_bpc must be > 0 or None, got {self.target_bpc!r}")
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"char_lm: no such text file: {self.path!r}")
        corpus = self._corpus
        if min(len(corpus.train), len(corpus.test)) < self.length + 1:
            raise ValueError(
                f"char_lm: {self.path!r} has {len(corpus.train) + len(corpus.test)} characters, "
                f"too short for length={self.length} with test_fraction={fraction}: the "
                f"training part ({len(corpus.train)}) and the test part ({len(corpus.test)}) "
                f"each need at least length + 1 = {self.length + 1}"
            )

    @property
    def _corpus(self) -> _Corpus:
        path = os.path.abspath(self.path)
        try:
            return _load_corpus(path, os.stat(path).st_mtime_ns, float(self.test_fraction))
        except UnicodeDecodeError as error:
            raise ValueError(f"char_lm: {self.path!r} is not UTF-8 text: {error}") from None

    @property
    def vocabulary(self) -> str:
        return self._corpus.vocabulary

    @property
    def input_size(self) -> int:
        return len(self.vocabulary)

    @property
    def output_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> np.ndarray:
        """Character ids of `text` (every character must be in the vocabulary)."""
        index = {char: i for i, char in enumerate(self.vocabulary)}
        return np.array([index[char] for char in text], dtype=np.int32)

    def decode(self, ids: np.ndarray) -> str:
        return "".join(self.vocabulary[i] for i in np.asarray(ids).ravel())

    def _windows(self, ids: np.ndarray, starts: np.ndarray) -> Batch:
        windows = ids[starts[None, :] + np.arange(self.length + 1)[:, None]]
        return Batch(
            inputs=_one_hot(windows[:-1], self.input_size),
            targets=windows[1:].astype(np.int32),
            mask=np.ones((self.length, starts.size), dtype=np.float32),
            lengths=np.full(starts.size, self.length, dtype=np.int32),
            resets=None,
        )

    def batch(self, seed: int, step: int, batch_size: int) -> Batch:
        rng = _train_rng(seed, step)
        train = self._corpus.train
        starts = rng.integers(0, len(train) - self.length, _check_int("batch_size", batch_size, 1))
        return self._windows(train, starts)

    def test_set(self, seed: int, size: int) -> Batch:
        _check_int("seed", seed, 0)  # the test windows do not depend on it
        test = self._corpus.test
        count = min(_check_int("size", size, 1), (len(test) - 1) // self.length)
        return self._windows(test, np.arange(count) * self.length)

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """`bits_per_char` (mean cross-entropy / ln 2) and argmax `accuracy`."""
        mask = batch.mask > 0
        log_p = _log_softmax(outputs)
        nll = -np.take_along_axis(log_p, batch.targets[..., None].astype(np.int64), -1)[..., 0]
        return {
            "bits_per_char": float(np.mean(nll[mask]) / math.log(2)),
            "accuracy": float(np.mean(_argmax_correct(outputs, batch)[mask])),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        return self.target_bpc is not None and metrics["bits_per_char"] <= self.target_bpc


# --- registry --------------------------------------------------------------------------------

TASKS: dict[str, type] = {
    cls.name: cls
    for cls in (
        AddingProblem,
        MultiplicationProblem,
        TemporalOrder,
        EmbeddedReber,
        ContinualEmbeddedReber,
        Copy,
        CharLM,
    )
}


def make_task(name: str, **options: object) -> Task:
    """The task `name` with `options` (its dataclass fields), validated."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    fields = [f for f in dataclasses.fields(cls) if f.init]
    valid = [f.name for f in fields]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"task {name!r} got unknown option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid)}"
        )
    missing = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in options
    ]
    if missing:
        raise TypeError(f"task {name!r} requires option(s) {', '.join(missing)}")
    return cls(**options)
