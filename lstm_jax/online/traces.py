"""The online truncated gradient of Hochreiter & Schmidhuber (1997): truncated RTRL.

Under the truncated gradient (`modes`) error flows back in time only along
`c_{t-1} → c_t`, scaled by `f_t`. So for any weight θ that feeds the cell state,

    dL/dθ = Σ_t δc_t^local · e_t,    e_t = f_t ⊙ e_{t-1} + ∂c_t/∂θ|local,

where `δc_t^local = ∂ℓ_t/∂h_t ⊙ o_t ⊙ k'(c_t)` is the error the step's own loss puts on `c_t`
and `e_t` is an eligibility trace. With `in_t = [x_t, h_{t-1}, (gates_{t-1}), 1]` the local
terms are, per unit (`cells.lstm.derivation.cell_state_influence`):

    cell input   ∂c_t/∂θ_z = i_t ⊙ g'(z̄_t) ⊗ in_t
    input gate   ∂c_t/∂θ_i = z_t ⊙ σ'(ī_t) ⊗ in_t        (CIFG: (z_t - c_{t-1}) ⊙ σ'(ī_t))
    forget gate  ∂c_t/∂θ_f = c_{t-1} ⊙ σ'(f̄_t) ⊗ in_t
    peepholes    ∂c_t/∂p_i = z_t ⊙ σ'(ī_t) ⊙ c_{t-1},  ∂c_t/∂p_f = c_{t-1} ⊙ σ'(f̄_t) ⊙ c_{t-1}

Output-gate weights (and `p_o`, and the readout) need no trace: their gradient at step t is
local. With memory blocks (`block_size` S > 1, the 1997 and 2000 nets) the traces stay per cell
and a shared gate's gradient is the sum over its block's cells.

`trace_step` is one step of it. `traces_1997` puts it on the common interface
(`online.protocol.OnlineAlgorithm`); `online_gradient` is `protocol.accumulate` (one forward
`lax.scan`) over the same algorithm with a readout and `c_0` learned alongside. Memory is
`O(B·H·(I + H))`, independent of `T`; the result equals `jax.grad` of the TRUNCATED unroll.
Derived for the LSTM, this module reaches a cell's options through `cells.lstm.options_of`
(the family `cells.lstm.FAMILY` the registry declares for `traces_1997`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import lstm as lstm_lib
from lstm_jax.cells.activations import activation, sigmoid
from lstm_jax.cells.protocol import Cell, sum_leading
from lstm_jax.driver import checks
from lstm_jax.online.protocol import (
    OnlineAlgorithm,
    OnlineStep,
    StepLoss,
    accumulate,
    reset_fields,
)
from lstm_jax.online.readout import Readout

Array = jax.Array
LossFn = Callable[[Array, Any], Array]  # (prediction [*batch, O], target) -> scalar


class OnlineGradients(NamedTuple):
    """The truncated gradient, computed forward in time."""

    loss: Array  # scalar, Σ_t ℓ_t
    params: lstm_lib.LSTMParams  # ∂L/∂ cell params
    readout: Readout  # ∂L/∂ readout params
    c0: Array  # [*batch, H] ∂L/∂c_0 (∂L/∂h_0 is zero: h_0 only feeds cut gate inputs)


class _Traces(NamedTuple):
    e: Array  # [*batch, C, H, D] one trace per weight feeding c (C blocks among z, i, f)
    p_i: Array  # [*batch, H]
    p_f: Array  # [*batch, H]
    c0: Array  # [*batch, H] ∏ f_j, the trace of the initial cell state


class OnlineState(NamedTuple):
    """What the algorithm carries from step to step; its size does not depend on T."""

    carry: lstm_lib.LSTMCarry  # the LSTM's own carry
    traces: _Traces


class TraceStep(NamedTuple):
    """What one step of the algorithm gives beside its new state (`trace_step`)."""

    loss: Array  # [] ℓ_t
    output: Array  # [*batch, H] h_t
    grads: lstm_lib.LSTMParams  # the TRUNCATED dℓ_t/dθ
    c0: Array  # [*batch, H] dℓ_t/dc_0, through the trace ∏ f_j


class _BlockGrads(NamedTuple):
    """A step's dℓ_t/dθ per block, `[H, D]` rows over `in_t` (`_to_params` scatters it)."""

    traced: Array  # [C, H, D] the blocks feeding c_t, in gate order
    o: Array  # [H, D] the output gate (zeros without one)
    p_i: Array  # [H]
    p_f: Array  # [H]
    p_o: Array  # [H]


def online_gradient(
    cell: Cell,
    params: lstm_lib.LSTMParams,
    readout: Readout,
    xs: Array,
    targets: Any,
    loss_fn: LossFn,
    carry: lstm_lib.LSTMCarry | None = None,
) -> OnlineGradients:
    """The TRUNCATED gradient of `Σ_t loss_fn(h_t @ readout.w + readout.b, targets[t])`: the
    1997 traces (`traces_1997`'s `trace_step`) run over the sequence by `protocol.accumulate`,
    with the readout and `c_0` learned alongside. A weight inside `targets` puts the loss at
    chosen steps only (at the last one: the 1997 tasks' error at the end of a sequence).

    Args:
      cell: an LSTM cell, any variant (the 1997 cell, with or without forget gate and
        peepholes, CIFG, FGR...); a TypeError for any other cell.
      xs: `[T, *batch, I]` time-major inputs; targets: a pytree with leading axis T.
      loss_fn: the per-step loss, `(prediction [*batch, O], target_t) -> scalar`.
      carry: the initial carry (zeros when None).

    Returns:
      `OnlineGradients(loss, params, readout, c0)`.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> cell = lstm_jax.lstm()
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> readout = Readout(jnp.ones((4, 2)), jnp.zeros(2))
    >>> xs, targets = jnp.ones((6, 5, 3)), jnp.zeros((6, 5, 2))
    >>> out = online_gradient(cell, params, readout, xs, targets,
    ...                       lambda p, t: jnp.sum((p - t) ** 2))
    >>> out.params.w.shape, out.readout.w.shape, out.c0.shape
    ((3, 16), (4, 2), (5, 4))
    """
    options = lstm_lib.options_of(cell, "the online truncated gradient (derived for the LSTM)")
    xs, carry = checks.prepare(cell, params, xs, carry)
    hidden, num_steps = carry.c.shape[-1], xs.shape[0]
    if getattr(readout.w, "ndim", 0) != 2 or readout.w.shape[0] != hidden:
        raise ValueError(
            f"readout.w must have shape [H={hidden}, O], got {getattr(readout.w, 'shape', None)}"
        )
    if tuple(getattr(readout.b, "shape", ())) != (readout.w.shape[1],):
        raise ValueError(
            f"readout.b must have shape ({readout.w.shape[1]},) to match readout.w "
            f"{readout.w.shape}, got {getattr(readout.b, 'shape', None)}"
        )
    for path, leaf in jax.tree_util.tree_flatten_with_path(targets)[0]:
        if not getattr(leaf, "shape", ()) or leaf.shape[0] != num_steps:
            raise ValueError(
                f"targets{jax.tree_util.keystr(path)} must have a leading time axis of "
                f"T={num_steps}, got shape {getattr(leaf, 'shape', None)}"
            )
    return _online(options, params, readout, xs, targets, loss_fn, carry)


class _Learned(NamedTuple):
    """What `online_gradient` differentiates, as the params of `_with_readout`."""

    cell: lstm_lib.LSTMParams
    readout: Readout
    c0: Array  # [*batch, H] the initial cell state


@functools.partial(jax.jit, static_argnums=(0, 5))
def _online(
    options: lstm_lib.LSTMOptions,
    params: lstm_lib.LSTMParams,
    readout: Readout,
    xs: Array,
    targets: Any,
    loss_fn: LossFn,
    carry: lstm_lib.LSTMCarry,
) -> OnlineGradients:
    learned = _Learned(params, readout, carry.c)
    out = accumulate(_with_readout(options), learned, xs, targets, loss_fn, carry)
    return OnlineGradients(out.loss, out.grads.cell, out.grads.readout, out.grads.c0)


def _with_readout(options: lstm_lib.LSTMOptions) -> OnlineAlgorithm:
    """The 1997 traces on `_Learned` params: the cell's gradient from its traces, the
    readout's locally (it reaches ℓ_t only through this step's prediction), `c_0`'s from its
    trace; the step's loss takes the prediction `h_t @ w + b`."""

    def init(learned: _Learned, carry: lstm_lib.LSTMCarry) -> OnlineState:
        return init_state(options, carry._replace(c=learned.c0), learned.cell.w.shape[0])

    def step(
        learned: _Learned, state: OnlineState, x: Array, loss: StepLoss
    ) -> tuple[OnlineState, OnlineStep]:
        def predicted_loss(readout: Readout, h: Array) -> Array:
            return loss(h @ readout.w + readout.b)

        local = functools.partial(predicted_loss, learned.readout)
        state, out = trace_step(options, learned.cell, state, x, local)
        d_readout = jax.grad(predicted_loss)(learned.readout, out.output)
        return state, OnlineStep(out.loss, out.output, _Learned(out.grads, d_readout, out.c0))

    return OnlineAlgorithm(init, step, lambda state: state.carry, reset_fields("carry", "traces"))


def _traced_blocks(options: lstm_lib.LSTMOptions) -> tuple[str, ...]:
    """The blocks whose weights feed the cell state, in gate order."""
    return tuple(name for name in options.gates if name != "o")


def init_state(
    options: lstm_lib.LSTMOptions, carry: lstm_lib.LSTMCarry, input_size: int
) -> OnlineState:
    """Zero traces (and `∏ f = 1` for `c_0`) for a run starting from `carry`: `e` is
    `[*batch, C, H, D]` with `D = |in_t|`.

    >>> import lstm_jax
    >>> cell = lstm_jax.lstm()  # C = 3 traced blocks z, i, f; D = I + H + 1
    >>> init_state(cell.options, cell.initial_carry((2,), 4), 3).traces.e.shape
    (2, 3, 4, 8)
    """
    batch, hidden = carry.c.shape[:-1], carry.c.shape[-1]
    gate_inputs = 0 if carry.gates is None else carry.gates.shape[-1]
    width = input_size + hidden + gate_inputs + 1  # D = |in_t|
    zeros = jnp.zeros((*batch, hidden), carry.c.dtype)
    traces = _Traces(
        e=jnp.zeros((*batch, len(_traced_blocks(options)), hidden, width), carry.c.dtype),
        p_i=zeros,
        p_f=zeros,
        c0=jnp.ones_like(zeros),
    )
    return OnlineState(carry, traces)


def trace_step(
    options: lstm_lib.LSTMOptions,
    params: lstm_lib.LSTMParams,
    state: OnlineState,
    x: Array,
    loss: StepLoss,
) -> tuple[OnlineState, TraceStep]:
    """The traces move on one step (module docstring), and the step's loss `loss(h_t)` (a
    scalar) gives its gradient terms: `(state_t, TraceStep(ℓ_t, h_t, dℓ_t/dθ, dℓ_t/dc_0))`.

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> cell = lstm_jax.lstm("vanilla")
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> state = init_state(cell.options, cell.initial_carry((2,), 4), 3)
    >>> state, out = trace_step(cell.options, params, state, jnp.ones((2, 3)), jnp.sum)
    >>> out.grads.p_i.shape, out.output.shape
    ((4,), (2, 4))
    """
    k = activation(options.output_activation, "output_activation")
    carry, traces = state
    dtype = carry.c.dtype

    p = lstm_lib.step.parts(options, params, carry, x)
    ones = jnp.ones((*carry.c.shape[:-1], 1), dtype)
    pieces = [x, carry.h] + ([carry.gates] if carry.gates is not None else []) + [ones]
    in_t = jnp.concatenate(pieces, axis=-1)  # [*batch, D]

    # ∂c_t/∂(pre-activation) per traced block: the local terms of the module docstring.
    dc_dpre = lstm_lib.derivation.cell_state_influence(options, p, carry.c)
    local = jnp.stack([dc_dpre[name] for name in _traced_blocks(options)], axis=-2)
    e = p.f[..., None, :, None] * traces.e + local[..., None] * in_t[..., None, None, :]
    p_i, p_f = traces.p_i, traces.p_f
    if "i" in options.peephole_gates:
        p_i = p.f * p_i + dc_dpre["i"] * carry.c
    if "f" in options.peephole_gates:
        p_f = p.f * p_f + dc_dpre["f"] * carry.c
    traces = _Traces(e=e, p_i=p_i, p_f=p_f, c0=p.f * traces.c0)

    # This step's own loss, and the error it puts on c_t (nothing else reaches c_t).
    value, dh = jax.value_and_grad(loss)(p.h)
    dc = dh * p.o * k.grad(p.c)
    hidden, width = p.c.shape[-1], in_t.shape[-1]
    blocks = _BlockGrads(
        traced=jnp.einsum("...h,...chd->chd", dc, e),
        o=jnp.zeros((hidden, width), dtype),
        p_i=sum_leading(dc * p_i),
        p_f=sum_leading(dc * p_f),
        p_o=jnp.zeros((hidden,), dtype),
    )
    if options.output_gate:  # no trace: ō_t reaches the loss only through h_t
        d_o = dh * k.fn(p.c) * sigmoid.grad(p.o_pre)
        blocks = blocks._replace(
            o=jnp.einsum("...h,...d->hd", d_o, in_t), p_o=sum_leading(d_o * p.c)
        )
    grads = _to_params(options, params, blocks)
    new = OnlineState(lstm_lib.step.carry_from_parts(options, p), traces)
    return new, TraceStep(value, p.h, grads, dc * traces.c0)


def traces_1997(cell: Cell) -> OnlineAlgorithm:
    """The 1997 algorithm on the common interface (`online.protocol`): the eligibility traces
    of the module docstring for an LSTM `cell` of any variant (a TypeError for any other
    cell), memory `O(B·H·(I + H))`; `grads` is the TRUNCATED `dℓ_t/dθ` as `LSTMParams`. The
    same traces are e-prop's for the LSTM (Bellec et al. 2020; `online.eligibility`).

    >>> import jax, jax.numpy as jnp, lstm_jax
    >>> from lstm_jax.online.protocol import accumulate
    >>> cell = lstm_jax.lstm("1997")
    >>> params = cell.init(jax.random.key(0), 3, 4)
    >>> xs, targets = jnp.ones((6, 2, 3)), jnp.zeros((6, 2, 4))
    >>> out = accumulate(traces_1997(cell), params, xs, targets,
    ...                  lambda y, t: jnp.sum((y - t) ** 2), cell.initial_carry((2,), 4))
    >>> out.grads.w.shape, out.state.traces.e.shape  # 1997: no forget gate, C = 2 (z, i)
    ((3, 12), (2, 2, 4, 8))
    """
    options = lstm_lib.options_of(cell, "the 1997 eligibility traces (derived for the LSTM)")

    def init(params: lstm_lib.LSTMParams, carry: lstm_lib.LSTMCarry) -> OnlineState:
        return init_state(options, carry, params.w.shape[0])

    def step(
        params: lstm_lib.LSTMParams, state: OnlineState, x: Array, loss: StepLoss
    ) -> tuple[OnlineState, OnlineStep]:
        state, out = trace_step(options, params, state, x, loss)
        return state, OnlineStep(out.loss, out.output, out.grads)

    return OnlineAlgorithm(init, step, lambda state: state.carry, reset_fields("carry", "traces"))


def _to_params(
    options: lstm_lib.LSTMOptions, params: lstm_lib.LSTMParams, blocks: _BlockGrads
) -> lstm_lib.LSTMParams:
    """Scatters the per-block `[H, D]` gradients back into the fused `LSTMParams` layout."""
    input_size, hidden = params.w.shape[0], params.r.shape[0]
    per_block = dict(zip(_traced_blocks(options), blocks.traced, strict=True))
    if options.output_gate:
        per_block["o"] = blocks.o
    # each [H, D] per cell; a gate shared by a memory block sums its cells' rows: [H/S, D]
    ordered = [
        per_block[n] if n == "z" else lstm_lib.step.sum_blocks(options, per_block[n], axis=0)
        for n in options.gates
    ]
    x_end, h_end = input_size, input_size + hidden
    w = jnp.concatenate([blk[:, :x_end].T for blk in ordered], axis=-1)
    r = jnp.concatenate([blk[:, x_end:h_end].T for blk in ordered], axis=-1)
    b = jnp.concatenate([blk[:, -1] for blk in ordered], axis=-1)
    r_gate = None
    if options.gate_inputs:  # every unit receives the previous gate activations
        r_gate = jnp.concatenate([blk[:, h_end:-1].T for blk in ordered], axis=-1)
    elif options.gate_recurrence:  # only the sigmoid gates receive the gate recurrence
        r_gate = jnp.concatenate(
            [per_block[name][:, h_end:-1].T for name in options.sigmoid_gates], axis=-1
        )
    return lstm_lib.LSTMParams(
        w=w,
        r=r,
        b=b,
        p_i=blocks.p_i if params.p_i is not None else None,
        p_f=blocks.p_f if params.p_f is not None else None,
        p_o=blocks.p_o if params.p_o is not None else None,
        r_gate=r_gate,
    )
