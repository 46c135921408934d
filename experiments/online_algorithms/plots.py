"""The three figures of `online_algorithms.py`, from its results.json record."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def plot_all(record: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "alignment" in record:
        rows = record["alignment"]["rows"]
        cells = list(dict.fromkeys(r["cell"] for r in rows))
        checkpoints = sorted(int(k.split("@")[1]) for k in rows[0] if k.startswith("cos@"))
        fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.6), sharey=True)
        for ax, cell in zip(np.atleast_1d(axes), cells, strict=True):
            mine = [r for r in rows if r["cell"] == cell]
            x = np.arange(len(mine))
            for k, c in enumerate(checkpoints):
                ax.bar(
                    x + (k - 1) * 0.27,
                    [r[f"cos@{c}"] for r in mine],
                    0.27,
                    label=f"after {c} BPTT updates",
                )
            ax.set_xticks(x, [r["algorithm"] for r in mine], rotation=60, ha="right", fontsize=7)
            ax.set_title(cell, fontsize=9)
            ax.axhline(0, color="k", lw=0.5)
        np.atleast_1d(axes)[0].set_ylabel("cosine with the BPTT gradient")
        np.atleast_1d(axes)[0].legend(fontsize=7)
        _save(plt, fig, out / "alignment.png")
    if "learning" in record:
        suites = record["learning"]["suites"]
        fig, axes = plt.subplots(1, len(suites), figsize=(6 * len(suites), 4))
        for ax, (name, suite) in zip(np.atleast_1d(axes), suites.items(), strict=True):
            curves = defaultdict(list)
            for run in suite["runs"]:
                curves[run["label"]].append(
                    [(step, ev[suite["metric"]]) for step, ev in run["evals"]]
                )
            for label, runs in curves.items():
                length = min(len(r) for r in runs)
                steps = [s for s, _ in runs[0][:length]]
                mean = np.mean([[a for _, a in r[:length]] for r in runs], axis=0)
                ax.plot(steps, mean, label=label, ls="--" if label == "snap2" else "-")
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("training chunks (batches of 8 sequences)")
            ax.set_ylabel(f"test {suite['metric']} (mean over seeds)")
        np.atleast_1d(axes)[0].legend(fontsize=7)
        _save(plt, fig, out / "learning.png")
    if "cost" in record:
        rows = record["cost"]["rows"]
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        for name in dict.fromkeys(r["algorithm"] for r in rows):
            mine = [r for r in rows if r["algorithm"] == name]
            hs = [r["hidden"] for r in mine]
            a.loglog(hs, [r["us_per_step"] for r in mine], "o-", label=name)
            if name != "BPTT":
                b.loglog(hs, [r["state_floats"] for r in mine], "o-", label=name)
        a.set_xlabel("H")
        a.set_ylabel("µs per step (one sequence)")
        b.set_xlabel("H")
        b.set_ylabel("state size (floats per sequence)")
        a.legend(fontsize=7)
        _save(plt, fig, out / "cost.png")


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
