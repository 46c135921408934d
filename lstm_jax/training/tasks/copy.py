"""The copy (noiseless memorisation) task in the layout of Arjovsky et al. 2016."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lstm_jax.training.tasks.base import (
    Batch,
    _argmax_correct,
    _check_int,
    _one_hot,
    _Sampled,
    _sequences_correct,
)


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
