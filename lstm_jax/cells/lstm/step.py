"""The LSTM cell with every Greff et al. (2015) variant as an option of one implementation.

Equations (`g` cell-input and `k` output squashing, σ the logistic sigmoid)::

    z̄_t = W_z x_t + R_z h_{t-1} + b_z                    z_t = g(z̄_t)
    ī_t = W_i x_t + R_i h_{t-1} + p_i ⊙ c_{t-1} + b_i     i_t = σ(ī_t)
    f̄_t = W_f x_t + R_f h_{t-1} + p_f ⊙ c_{t-1} + b_f     f_t = σ(f̄_t)
    c_t = z_t ⊙ i_t + c_{t-1} ⊙ f_t
    ō_t = W_o x_t + R_o h_{t-1} + p_o ⊙ c_t + b_o         o_t = σ(ō_t)
    h_t = o_t ⊙ k(c_t)

The four pre-activations come from one fused matmul; their blocks follow `LSTM_GATE_ORDER`
(PyTorch's and flax's order), restricted to the gates a variant has (`LSTMOptions.gates`).

The variants (Greff et al. 2015, `options.LSTM_VARIANTS`) are flags of this one step: NIG
(`i_t = 1`), NFG (`f_t = 1`), NOG (`o_t = 1`), NIAF (`g` = identity), NOAF (`k` = identity), NP
(no peepholes), CIFG (`f_t = 1 - i_t`), FGR (each gate also receives the previous step's gate
activations through its own recurrent matrices). The 1997 LSTM is NFG + NP with scaled squashing
functions, `g ∈ [-2, 2]` and `k ∈ [-1, 1]`. The forget-gate bias starts at 1.0 (Gers et al.
2000; Jozefowicz et al. 2015: with bias 0, `f ≈ 0.5` halves the gradient every step); chrono
initialisation (Tallec & Ollivier 2018: `b_f ~ log U(1, T_max - 1)`, `b_i = -b_f`) is an option.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import initializers
from lstm_jax.cells.activations import activation, sigmoid
from lstm_jax.cells.lstm.options import LSTMOptions
from lstm_jax.cells.protocol import zero_state
from lstm_jax.gradients.modes import keep

Array = jax.Array


class LSTMParams(NamedTuple):
    """LSTM parameters; `G = len(options.gates)`, `S = len(options.sigmoid_gates)`.

    Kernels are `in → out`, so the equations' `W_*` is `w[:, block]ᵀ` and `R_*` is `r[:, block]ᵀ`.
    """

    w: Array  # [I, G·H] input weights, blocks in `options.gates` order
    r: Array  # [H, G·H] recurrent weights
    b: Array  # [G·H] biases (forget block initialised to `forget_bias`)
    p_i: Array | None = None  # [H] peephole c_{t-1} → ī  (peepholes with an input gate)
    p_f: Array | None = None  # [H] peephole c_{t-1} → f̄  (peepholes with a free forget gate)
    p_o: Array | None = None  # [H] peephole c_t → ō  (peepholes with an output gate)
    r_gate: Array | None = None  # [S·H, S·H] FGR: previous gate activations → gate pre-activations


class LSTMCarry(NamedTuple):
    """The LSTM state carried between steps."""

    h: Array  # [*batch, H] hidden state / output
    c: Array  # [*batch, H] cell state (the constant error carousel)
    gates: Array | None = None  # [*batch, S·H] previous gate activations, FGR only


class LSTMParts(NamedTuple):
    """Every intermediate of one step; gates a variant lacks hold their constant value."""

    z_pre: Array  # [*batch, H] z̄_t
    i_pre: Array | None  # ī_t (None without an input gate)
    f_pre: Array | None  # f̄_t (None when f is 1 or 1 - i)
    o_pre: Array | None  # ō_t (None without an output gate)
    z: Array  # g(z̄_t)
    i: Array  # σ(ī_t), or 1 (NIG)
    f: Array  # σ(f̄_t), 1 (NFG) or 1 - i_t (CIFG)
    o: Array  # σ(ō_t), or 1 (NOG)
    c: Array  # c_t
    kc: Array  # k(c_t)
    h: Array  # h_t = o_t ⊙ k(c_t)


def init(
    options: LSTMOptions, key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32
) -> LSTMParams:
    """Random `LSTMParams`: LeCun-normal `w`, orthogonal blocks of `r`, gate biases 0 except the
    forget gate (`forget_bias`, or chrono), peepholes and FGR weights U(±1/√H) and U(±1/√(S·H))."""
    gates, n_sig = options.gates, len(options.sigmoid_gates)
    k_w, k_r, k_p, k_g, k_c = jax.random.split(key, 5)
    b = jnp.zeros((len(gates), hidden_size), dtype)
    if options.chrono is not None:
        b_f = initializers.chrono_forget_bias(k_c, hidden_size, options.chrono, dtype)
        b = b.at[gates.index("f")].set(b_f).at[gates.index("i")].set(-b_f)
    elif "f" in gates:
        b = b.at[gates.index("f")].set(options.forget_bias)
    scale = 1.0 / hidden_size**0.5
    peep = dict(
        zip(
            options.peephole_gates,
            initializers.uniform(k_p, (3, hidden_size), scale, dtype),
            strict=False,
        )
    )
    r_gate = None
    if options.gate_recurrence:
        shape = (n_sig * hidden_size, n_sig * hidden_size)
        r_gate = initializers.uniform(k_g, shape, 1.0 / shape[0] ** 0.5, dtype)
    return LSTMParams(
        w=initializers.input_kernel(k_w, input_size, len(gates) * hidden_size, dtype),
        r=initializers.recurrent_kernel(k_r, hidden_size, len(gates), dtype),
        b=b.reshape(-1),
        p_i=peep.get("i"),
        p_f=peep.get("f"),
        p_o=peep.get("o"),
        r_gate=r_gate,
    )


def initial_carry(
    options: LSTMOptions, batch_shape: tuple[int, ...], hidden_size: int, dtype: Any = jnp.float32
) -> LSTMCarry:
    """Zero `h` and `c` of shape `[*batch_shape, H]` (and zero previous gates for FGR)."""
    zeros = zero_state(batch_shape, hidden_size, dtype)
    gates = None
    if options.gate_recurrence:
        gates = zero_state(batch_shape, len(options.sigmoid_gates) * hidden_size, dtype)
    return LSTMCarry(h=zeros, c=zeros, gates=gates)


def parts(
    options: LSTMOptions,
    params: LSTMParams,
    carry: LSTMCarry,
    x: Array | None,
    cut: Callable[[Any], Any] = keep,
    x_proj: Array | None = None,
) -> LSTMParts:
    """One LSTM step with every intermediate returned (the step, analytic code, diagnostics and
    the fused unroll all use this one function). `cut` is applied to each recurrent input of a
    pre-activation. `x_proj = x @ w + b`, when given, replaces `x` (the fused unroll computes it
    for all steps in one matmul)."""
    g = activation(options.input_activation, "input_activation")
    k = activation(options.output_activation, "output_activation")
    h_prev = cut(carry.h)
    if x_proj is None:
        x_proj = x @ params.w + params.b
    pre = x_proj + h_prev @ params.r
    blocks = dict(zip(options.gates, jnp.split(pre, len(options.gates), axis=-1), strict=True))
    if options.gate_recurrence:
        from_gates = cut(carry.gates) @ params.r_gate
        sig = options.sigmoid_gates
        for name, extra in zip(sig, jnp.split(from_gates, len(sig), axis=-1), strict=True):
            blocks[name] = blocks[name] + extra
    c_peep = cut(carry.c)  # the peephole inputs are cut; the CEC path c_prev * f below is not
    i_pre = f_pre = o_pre = None
    i = f = o = 1.0
    if options.input_gate:
        i_pre = blocks["i"] + params.p_i * c_peep if options.peepholes else blocks["i"]
        i = sigmoid.fn(i_pre)
    if "f" in blocks:
        f_pre = blocks["f"] + params.p_f * c_peep if options.peepholes else blocks["f"]
        f = sigmoid.fn(f_pre)
    elif options.coupled:
        f = 1 - i
    z_pre = blocks["z"]
    z = g.fn(z_pre)
    c = z * i + carry.c * f
    if options.output_gate:
        o_pre = blocks["o"] + params.p_o * cut(c) if options.peepholes else blocks["o"]
        o = sigmoid.fn(o_pre)
    kc = k.fn(c)
    h = o * kc
    return LSTMParts(z_pre, i_pre, f_pre, o_pre, z, _full(i, c), _full(f, c), _full(o, c), c, kc, h)


def activations(options: LSTMOptions, p: LSTMParts) -> Array:
    """`[*batch, G·H]`: the step's gate activations in `options.gates` order, the layout of its
    pre-activations (what the fused unroll stores in place of them)."""
    return jnp.concatenate([getattr(p, name) for name in options.gates], axis=-1)


def parts_from_activations(options: LSTMOptions, acts: Array, c: Array) -> LSTMParts:
    """The `LSTMParts` of a step from its stored gate activations `acts [*batch, G·H]`
    (`activations`) and cell state `c [*batch, H]`: gates a variant lacks take their constant
    value as in `parts`, `k(c_t)` and `h_t` are recomputed; pre-activations are None (the
    backward pass needs only activations: σ' = σ(1 - σ))."""
    k = activation(options.output_activation, "output_activation")
    blocks = dict(zip(options.gates, jnp.split(acts, len(options.gates), axis=-1), strict=True))
    i = blocks.get("i", 1.0)
    f = blocks.get("f", 1 - i if options.coupled else 1.0)
    o = blocks.get("o", 1.0)
    kc = k.fn(c)
    return LSTMParts(
        None, None, None, None, blocks["z"], _full(i, c), _full(f, c), _full(o, c), c, kc, o * kc
    )


def _full(value: Array | float, like: Array) -> Array:
    """A gate that a variant fixes to a constant, as an array shaped like `like`."""
    return value if isinstance(value, jax.Array) else jnp.full_like(like, value)


def step(
    options: LSTMOptions,
    params: LSTMParams,
    carry: LSTMCarry,
    x: Array,
    cut: Callable[[Any], Any] = keep,
) -> tuple[LSTMCarry, Array]:
    """`(carry, x) -> (carry, h_t)`; `x: [*batch, I]`, `h_t: [*batch, H]`."""
    p = parts(options, params, carry, x, cut)
    return carry_from_parts(options, p), p.h


def carry_from_parts(options: LSTMOptions, p: LSTMParts) -> LSTMCarry:
    """The carry a step hands on: `(h_t, c_t)`, plus `[i_t, f_t, o_t]` for FGR."""
    gates = None
    if options.gate_recurrence:
        by_name = {"i": p.i, "f": p.f, "o": p.o}
        gates = jnp.concatenate([by_name[s] for s in options.sigmoid_gates], axis=-1)
    return LSTMCarry(h=p.h, c=p.c, gates=gates)


def hidden_state(carry: LSTMCarry) -> Array:
    """The LSTM's output `y_t = h_t` (`Cell.output`)."""
    return carry.h
