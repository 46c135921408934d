"""Plain NumPy (float64) references written from `lstm_jax/cells/`, one matrix per gate.

They share no code with the library: a slip in the fused implementation, the gate order or a
variant flag shows up as a mismatch against these loops.
"""

from __future__ import annotations

import numpy as np

from lstm_jax import GRU_GATE_ORDER


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


SQUASH = {
    "tanh": np.tanh,
    "identity": lambda x: x,
    "sigmoid_pm2": lambda x: 4.0 * sigmoid(x) - 2.0,
    "sigmoid_pm1": lambda x: 2.0 * sigmoid(x) - 1.0,
}


def lstm_blocks(options, params):
    """The equations' matrices W_*, R_* ([H, I], [H, H]) and biases per present gate; with
    memory blocks of S cells a gate's rows are its block's, looked up by cell (`j // S`)."""
    w, r, b = (np.asarray(a, np.float64) for a in (params.w, params.r, params.b))
    hidden = r.shape[0]
    block_of_cell = np.arange(hidden) // options.block_size
    out, start = {}, 0
    for name in options.gates:
        width = hidden if name == "z" else hidden // options.block_size
        cols = np.arange(start, start + width)
        if name != "z":
            cols = cols[block_of_cell]
        out[name] = (w[:, cols].T, r[:, cols].T, b[cols], cols)
        start += width
    return out


def lstm_step(options, params, h, c, gates_prev, x):
    """One step of `lstm_jax/cells/`'s LSTM for a single example (vectors)."""
    blk = lstm_blocks(options, params)
    g, k = SQUASH[options.input_activation], SQUASH[options.output_activation]
    hidden = h.shape[0]
    pre = {name: W @ x + R @ h + b for name, (W, R, b, _) in blk.items()}
    if options.gate_inputs:  # 1997: previous gate activations (one per block) into every unit
        rg = np.asarray(params.r_gate, np.float64)
        for name, (_, _, _, cols) in blk.items():
            pre[name] = pre[name] + rg[:, cols].T @ gates_prev
    if options.gate_recurrence:
        rg = np.asarray(params.r_gate, np.float64).T  # [S·H out, S·H in]
        sig = options.sigmoid_gates
        for a, target in enumerate(sig):
            for s, _source in enumerate(sig):
                block = rg[a * hidden : (a + 1) * hidden, s * hidden : (s + 1) * hidden]
                pre[target] = pre[target] + block @ gates_prev[s * hidden : (s + 1) * hidden]
    peep = {n: np.asarray(getattr(params, f"p_{n}"), np.float64) for n in options.peephole_gates}
    i = sigmoid(pre["i"] + (peep["i"] * c if "i" in peep else 0)) if "i" in pre else 1.0
    if "f" in pre:
        f = sigmoid(pre["f"] + (peep["f"] * c if "f" in peep else 0))
    elif options.coupled:
        f = 1.0 - i
    else:
        f = 1.0
    z = g(pre["z"])
    c_new = z * i + c * f
    o = sigmoid(pre["o"] + (peep["o"] * c_new if "o" in peep else 0)) if "o" in pre else 1.0
    h_new = o * k(c_new)
    acts = {"i": i, "f": f, "o": o}
    gates_new = None
    if options.gate_recurrence:
        gates_new = np.concatenate(
            [np.broadcast_to(acts[s], (hidden,)) for s in options.sigmoid_gates]
        )
    if options.gate_inputs:  # one activation per memory block: its first cell's
        first = np.arange(0, hidden, options.block_size)
        gates_new = np.concatenate(
            [np.broadcast_to(acts[s], (hidden,))[first] for s in options.sigmoid_gates]
        )
    return h_new, c_new, gates_new


def gru_step(options, params, h, x):
    w, r, b = (np.asarray(a, np.float64) for a in (params.w, params.r, params.b))
    hidden = h.shape[0]
    W = {n: w[:, k * hidden : (k + 1) * hidden].T for k, n in enumerate(GRU_GATE_ORDER)}
    R = {n: r[:, k * hidden : (k + 1) * hidden].T for k, n in enumerate(GRU_GATE_ORDER)}
    B = {n: b[k * hidden : (k + 1) * hidden] for k, n in enumerate(GRU_GATE_ORDER)}
    u = sigmoid(W["u"] @ x + R["u"] @ h + B["u"])
    rr = sigmoid(W["r"] @ x + R["r"] @ h + B["r"])
    if options.reset_after:
        cand = np.tanh(W["h"] @ x + rr * (R["h"] @ h + np.asarray(params.b_rh)) + B["h"])
    else:
        cand = np.tanh(W["h"] @ x + R["h"] @ (rr * h) + B["h"])
    return (1 - u) * h + u * cand


def elman_step(options, params, h, x):
    w, r, b = (np.asarray(a, np.float64) for a in (params.w, params.r, params.b))
    phi = sigmoid if options.activation == "sigmoid" else np.tanh
    alpha = options.alpha  # the leaky RNN (Murray 2019): h_t = (1 - α) h_{t-1} + α φ(a_t)
    return (1 - alpha) * h + alpha * phi(w.T @ x + r.T @ h + b)


def run(cell_name, options, params, xs, carry):
    """Reference unroll of one example: xs [T, I]; carry as the library's (unbatched) carry.

    Returns (ys [T, H], final carry as a tuple of arrays)."""
    xs = np.asarray(xs, np.float64)
    ys = []
    if cell_name == "lstm":
        h, c = np.asarray(carry.h, np.float64), np.asarray(carry.c, np.float64)
        gates = None if carry.gates is None else np.asarray(carry.gates, np.float64)
        for x in xs:
            h, c, gates = lstm_step(options, params, h, c, gates, x)
            ys.append(h)
        final = (h, c) if gates is None else (h, c, gates)
    else:
        h = np.asarray(carry, np.float64)
        for x in xs:
            h = (
                gru_step(options, params, h, x)
                if cell_name == "gru"
                else elman_step(options, params, h, x)
            )
            ys.append(h)
        final = (h,)
    return np.stack(ys), final
