"""LSTM options: the static structure of one LSTM, and the named Greff et al. (2015) variants,
each a flag of the one LSTM (`lstm_jax.cells.lstm.step` has the equations)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lstm_jax.cells.activations import activation
from lstm_jax.cells.checks import check_flag, check_number

LSTM_GATE_ORDER: tuple[str, ...] = ("i", "f", "z", "o")
"""Order of the gate blocks along the last axis of `w`, `r` and `b`: input gate, forget gate,
cell input (block input), output gate. Absent gates are skipped, the rest keep this order."""


_FLAGS = (
    "input_gate",
    "forget_gate",
    "output_gate",
    "coupled",
    "peepholes",
    "gate_recurrence",
    "gate_inputs",
)
"""The boolean `LSTMOptions` fields."""


@dataclasses.dataclass(frozen=True)
class LSTMOptions:
    """Static structure of an LSTM; each Greff et al. (2015) variant flips one field.

    Attributes:
      input_gate: False for NIG (i_t = 1).
      forget_gate: False for NFG (f_t = 1) and for the 1997 cell.
      output_gate: False for NOG (o_t = 1).
      coupled: CIFG, f_t = 1 - i_t (needs the input and forget gates).
      peepholes: p_i, p_f, p_o (Gers & Schmidhuber 2000); vanilla has them, NP does not.
      gate_recurrence: FGR, each gate also sees the previous step's gate activations.
      gate_inputs: the 1997 and 2000 nets' fully connected hidden layer: every unit, cell inputs
        and gates, also receives the previous step's gate activations (one per memory block)
        through `r_gate` ("memory cells and gate units receive inputs from memory cells and
        gate units", 1997 §5.4). Exclusive with `gate_recurrence`, which feeds gates only.
      input_activation: `g`: "tanh", "identity" (NIAF) or "sigmoid_pm2" (1997, range ±2).
      output_activation: `k`: "tanh", "identity" (NOAF) or "sigmoid_pm1" (1997, range ±1).
      block_size: cells per memory block (Hochreiter & Schmidhuber 1997; Gers et al. 2000):
        the S cells of a block share one input, forget and output gate, so the gate blocks of
        `w`, `r`, `b` are `H/S` wide and the cell input `z` is `H` wide. 1 (the default) is the
        modern LSTM, one set of gates per cell.
      forget_bias: initial forget-gate bias (1.0: Gers et al. 2000, Jozefowicz et al. 2015); a
        tuple gives one value per memory block (Gers et al. 2000: +0.5, +1, +1.5, +2); None
        draws it like the other biases.
      input_bias, output_bias: initial input- and output-gate biases, a number or one per
        block (1997, adding: input gates -3.0 and -6.0); None (the default) draws them like the
        other biases (0, or U(±init_range)).
      init_range: if set, every weight and bias is drawn from U(-a, a) (the 1997 and 2000
        papers: a = 0.1 and 0.2), and the gate-bias options above then override their blocks;
        None (the default) is LeCun-normal `w`, orthogonal blocks of `r` and zero biases.
      chrono: if set, T_max of chrono initialisation (Tallec & Ollivier 2018), which replaces
        `forget_bias`: b_f ~ log U(1, T_max - 1), b_i = -b_f.
    """

    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    coupled: bool = False
    peepholes: bool = False
    gate_recurrence: bool = False
    gate_inputs: bool = False
    input_activation: str = "tanh"
    output_activation: str = "tanh"
    block_size: int = 1
    forget_bias: float | tuple[float, ...] | None = 1.0
    input_bias: float | tuple[float, ...] | None = None
    output_bias: float | tuple[float, ...] | None = None
    init_range: float | None = None
    chrono: int | None = None

    def __post_init__(self) -> None:
        self._check_values()
        if self.block_size > 1 and (self.peepholes or self.gate_recurrence):
            # The 1997 and 2000 blocks had neither; a peephole from S cells into one shared gate
            # (Gers et al. 2002) is not implemented.
            raise ValueError(
                f"block_size={self.block_size} (memory blocks) needs peepholes=False and "
                f"gate_recurrence=False, got peepholes={self.peepholes}, "
                f"gate_recurrence={self.gate_recurrence}"
            )
        if self.gate_inputs and self.gate_recurrence:
            raise ValueError(
                "gate_inputs=True (gate activations into every unit, 1997) and "
                "gate_recurrence=True (FGR: into the gates only) are exclusive; choose one"
            )
        activation(self.input_activation, "input_activation")
        activation(self.output_activation, "output_activation")
        if self.coupled and not (self.input_gate and self.forget_gate):
            raise ValueError(
                "coupled=True (CIFG, f = 1 - i) needs input_gate=True and forget_gate=True, got "
                f"input_gate={self.input_gate}, forget_gate={self.forget_gate}"
            )
        if self.chrono is not None and not (
            self.input_gate and self.forget_gate and not self.coupled
        ):
            raise ValueError(
                "chrono initialisation sets b_f and b_i = -b_f, so it needs free input and "
                f"forget gates; got input_gate={self.input_gate}, "
                f"forget_gate={self.forget_gate}, coupled={self.coupled}"
            )

    def _check_values(self) -> None:
        """Each field's type and range (the combinations are checked after): flags bools,
        numbers finite, so that a string or NaN never reaches `init`."""
        for name in _FLAGS:
            object.__setattr__(self, name, check_flag(name, getattr(self, name)))
        for name in ("forget_bias", "input_bias", "output_bias"):
            value = getattr(self, name)
            if isinstance(value, list | tuple):  # a list from YAML; options must stay hashable
                if not value:
                    raise ValueError(f"{name} must be a number or one number per block, got ()")
                value = tuple(check_number(f"{name}[{k}]", v) for k, v in enumerate(value))
            elif value is not None:
                value = check_number(name, value)
            object.__setattr__(self, name, value)
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int):
            raise ValueError(f"block_size must be a positive int, got {self.block_size!r}")
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        if self.init_range is not None:
            a = check_number("init_range", self.init_range)
            if not a > 0:
                raise ValueError(f"init_range must be > 0 (weights ~ U(-a, a)), got {a}")
            object.__setattr__(self, "init_range", a)
        if self.chrono is not None and (
            isinstance(self.chrono, bool)
            or not isinstance(self.chrono, int | np.integer)
            or self.chrono < 3
        ):
            raise ValueError(
                f"chrono (T_max, b_f ~ log U(1, T_max - 1)) must be an int >= 3 or None, got "
                f"{self.chrono!r}"
            )

    @property
    def gates(self) -> tuple[str, ...]:
        """The blocks of the fused matmul, in `LSTM_GATE_ORDER`."""
        present = {
            "i": self.input_gate,
            "f": self.forget_gate and not self.coupled,
            "z": True,
            "o": self.output_gate,
        }
        return tuple(g for g in LSTM_GATE_ORDER if present[g])

    @property
    def sigmoid_gates(self) -> tuple[str, ...]:
        """The gates with their own pre-activation (the FGR sources and targets)."""
        return tuple(g for g in self.gates if g != "z")

    @property
    def carries_gates(self) -> bool:
        """Whether the carry holds the previous step's gate activations (FGR, gate_inputs)."""
        return self.gate_recurrence or self.gate_inputs

    def gate_state_width(self, hidden_size: int) -> int:
        """Width of `LSTMCarry.gates`: the sigmoid gates' activations, per cell for FGR, per
        memory block for `gate_inputs`."""
        per_gate = hidden_size if self.gate_recurrence else hidden_size // self.block_size
        return len(self.sigmoid_gates) * per_gate

    @property
    def peephole_gates(self) -> tuple[str, ...]:
        return self.sigmoid_gates if self.peepholes else ()

    def widths(self, hidden_size: int) -> tuple[int, ...]:
        """Width of each block of `w`, `r`, `b` in `gates` order: `H` for the cell input `z`,
        `H / block_size` for a gate (one per memory block)."""
        if hidden_size % self.block_size:
            raise ValueError(
                f"hidden_size={hidden_size} must be a multiple of block_size={self.block_size} "
                "(H cells in memory blocks of block_size cells)"
            )
        blocks = hidden_size // self.block_size
        return tuple(hidden_size if name == "z" else blocks for name in self.gates)


_VANILLA = dict(peepholes=True)

LSTM_VARIANTS: dict[str, dict[str, Any]] = {
    # The LSTM of PyTorch, flax, Keras and cuDNN: Greff's vanilla without peepholes (= NP).
    "standard": dict(peepholes=False),
    # Greff et al. 2015: vanilla (peepholes, forget gate, tanh) and one change each.
    "vanilla": _VANILLA,
    "NIG": {**_VANILLA, "input_gate": False},
    "NFG": {**_VANILLA, "forget_gate": False},
    "NOG": {**_VANILLA, "output_gate": False},
    "NIAF": {**_VANILLA, "input_activation": "identity"},
    "NOAF": {**_VANILLA, "output_activation": "identity"},
    "NP": dict(peepholes=False),
    "CIFG": {**_VANILLA, "coupled": True},
    "FGR": {**_VANILLA, "gate_recurrence": True},
    # Hochreiter & Schmidhuber 1997: NFG + NP with their scaled squashing functions.
    "1997": dict(
        forget_gate=False,
        peepholes=False,
        input_activation="sigmoid_pm2",
        output_activation="sigmoid_pm1",
    ),
}


def lstm_options(variant: str = "standard", **overrides: Any) -> LSTMOptions:
    """Options of a named variant (see `LSTM_VARIANTS`; any case, as gradient names), with
    keyword overrides applied.

    >>> lstm_options("cifg") == lstm_options("CIFG", coupled=True)
    True
    """
    names = {name.lower(): name for name in LSTM_VARIANTS}
    if not isinstance(variant, str) or variant.lower() not in names:
        raise ValueError(
            f"variant must be one of {list(LSTM_VARIANTS)} (any case), got {variant!r}"
        )
    variant = names[variant.lower()]
    fields = {f.name for f in dataclasses.fields(LSTMOptions)}
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown LSTM option(s) {unknown}; valid options are {sorted(fields)}")
    return LSTMOptions(**{**LSTM_VARIANTS[variant], **overrides})
