"""The embedded Reber grammar (Hochreiter & Schmidhuber 1997, exp. 1) and its continual version
(Gers, Schmidhuber & Cummins 2000): next-symbol prediction."""

from __future__ import annotations

import functools
import numbers
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lstm_jax.training.tasks.base import (
    _STREAM,
    _TEST,
    _TEST_STREAM,
    _TRAIN_SET,
    Batch,
    _check_int,
    _one_hot,
    _rng,
    _sequences_correct,
    _sets_correct,
    _train_rng,
    _valid,
)

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

    threshold: ClassVar[float] = 0.0  # a symbol is predicted where its logit is above 0

    def step_correct(self, outputs, targets):
        """`[..]` bool, one step of NumPy or JAX arrays: {output > threshold} is exactly the
        set of possible next symbols (what a stream's first error is judged by)."""
        return ((outputs > self.threshold) == (targets > 0.5)).all(axis=-1)

    @property
    def input_size(self) -> int:
        return len(REBER_SYMBOLS)

    @property
    def output_size(self) -> int:
        return len(REBER_SYMBOLS)


@dataclass(frozen=True)
class EmbeddedReber(_ReberIO):
    """Embedded Reber grammar (Hochreiter & Schmidhuber 1997, exp. 1).

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
    """Continual embedded Reber grammar (Gers, Schmidhuber & Cummins 2000).

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
    `outputs="logits"` (default): one logit per symbol, cross-entropy; `outputs="sigmoid"`:
    Gers et al.'s sigmoid output units (`model.output: sigmoid`) on squared error, a symbol
    predicted where its output is above 0.5. `max_error = e` (sigmoid outputs only) judges a
    step instead by its distance from the target: right when every output is within `e` of its
    0/1 target (`|y_k - t_k| < e`); one secondary reading of Gers et al.'s criterion, "the
    squared error of every output below 0.49", is `e = 0.7`. The criterion decides both where
    a training stream ends (`training.online.reset_on_error`) and the tests.
    `test_set(seed, size)` is `size` separate streams of `test_symbols` symbols each. Success:
    every test stream predicted without an error (Gers et al.: 10 streams of 100,000
    symbols). Published (100 nets each): LSTM without forget gate 0 % solved; with forget
    gates 18 % (62 % with learning-rate decay); without forget gate but with the external
    reset 74 %.
    """

    name: ClassVar[str] = "continual_reber"
    stateful: ClassVar[bool] = True

    chunk_length: int = 100
    external_reset: bool = False
    test_symbols: int = 100_000
    restart_every: int = 0
    outputs: str = "logits"
    max_error: float | None = None  # None: the set {output > 0.5} must equal the target set

    @property
    def loss(self) -> str:
        return "mse" if self.outputs == "sigmoid" else "sigmoid"

    def step_correct(self, outputs, targets):
        """`[...]` bool from `outputs, targets [..., 7]` (NumPy or JAX; outputs after the
        squashing): whether the prediction made after a symbol is right, by `max_error` when
        set, else by the 0.5 threshold (see the class docstring)."""
        if self.max_error is None:
            return super().step_correct(outputs, targets)
        return (abs(outputs - targets) < self.max_error).all(axis=-1)

    @property
    def threshold(self) -> float:
        return 0.5 if self.outputs == "sigmoid" else 0.0

    def __post_init__(self) -> None:
        if self.outputs not in ("logits", "sigmoid"):
            raise ValueError(f"outputs must be 'logits' or 'sigmoid', got {self.outputs!r}")
        _check_int("chunk_length", self.chunk_length, 1)
        _check_int("restart_every", self.restart_every, 0)
        _check_int("test_symbols", self.test_symbols, 1)
        if self.max_error is not None:
            if self.outputs != "sigmoid":
                raise ValueError(
                    f"max_error judges outputs in [0, 1]: it needs outputs='sigmoid', "
                    f"got outputs={self.outputs!r}"
                )
            number = isinstance(self.max_error, numbers.Real)
            if not number or isinstance(self.max_error, bool | np.bool_):
                raise ValueError(f"max_error must be a number in (0, 1), got {self.max_error!r}")
            if not 0 < self.max_error < 1:  # 1: every sigmoid output is right
                raise ValueError(f"max_error must be in (0, 1), got {self.max_error!r}")
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
            starts=starts.astype(bool),
        )

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """`symbols_correct`, `streams_correct` (fractions), `longest_correct_run` (the worst
        stream's longest run of correctly predicted symbols) and `symbols_before_first_error`
        (mean over streams; the stream length when there is none)."""
        mask = batch.mask > 0
        correct = self.step_correct(np.asarray(outputs), batch.targets) | ~mask
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
