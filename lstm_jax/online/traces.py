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

Everything is computed in one forward `lax.scan`; memory is `O(B·H·(I + H))`,
independent of `T`. The result equals `jax.grad` of the TRUNCATED unroll.
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
from lstm_jax.online.protocol import OnlineAlgorithm, OnlineStep, StepLoss
from lstm_jax.online.readout import Readout

Array = jax.Array
LossFn = Callable[[Array, Any], Array]  # (prediction [*batch, O], target) -> scalar


class OnlineGradients(NamedTuple):
    """The truncated gradient, computed forward in time."""

    loss: Array  # scalar, Σ_t ℓ_t (or ℓ_T)
    params: lstm_lib.LSTMParams  # ∂L/∂ cell params
    readout: Readout  # ∂L/∂ readout params
    c0: Array  # [*batch, H] ∂L/∂c_0 (∂L/∂h_0 is zero: h_0 only feeds cut gate inputs)


class _Traces(NamedTuple):
    e: Array  # [*batch, C, H, D] one trace per weight feeding c (C blocks among z, i, f)
    p_i: Array  # [*batch, H]
    p_f: Array  # [*batch, H]
    c0: Array  # [*batch, H] ∏ f_j, the trace of the initial cell state


def online_gradient(
    cell: Cell,
    params: lstm_lib.LSTMParams,
    readout: Readout,
    xs: Array,
    targets: Any,
    loss_fn: LossFn,
    carry: lstm_lib.LSTMCarry | None = None,
    *,
    every_step: bool = True,
) -> OnlineGradients:
    """The TRUNCATED gradient of `Σ_t loss_fn(h_t @ readout.w + readout.b, targets[t])`.

    Args:
      cell: an LSTM cell, any variant (the 1997 cell, with or without forget gate and
        peepholes, CIFG, FGR...).
      xs: `[T, *batch, I]` time-major inputs; targets: a pytree with leading axis T.
      loss_fn: the per-step loss, `(prediction [*batch, O], target_t) -> scalar`.
      carry: the initial carry (zeros when None).
      every_step: a loss at every step (True) or only at the last one (False).

    Returns:
      `OnlineGradients(loss, params, readout, c0)`.
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
    return _online(options, params, readout, xs, targets, loss_fn, carry, every_step)


def _traced_blocks(options: lstm_lib.LSTMOptions) -> tuple[str, ...]:
    """The blocks whose weights feed the cell state, in gate order."""
    return tuple(name for name in options.gates if name != "o")


class OnlineState(NamedTuple):
    """What the algorithm carries from step to step; its size does not depend on T."""

    carry: lstm_lib.LSTMCarry  # the LSTM's own carry
    traces: _Traces


def init_state(
    options: lstm_lib.LSTMOptions, carry: lstm_lib.LSTMCarry, input_size: int
) -> OnlineState:
    """Zero traces (and `∏ f = 1` for `c_0`) for a run starting from `carry`."""
    batch, hidden = carry.c.shape[:-1], carry.c.shape[-1]
    extra = 0 if carry.gates is None else carry.gates.shape[-1]
    width = input_size + hidden + extra + 1  # D = |in_t|
    zeros = jnp.zeros((*batch, hidden), carry.c.dtype)
    traces = _Traces(
        e=jnp.zeros((*batch, len(_traced_blocks(options)), hidden, width), carry.c.dtype),
        p_i=zeros,
        p_f=zeros,
        c0=jnp.ones_like(zeros),
    )
    return OnlineState(carry, traces)


def step(
    options: lstm_lib.LSTMOptions,
    params: lstm_lib.LSTMParams,
    readout: Readout,
    state: OnlineState,
    x: Array,
    target: Any,
    loss_fn: LossFn,
    weight: Array | float = 1.0,
) -> tuple[OnlineState, dict[str, Any]]:
    """One step of the algorithm: the traces move on, and this step's loss `weight ·
    loss_fn(h_t @ readout.w + readout.b, target)` gives its contribution to the gradient.

    Returns `(state_t, contribution)`; `contribution` is in the per-block layout that
    `to_gradients` turns into `LSTMParams` (sum contributions first: the layout is linear).
    """
    weight = jnp.asarray(weight, state.carry.c.dtype)

    def local_loss(readout: Readout, h: Array) -> Array:
        return weight * loss_fn(h @ readout.w + readout.b, target)

    state, contribution, h = trace_step(options, params, state, x, lambda h: local_loss(readout, h))
    contribution["readout"] = jax.grad(local_loss)(readout, h)
    return state, contribution


def trace_step(
    options: lstm_lib.LSTMOptions,
    params: lstm_lib.LSTMParams,
    state: OnlineState,
    x: Array,
    loss: Callable[[Array], Array],
) -> tuple[OnlineState, dict[str, Any], Array]:
    """The traces move on one step, and the step's loss `loss(h_t)` (a scalar) gives its
    contribution to the cell's gradient. Returns `(state_t, contribution, h_t)`, the
    contribution in `to_gradients`' per-block layout (without a readout entry)."""
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
    contribution = {
        "loss": value,
        "traced": jnp.einsum("...h,...chd->chd", dc, e),
        "p_i": sum_leading(dc * p_i),
        "p_f": sum_leading(dc * p_f),
        "c0": dc * traces.c0,
        "o": jnp.zeros((hidden, width), dtype),
        "p_o": jnp.zeros((hidden,), dtype),
    }
    if options.output_gate:  # no trace: ō_t reaches the loss only through h_t
        d_o = dh * k.fn(p.c) * sigmoid.grad(p.o_pre)
        contribution["o"] = jnp.einsum("...h,...d->hd", d_o, in_t)
        contribution["p_o"] = sum_leading(d_o * p.c)
    return OnlineState(lstm_lib.step.carry_from_parts(options, p), traces), contribution, p.h


def traces_1997(cell: Cell) -> OnlineAlgorithm:
    """The 1997 algorithm on the common interface (`online.protocol`): the
    eligibility traces of the module docstring for an LSTM `cell` of any variant, memory
    `O(B·H·(I + H))`; `grads` is the TRUNCATED `dℓ_t/dθ` as `LSTMParams`. The same traces
    are e-prop's for the LSTM (Bellec et al. 2020; `online.eligibility`)."""
    options = lstm_lib.options_of(cell, "the 1997 eligibility traces (derived for the LSTM)")

    def init(params: lstm_lib.LSTMParams, carry: lstm_lib.LSTMCarry) -> OnlineState:
        return init_state(options, carry, params.w.shape[0])

    def step_(
        params: lstm_lib.LSTMParams, state: OnlineState, x: Array, loss: StepLoss
    ) -> tuple[OnlineState, OnlineStep]:
        state, contribution, h = trace_step(options, params, state, x, loss)
        grads = _to_params(options, params, contribution, params.w.shape[0], params.r.shape[0])
        return state, OnlineStep(contribution["loss"], h, grads)

    return OnlineAlgorithm(init, step_, lambda state: state.carry)


def to_gradients(
    options: lstm_lib.LSTMOptions, params: lstm_lib.LSTMParams, contribution: dict[str, Any]
) -> tuple[lstm_lib.LSTMParams, Readout]:
    """`(∂L/∂ cell params, ∂L/∂ readout)` from a (sum of) `step` contribution(s)."""
    input_size, hidden = params.w.shape[0], params.r.shape[0]
    cell = _to_params(options, params, contribution, input_size, hidden)
    return cell, contribution["readout"]


@functools.partial(jax.jit, static_argnums=(0, 5, 7))
def _online(
    options: lstm_lib.LSTMOptions,
    params: lstm_lib.LSTMParams,
    readout: Readout,
    xs: Array,
    targets: Any,
    loss_fn: LossFn,
    carry: lstm_lib.LSTMCarry,
    every_step: bool,
) -> OnlineGradients:
    num_steps = xs.shape[0]

    def body(state, inputs):
        online, acc = state
        t, x, target = inputs
        weight = 1.0 if every_step else t == num_steps - 1
        online, contribution = step(options, params, readout, online, x, target, loss_fn, weight)
        return (online, jax.tree.map(jnp.add, acc, contribution)), None

    online = init_state(options, carry, xs.shape[-1])
    first = jax.eval_shape(
        lambda: step(options, params, readout, online, xs[0], _first(targets), loss_fn)[1]
    )
    acc = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), first)
    steps = jnp.arange(num_steps)
    (_, acc), _ = jax.lax.scan(body, (online, acc), (steps, xs, targets))
    cell, d_readout = to_gradients(options, params, acc)
    return OnlineGradients(loss=acc["loss"], params=cell, readout=d_readout, c0=acc["c0"])


def _first(tree: Any) -> Any:
    return jax.tree.map(lambda leaf: leaf[0], tree)


def _to_params(
    options: lstm_lib.LSTMOptions,
    params: lstm_lib.LSTMParams,
    acc: dict[str, Any],
    input_size: int,
    hidden: int,
) -> lstm_lib.LSTMParams:
    """Scatters the per-block `[H, D]` gradients back into the fused `LSTMParams` layout."""
    per_block = dict(zip(_traced_blocks(options), acc["traced"], strict=True))
    if options.output_gate:
        per_block["o"] = acc["o"]
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
    peep = {"i": acc["p_i"], "f": acc["p_f"], "o": acc["p_o"]}
    return lstm_lib.LSTMParams(
        w=w,
        r=r,
        b=b,
        p_i=peep["i"] if params.p_i is not None else None,
        p_f=peep["f"] if params.p_f is not None else None,
        p_o=peep["o"] if params.p_o is not None else None,
        r_gate=r_gate,
    )
