"""Polyphonic music prediction on the Bach chorales that `music21` ships (the optional extra
`music`: `pip install "lstm-jax[music]"`), the task of Greff et al. (2015) on JSB Chorales.

Each chorale becomes a piano roll: one frame per quarter note (as JSB Chorales,
Boulanger-Lewandowski et al. 2012), 88 binary units for the piano's MIDI pitches 21-108, a unit
on while any part sounds that pitch. The net reads frame t and predicts frame t + 1 (sigmoid
outputs, binary cross-entropy); the metric is the published one, the negative log-likelihood
per frame in nats (`nll`: the cross-entropy summed over the 88 units, averaged over frames).

How it differs from the published JSB split: music21's corpus has 413 Bach files (`bwv*`),
among them some non-chorale movements and alternative harmonisations; JSB has 382 chorales
(229 train, 76 valid, 77 test). Here the files sorted by name are split by index modulo 5
(0-2 train, 3 valid, 4 test: 249 / 82 / 82 of the 413). Parsing all of them takes about one
minute once; the rolls are cached as `.npz` under `$LSTM_JAX_CACHE` (default
`~/.cache/lstm_jax`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from lstm_jax.training.tasks.base import Batch, _check_int, _train_rng

LOWEST, KEYS = 21, 88  # MIDI A0 .. C8, the JSB piano rolls' range
SPLITS = ("train", "valid", "test")


def piano_roll(events: list[tuple[float, float, int]], frame: float = 1.0) -> np.ndarray:
    """`[frames, 88]` bool from `(onset, duration, midi pitch)` events (in quarter notes): a
    pitch is on in every frame whose start lies in `[onset, onset + duration)`."""
    end = max((onset + duration for onset, duration, _ in events), default=0.0)
    frames = int(np.ceil(end / frame - 1e-9))
    roll = np.zeros((frames, KEYS), bool)
    starts = np.arange(frames) * frame
    for onset, duration, pitch in events:
        if LOWEST <= pitch < LOWEST + KEYS:
            roll[(starts >= onset - 1e-9) & (starts < onset + duration - 1e-9), pitch - LOWEST] = (
                True
            )
    return roll


def _cache_dir() -> Path:
    return Path(os.environ.get("LSTM_JAX_CACHE", Path.home() / ".cache" / "lstm_jax"))


def _cache_file(max_files: int | None) -> Path:
    return _cache_dir() / f"bach_chorales_v1_{max_files or 'all'}.npz"


MISSING_MUSIC21 = (
    "bach_chorales needs music21 (its corpus holds the chorales): pip install 'lstm-jax[music]'"
)


def check_available(max_files: int | None) -> None:
    """A ValueError saying how to install music21 when neither it nor the parsed rolls'
    cache is there: raised when the task is made, before a run directory is touched.

    >>> try:  # silent where music21 or the parsed rolls are there
    ...     check_available(5)
    ... except ValueError as err:
    ...     assert str(err).startswith("bach_chorales needs music21"), err
    """
    if not _cache_file(max_files).is_file() and importlib.util.find_spec("music21") is None:
        raise ValueError(MISSING_MUSIC21)


@functools.lru_cache(maxsize=4)
def load_rolls(max_files: int | None = None) -> dict[str, tuple[np.ndarray, ...]]:
    """`{split: rolls}` of the first `max_files` Bach files of music21's corpus (all: None)."""
    cache = _cache_file(max_files)
    if cache.is_file():
        with np.load(cache) as data:
            rolls = [data[k] for k in sorted(data.files, key=lambda k: int(k[1:]))]
    else:
        try:
            from music21 import corpus
        except ImportError:
            raise ValueError(MISSING_MUSIC21) from None
        paths = sorted(p for p in corpus.getComposer("bach") if Path(p).name.startswith("bwv"))
        rolls = []
        for path in paths[:max_files]:
            score = corpus.parse(path)
            events = [
                (float(n.offset), float(n.quarterLength), p.midi)
                for part in score.parts
                for n in part.flatten().notes
                for p in n.pitches
            ]
            roll = piano_roll(events)
            if len(roll) >= 2:
                rolls.append(roll)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **{f"r{i}": r for i, r in enumerate(rolls)})
    return {
        split: tuple(r for i, r in enumerate(rolls) if i % 5 in which)
        for split, which in zip(SPLITS, ((0, 1, 2), (3,), (4,)), strict=True)
    }


def _batch(rolls: list[np.ndarray], max_length: int | None) -> Batch:
    """Frames t -> t + 1 of each roll (cut to `max_length` + 1 frames), padded, time-major."""
    rolls = [r[: None if max_length is None else max_length + 1] for r in rolls]
    lengths = np.array([len(r) - 1 for r in rolls], np.int32)
    steps = int(lengths.max())
    inputs = np.zeros((steps, len(rolls), KEYS), np.float32)
    targets = np.zeros_like(inputs)
    for b, roll in enumerate(rolls):
        inputs[: len(roll) - 1, b] = roll[:-1]
        targets[: len(roll) - 1, b] = roll[1:]
    mask = (np.arange(steps)[:, None] < lengths[None, :]).astype(np.float32)
    return Batch(inputs, targets, mask, lengths, None)


@dataclass(frozen=True)
class BachChorales:
    """Next-frame prediction on music21's Bach chorales (see the module docstring).

    `batch` draws `B` training chorales at random (with replacement) for each step; the test
    set is the first `size` chorales of `split` ("test", or "valid" for a hyperparameter
    search, as Greff et al. searched on the validation set). `max_files` (tiny configs) parses
    only that many files; `max_length` cuts chorales to that many predicted frames. Metric:
    `nll` per frame (nats); no published criterion, so `solved` holds only when `target_nll`
    is set and reached.
    """

    name: ClassVar[str] = "bach_chorales"
    loss: ClassVar[str] = "sigmoid"
    stateful: ClassVar[bool] = False

    split: str = "test"
    max_files: int | None = None
    max_length: int | None = None
    target_nll: float | None = None

    def __post_init__(self) -> None:
        if self.split not in ("valid", "test"):
            raise ValueError(f"split must be 'valid' or 'test', got {self.split!r}")
        if self.max_files is not None:
            _check_int("max_files", self.max_files, 5)  # one file in each split at least
        if self.max_length is not None:
            _check_int("max_length", self.max_length, 1)
        check_available(self.max_files)

    @property
    def input_size(self) -> int:
        return KEYS

    @property
    def output_size(self) -> int:
        return KEYS

    def _rolls(self, split: str) -> tuple[np.ndarray, ...]:
        return load_rolls(self.max_files)[split]

    def batch(self, seed: int, step: int, batch_size: int) -> Batch:
        train = self._rolls("train")
        picks = _train_rng(seed, step).integers(len(train), size=batch_size)
        return _batch([train[i] for i in picks], self.max_length)

    def test_set(self, seed: int, size: int) -> Batch:
        del seed  # a fixed split
        return _batch(list(self._rolls(self.split)[:size]), self.max_length)

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        logits = np.asarray(outputs, np.float64)
        # binary cross-entropy of logits, summed over the 88 units: the frame's NLL (nats)
        per_unit = np.logaddexp(0.0, logits) - batch.targets * logits
        per_frame = per_unit.sum(-1)
        nll = float((per_frame * batch.mask).sum() / batch.mask.sum())
        return {"nll": nll, "frames": float(batch.mask.sum())}

    def solved(self, metrics: dict[str, float]) -> bool:
        return self.target_nll is not None and metrics["nll"] <= self.target_nll
