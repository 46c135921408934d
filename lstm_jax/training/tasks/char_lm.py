"""A character-level language model on any UTF-8 text file."""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from lstm_jax.training.tasks.base import (
    Batch,
    _argmax_correct,
    _check_int,
    _log_softmax,
    _one_hot,
    _train_rng,
)


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
            raise FileNotFoundError(
                f"char_lm: no such text file: {self.path!r} (relative paths are read from "
                f"{Path.cwd()}); name one with --set task.options.path=FILE"
            )
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
