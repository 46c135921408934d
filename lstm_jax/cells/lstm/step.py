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
import numpy as np

from lstm_jax.cells import initializers
from lstm_jax.cells.activations import activation, sigmoid
from lstm_jax.cells.lstm.options import LSTMOptions
from lstm_jax.cells.protocol import zero_state
from lstm_jax.modes import cut_nothing

Array = jax.Array


class LSTMParams(NamedTuple):
    """LSTM parameters; `G = len(options.gates)`, `S = len(options.sigmoid_gates)`.

    Kernels are `in → out`, so the equations' `W_*` is `w[:, block]ᵀ` and `R_*` is `r[:, block]ᵀ`.
    """

    w: Array  # [I, ΣG] input weights, blocks in `options.gates` order (`options.widths`: H
    #            for z, H/block_size per gate; ΣG = G·H without memory blocks)
    r: Array  # [H, ΣG] recurrent weights
    b: Array  # [ΣG] biases (forget block initialised to `forget_bias`)
    p_i: Array | None = None  # [H] peephole c_{t-1} → ī  (peepholes with an input gate)
    p_f: Array | None = None  # [H] peephole c_{t-1} → f̄  (peepholes with a free forget gate)
    p_o: Array | None = None  # [H] peephole c_t → ō  (peepholes with an output gate)
    r_gate: Array | None = None  # previous gate activations → pre-activations: [S·H, S·H] for
    #                              FGR (gates only), [S·H/block_size, ΣG] for gate_inputs (all)


class LSTMCarry(NamedTuple):
    """The LSTM state carried between steps."""

    h: Array  # [*batch, H] hidden state / output
    c: Array  # [*batch, H] cell state (the constant error carousel)
    gates: Array | None = None  # [*batch, S·H] previous gate activations: FGR, and (one per
    #                             memory block, [*batch, S·H/block_size]) gate_inputs


class LSTMParts(NamedTuple):
    """Every intermediate of one step, each `[*batch, H]`; gates a variant lacks hold their
    constant value, and a gate shared by a memory block is repeated over the block's cells."""

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
    forget gate (`forget_bias`, or chrono), peepholes and FGR weights U(±1/√H) and U(±1/√(S·H));
    with `options.init_range = a`, every weight and bias U(±a) instead. Then the gate-bias
    options (`input_bias`, `forget_bias`, `output_bias`) set their blocks."""
    initializers.check_sizes(input_size, hidden_size)
    gates, n_sig = options.gates, len(options.sigmoid_gates)
    widths = options.widths(hidden_size)
    k_w, k_r, k_p, k_g, k_c = jax.random.split(key, 5)
    scale = 1.0 / hidden_size**0.5
    fgr_shape = (options.gate_state_width(hidden_size), n_sig * hidden_size)
    if options.gate_inputs:
        fgr_shape = (options.gate_state_width(hidden_size), sum(widths))
    if options.init_range is None:
        w = initializers.input_kernel(k_w, input_size, sum(widths), dtype)
        r = initializers.recurrent_kernel(k_r, hidden_size, len(gates), dtype, widths)
        b = jnp.zeros((sum(widths),), dtype)
        peep = initializers.uniform(k_p, (3, hidden_size), scale, dtype)
        r_gate = initializers.uniform(k_g, fgr_shape, 1.0 / fgr_shape[0] ** 0.5, dtype)
    else:  # 1997 / 2000: all weights and biases uniform in ±a
        a, k_b = options.init_range, jax.random.fold_in(key, 1)
        w = initializers.uniform(k_w, (input_size, sum(widths)), a, dtype)
        r = initializers.uniform(k_r, (hidden_size, sum(widths)), a, dtype)
        b = initializers.uniform(k_b, (sum(widths),), a, dtype)
        peep = initializers.uniform(k_p, (3, hidden_size), a, dtype)
        r_gate = initializers.uniform(k_g, fgr_shape, a, dtype)
    b = dict(zip(gates, split_blocks(options, b, hidden_size), strict=True))
    if options.chrono is not None:
        b["f"] = initializers.chrono_forget_bias(k_c, len(b["f"]), options.chrono, dtype)
        b["i"] = -b["f"]
    for name, option in _BIAS_OPTION.items():
        value = getattr(options, option)
        if name in b and value is not None and not (options.chrono and name in "if"):
            b[name] = _bias_schedule(options, name, value, b[name])
    return LSTMParams(
        w=w,
        r=r,
        b=jnp.concatenate([b[name] for name in gates]),
        **{f"p_{n}": peep[k] for k, n in enumerate("ifo") if n in options.peephole_gates},
        r_gate=r_gate if options.carries_gates else None,
    )


_BIAS_OPTION = {"i": "input_bias", "f": "forget_bias", "o": "output_bias"}


def _bias_schedule(options: LSTMOptions, gate: str, value: Any, like: Array) -> Array:
    """A gate's initial bias: one number for every block, or a tuple with one per block."""
    if not isinstance(value, tuple):
        return jnp.full_like(like, value)
    if len(value) != like.shape[0]:
        raise ValueError(
            f"{_BIAS_OPTION[gate]} has {len(value)} values, one per memory block, but the LSTM "
            f"has {like.shape[0]} blocks (hidden_size={like.shape[0] * options.block_size}, "
            f"block_size={options.block_size})"
        )
    return jnp.asarray(value, like.dtype)


def expand_blocks(options: LSTMOptions, x: Array) -> Array:
    """`[..., H/S] -> [..., H]`: a gate per memory block repeated over the block's S cells."""
    s = options.block_size
    return x if s == 1 else jnp.repeat(x, s, axis=-1)


def sum_blocks(options: LSTMOptions, x: Array, axis: int = -1) -> Array:
    """`[..., H] -> [..., H/S]` along `axis`: the sum over each memory block's S cells (the
    adjoint of `expand_blocks`: a shared gate receives the error of all its cells)."""
    s = options.block_size
    if s == 1:
        return x
    axis = axis % x.ndim
    shape = (*x.shape[:axis], x.shape[axis] // s, s, *x.shape[axis + 1 :])
    return x.reshape(shape).sum(axis + 1)


def split_blocks(options: LSTMOptions, x: Array, hidden_size: int) -> list[Array]:
    """`x [..., ΣG]` (a pre-activation, bias or kernel row layout) split into its gate blocks,
    in `options.gates` order (`options.widths`)."""
    if options.block_size == 1:
        return jnp.split(x, len(options.gates), axis=-1)
    offsets = np.cumsum(options.widths(hidden_size))[:-1]
    return jnp.split(x, offsets, axis=-1)


def _cell_blocks(options: LSTMOptions, x: Array, hidden_size: int) -> dict[str, Array]:
    """The gate blocks of `x`, each gate repeated over its block's cells (all `[..., H]`)."""
    split = split_blocks(options, x, hidden_size)
    return {
        name: v if name == "z" else expand_blocks(options, v)
        for name, v in zip(options.gates, split, strict=True)
    }


def initial_carry(
    options: LSTMOptions, batch_shape: tuple[int, ...], hidden_size: int, dtype: Any = jnp.float32
) -> LSTMCarry:
    """Zero `h` and `c` of shape `[*batch_shape, H]` (and zero previous gates for FGR and
    `gate_inputs`)."""
    zeros = zero_state(batch_shape, hidden_size, dtype)
    gates = None
    if options.carries_gates:
        gates = zero_state(batch_shape, options.gate_state_width(hidden_size), dtype)
    return LSTMCarry(h=zeros, c=zeros, gates=gates)


def parts(
    options: LSTMOptions,
    params: LSTMParams,
    carry: LSTMCarry,
    x: Array | None,
    cut: Callable[[Any], Any] = cut_nothing,
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
    if options.gate_inputs:  # 1997: the previous gate activations feed every unit
        pre = pre + cut(carry.gates) @ params.r_gate
    blocks = _cell_blocks(options, pre, carry.h.shape[-1])
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
    """`[*batch, ΣG]`: the step's gate activations in `options.gates` order, the layout of its
    pre-activations (what the fused unroll stores in place of them)."""
    s = options.block_size  # a shared gate is stored once per block
    return jnp.concatenate(
        [getattr(p, n) if n == "z" or s == 1 else getattr(p, n)[..., ::s] for n in options.gates],
        axis=-1,
    )


def parts_from_activations(options: LSTMOptions, acts: Array, c: Array) -> LSTMParts:
    """The `LSTMParts` of a step from its stored gate activations `acts [*batch, ΣG]`
    (`activations`) and cell state `c [*batch, H]`: gates a variant lacks take their constant
    value as in `parts`, `k(c_t)` and `h_t` are recomputed; pre-activations are None (the
    backward pass needs only activations: σ' = σ(1 - σ))."""
    k = activation(options.output_activation, "output_activation")
    blocks = _cell_blocks(options, acts, c.shape[-1])
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
    cut: Callable[[Any], Any] = cut_nothing,
) -> tuple[LSTMCarry, Array]:
    """`(carry, x) -> (carry, h_t)`; `x: [*batch, I]`, `h_t: [*batch, H]`."""
    p = parts(options, params, carry, x, cut)
    return carry_from_parts(options, p), p.h


def carry_from_parts(options: LSTMOptions, p: LSTMParts) -> LSTMCarry:
    """The carry a step hands on: `(h_t, c_t)`, plus `[i_t, f_t, o_t]` for FGR and (one per
    memory block) for `gate_inputs`."""
    gates = None
    if options.carries_gates:
        by_name = {"i": p.i, "f": p.f, "o": p.o}
        step = options.block_size if options.gate_inputs else 1
        gates = jnp.concatenate([by_name[g][..., ::step] for g in options.sigmoid_gates], -1)
    return LSTMCarry(h=p.h, c=p.c, gates=gates)
