"""Online gradient algorithms side by side: how well each one's gradient aligns with BPTT's,
how each one learns, and what each one costs per step.

    python experiments/online_algorithms/online_algorithms.py [--parts alignment learning cost]
    python experiments/online_algorithms/online_algorithms.py --check

Parts (each cached in results.json; a part already there is skipped unless named in --parts):

- **alignment**: on the copy task (4 symbols, copy length 5, delay 10: T = 20), H = 16, 8
  sequences, for every cell and every algorithm defined for it: the cosine and norm ratio of
  the algorithm's recurrent-layer gradient of `L = Σ_t ℓ_t` with the BPTT gradient, at the
  initial weights and after 300 and 1,500 Adam updates of BPTT training (mean over 5 seeds).
  UORO: the mean cosine of one estimate, and the cosine of the mean of 20 estimates.
- **learning**: `training.learner: online` through the trainer (`configs/online_algorithms.yaml`),
  every algorithm on the copy task and on the embedded Reber grammar, weights updated after
  every step; test symbol accuracy.
- **cost**: time per step and state size against H, for the LSTM (I = 4, one sequence),
  beside BPTT; the XLA working set at T = 100 and T = 1,000 (flat in T for an online method).

Writes results.json, alignment.png, learning.png and cost.png beside this file (or in --out).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import lstm_jax
from lstm_jax.online.eligibility import feedback_readout, random_feedback
from lstm_jax.online.protocol import accumulate
from lstm_jax.online.registry import online_algorithm, valid_algorithms
from lstm_jax.reporting.check import CheckError, Remeasured, Tolerance, run_check
from lstm_jax.training import model
from lstm_jax.training.sweeps import Suite, compare
from lstm_jax.training.tasks import make_task

HERE = Path(__file__).parent
CELLS = {
    "LSTM": lambda: lstm_jax.lstm(),
    "GRU": lambda: lstm_jax.gru(),
    "Elman": lambda: lstm_jax.rnn(),
    "leaky Elman (α=0.5)": lambda: lstm_jax.rnn(alpha=0.5),
}
RANDOM_FEEDBACK = ("eprop", "rflo")  # also run with a random feedback matrix
CHECKPOINTS = (0, 300, 1500)  # BPTT updates at which the alignment is measured
SEEDS, BATCH, HIDDEN, UORO_DRAWS = 5, 8, 16, 20
COPY = dict(num_symbols=4, copy_length=5, delay=10)


# ---------------------------------------------------------------------------------------------
# alignment


def _step_losses(batch):
    """`(xs [T, B, I], targets)` for `accumulate` with `_ce`: targets = (labels [T, B], mask
    [T, B]), so ℓ_t is the step's cross-entropy summed over the B sequences where the task's
    mask puts a target."""
    xs = jnp.asarray(batch.inputs)
    targets = (jnp.asarray(batch.targets), jnp.asarray(batch.mask))
    return xs, targets


def _ce(logits, target):
    labels, mask = target
    return jnp.sum(mask * optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def _bptt_grad(cell, layer, readout, xs, targets):
    def total(layer):
        _, hs = lstm_jax.unroll(cell, layer, xs, None)
        return _ce(hs @ readout.w + readout.b, targets)

    return jax.grad(total)(layer)


def _algorithm_grad(cell, label: str):
    """`jit((layer, readout, feedback, xs, targets, key) -> flat gradient)` of the algorithm
    `label` ("name" or "name (random B)": the error sent through `feedback`)."""
    name, random_b = label.split(" ")[0], label.endswith("(random B)")

    @jax.jit
    def grad(layer, readout, feedback, xs, targets, key):
        head = feedback_readout(readout.w, readout.b, feedback if random_b else None)
        algorithm = online_algorithm(name, cell, key)
        carry = cell.initial_carry(xs.shape[1:2], HIDDEN)
        got = accumulate(algorithm, layer, xs, targets, lambda y, t: _ce(head(y), t), carry)
        return ravel_pytree(got.grads)[0]

    return grad


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _train_bptt(cell, params, task, seed, updates):
    """`updates` Adam steps (lr 3e-3, batch 32) of full BPTT on the copy task."""
    optimizer = optax.adam(3e-3)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state, xs, labels, mask):
        def loss(params):
            _, ys = model.apply(cell, params, xs)
            return model.softmax_loss(ys, labels, mask)

        grads = jax.grad(loss)(params)
        updates_, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates_), state

    for k in range(updates):
        b = task.batch(seed + 1000, k, 32)
        params, state = step(params, state, b.inputs, b.targets, b.mask)
    return params


def alignment() -> dict[str, Any]:
    task = make_task("copy", **COPY)
    rows = []
    for cell_name, build in CELLS.items():
        cell = build()
        names = valid_algorithms(cell)
        labels = names + [f"{n} (random B)" for n in RANDOM_FEEDBACK if n in names]
        per = {(label, c): [] for label in labels for c in CHECKPOINTS}
        norms = {(label, c): [] for label in labels for c in CHECKPOINTS}
        uoro_mean = {c: [] for c in CHECKPOINTS}
        grads = {label: _algorithm_grad(cell, label) for label in labels}
        for seed in range(SEEDS):
            key = jax.random.key(seed)
            params = model.init(cell, key, task.input_size, HIDDEN, task.output_size, 1)
            batch = task.batch(seed, 0, BATCH)
            xs, targets = _step_losses(batch)
            feedback = random_feedback(jax.random.fold_in(key, 7), HIDDEN, task.output_size)
            trained, done = params, 0
            for checkpoint in CHECKPOINTS:
                trained = _train_bptt(cell, trained, task, seed, checkpoint - done)
                done = checkpoint
                (layer,), readout = trained
                exact = np.asarray(ravel_pytree(_bptt_grad(cell, layer, readout, xs, targets))[0])
                for label in labels:
                    if label == "uoro":
                        keys = jax.random.split(jax.random.fold_in(key, checkpoint), UORO_DRAWS)
                        draws = np.asarray(
                            jax.vmap(grads[label], (None, None, None, None, None, 0))(
                                layer, readout, feedback, xs, targets, keys
                            )
                        )
                        uoro_mean[checkpoint].append(_cosine(draws.mean(0), exact))
                    else:
                        draws = np.asarray(grads[label](layer, readout, feedback, xs, targets, key))
                    for d in np.atleast_2d(draws):
                        per[(label, checkpoint)].append(_cosine(d, exact))
                        norms[(label, checkpoint)].append(
                            float(np.linalg.norm(d) / np.linalg.norm(exact))
                        )
        for label in labels:
            row = {"cell": cell_name, "algorithm": label}
            for c in CHECKPOINTS:
                row[f"cos@{c}"] = float(np.mean(per[(label, c)]))
                row[f"cos_sd@{c}"] = float(np.std(per[(label, c)]))
                row[f"norm@{c}"] = float(np.mean(norms[(label, c)]))
                if label == "uoro":
                    row[f"cos_mean20@{c}"] = float(np.mean(uoro_mean[c]))
            rows.append(row)
            print(_alignment_line(row), flush=True)
    return {"rows": rows, "copy": COPY, "seeds": SEEDS, "batch": BATCH, "hidden": HIDDEN}


def _alignment_line(row: dict[str, Any]) -> str:
    cells = "  ".join(
        f"{row[f'cos@{c}']:+.3f}±{row[f'cos_sd@{c}']:.3f} ({row[f'norm@{c}']:.2f}×)"
        for c in CHECKPOINTS
    )
    extra = ""
    if "cos_mean20@0" in row:
        extra = "  mean of 20: " + " ".join(f"{row[f'cos_mean20@{c}']:+.3f}" for c in CHECKPOINTS)
    return f"{row['cell']:<20} {row['algorithm']:<18} {cells}{extra}"


# ---------------------------------------------------------------------------------------------
# learning (through the trainer)

LEARNING = {
    "BPTT (batch)": ("model.gradient=full",),
    **{
        name: ("training.learner=online", f"training.online.algorithm={name}")
        for name in ("rtrl", "traces_1997", "snap1", "snap2", "uoro", "eprop")
    },
    "eprop (random B)": (
        "training.learner=online",
        "training.online.algorithm=eprop",
        "training.online.feedback=random",
    ),
}


SUITES = {
    "copy, online": Suite("configs/online_algorithms.yaml", (), "symbol_accuracy"),
    # the 1997 paper's first task: next-symbol prediction on 256 training strings
    "embedded Reber, online": Suite(
        "configs/online_algorithms.yaml",
        ("task.name=embedded_reber", "task.options={train_size: 256}", "training.steps=2000"),
        "symbols_correct",
    ),
}


def learning(
    seeds: int, runs_dir: Path, workers: int, variant: str | None = None
) -> dict[str, Any]:
    results = compare(
        SUITES, LEARNING, seeds=seeds, runs_dir=runs_dir, workers=workers, variant=variant
    )
    suites = {}
    for name, outcomes in results.items():
        suites[name] = {
            "config": SUITES[name].config,
            "overrides": list(SUITES[name].overrides),
            "metric": SUITES[name].metric,
            "runs": [
                {
                    "label": o.label,
                    "seed": o.seed,
                    "status": o.status,
                    "steps": o.steps,
                    "solved_at_sequences": o.solved_at_sequences,
                    "final_eval": o.final_eval,
                    "evals": o.evals,
                    "train_wall_s": o.train_wall_s,
                    "train_cpu_s": o.train_cpu_s,
                    "commit": o.commit,
                }
                for o in outcomes
            ],
        }
    return {"seeds": seeds, "suites": suites}


# ---------------------------------------------------------------------------------------------
# cost


def _time(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def cost(hiddens=(8, 16, 32, 64), steps: int = 100) -> dict[str, Any]:
    rows = []
    cell, inputs = lstm_jax.lstm(), 4
    loss = lambda y, t: jnp.sum((y - t) ** 2)  # noqa: E731
    for hidden in hiddens:
        params = cell.init(jax.random.key(0), inputs, hidden)
        carry = cell.initial_carry((1,), hidden)
        for name in ["BPTT", *valid_algorithms(cell)]:
            row = {"algorithm": name, "hidden": hidden}
            for length in (steps, 10 * steps):
                xs = jax.random.normal(jax.random.key(1), (length, 1, inputs))
                ts = jnp.zeros((length, 1, hidden))
                if name == "BPTT":

                    def run(params, xs, ts, carry=carry):
                        def total(params):
                            _, ys = lstm_jax.unroll(cell, params, xs, carry)
                            return jnp.sum((ys - ts) ** 2)

                        return jax.grad(total)(params)

                    state_floats = 0
                else:
                    algorithm = online_algorithm(name, cell)

                    def run(params, xs, ts, algorithm=algorithm, carry=carry):
                        return accumulate(algorithm, params, xs, ts, loss, carry).grads

                    state = jax.eval_shape(algorithm.init, params, carry)
                    state_floats = sum(math.prod(s.shape) for s in jax.tree.leaves(state))
                compiled = jax.jit(run).lower(params, xs, ts).compile()
                row[f"temp_MiB@T={length}"] = compiled.memory_analysis().temp_size_in_bytes / 2**20
                if length == steps:
                    row["us_per_step"] = 1e6 * _time(compiled, params, xs, ts) / length
                    row["state_floats"] = state_floats
            rows.append(row)
            print(
                f"H={hidden:<3} {name:<15} {row['us_per_step']:>10.1f} us/step  state "
                f"{row['state_floats']:>10,} floats  XLA temp {row[f'temp_MiB@T={steps}']:.2f} "
                f"-> {row[f'temp_MiB@T={10 * steps}']:.2f} MiB (T={steps} -> {10 * steps})",
                flush=True,
            )
    return {"cell": "LSTM (vanilla)", "input_size": inputs, "batch": 1, "rows": rows}


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="*", default=[], help="parts to (re-)run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the learning part")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=Path("runs/online_algorithms"))
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--check", action="store_true", help="re-run one cell's alignment")
    parser.add_argument("--tiny", action="store_true", help="the code paths at toy sizes (tests)")
    args = parser.parse_args()
    if args.tiny:
        _make_tiny()
    path = args.out / "results.json"
    if args.check:
        run_check(path, remeasure, CHECK_TOLERANCES)
    record = json.loads(path.read_text()) if path.exists() else {}
    from lstm_jax.training.provenance import record_provenance

    for part in ("alignment", "learning", "cost"):
        if part in record and part not in args.parts:
            continue
        start, cpu = time.perf_counter(), time.process_time()
        if part == "alignment":
            record[part] = alignment()
        elif part == "learning":
            variant = "tiny" if args.tiny else None
            record[part] = learning(args.seeds, args.runs, args.workers, variant)
        else:
            record[part] = cost((4,), 5) if args.tiny else cost()
        record[part]["provenance"] = {
            **record_provenance(),
            "wall_s": time.perf_counter() - start,
            "cpu_s": time.process_time() - cpu,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))
    from plots import plot_all

    plot_all(record, args.out)


def _make_tiny() -> None:
    """`--tiny`: one seed, the Elman cell, 2 BPTT updates, the copy suite's tiny variant."""
    global SEEDS, CHECKPOINTS, CELLS, UORO_DRAWS, SUITES
    SEEDS, CHECKPOINTS, UORO_DRAWS = 1, (0, 2), 2
    CELLS = {"Elman": CELLS["Elman"]}
    SUITES = {"copy, online": SUITES["copy, online"]}


# `--check`: the cosines of the deterministic algorithms to 1e-5 absolute (cosines lie in
# [-1, 1]; a near-zero one, e.g. random-feedback e-prop's -0.0011481, cannot keep 5
# significant digits through another machine's rounding: it re-ran at -0.0011482)
CHECK_TOLERANCES = {"*.cos@0": Tolerance(abs=1e-5)}


def remeasure(record: dict[str, Any]) -> Remeasured:
    """Re-runs the alignment of the first seed's initial weights for the Elman RNN: the
    cosine of every algorithm but UORO (a random estimate), recorded and now."""
    if "alignment" not in record:
        raise CheckError("results.json has no alignment part to check")
    global SEEDS, CHECKPOINTS, CELLS
    SEEDS, CHECKPOINTS = record["alignment"]["seeds"], (0,)
    CELLS = {"Elman": CELLS["Elman"]}

    def elman(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        chosen = (r for r in rows if r["cell"] == "Elman" and r["algorithm"] != "uoro")
        return {r["algorithm"]: r for r in chosen}

    recorded = elman(record["alignment"]["rows"])
    return Remeasured("Elman alignment at initialisation", recorded, elman(alignment()["rows"]))


if __name__ == "__main__":
    main()
