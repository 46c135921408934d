"""Many runs of one config (settings × seeds) in parallel worker processes.

The reproductions of issue 6 are grids: a few settings of one config (FULL vs TRUNCATED, a
variant, a reset flag), each over several seeds. The nets are small, so one XLA CPU process keeps
about one core busy; `workers` processes side by side use the machine. Workers are *spawned*
(JAX is not fork-safe), and each run is an ordinary `train.train` run in its own directory.

    runs = grid({"full": ("model.gradient=full",), "truncated": ()}, seeds=range(5))
    outcomes = sweep("configs/adding_1997.yaml", runs, out_dir="runs/sweep", workers=2)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import re
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, NamedTuple

from lstm_jax.training.provenance import (
    ALLOW_DIRTY,
    DirtyTreeError,
    record_provenance,
    require_clean,
)


class Run(NamedTuple):
    """One run of a sweep: `overrides` are `--set` strings applied after the config variant."""

    label: str  # the setting, e.g. "truncated"
    seed: int
    overrides: tuple[str, ...] = ()


class Outcome(NamedTuple):
    """What a run ended with (`summary.json`), plus its test curve and, if asked, its trace."""

    label: str
    seed: int
    status: str  # "solved" | "budget" | "diverged"
    steps: int  # updates applied
    sequences: int  # steps × batch size
    solved_at_step: int | None  # first evaluation that met the task's criterion
    solved_at_sequences: int | None
    final_eval: dict[str, float]
    evals: list[tuple[int, dict[str, float]]]  # (step, test metrics) at every evaluation
    grad_norms: list[float] | None  # global gradient norm per step, when `keep_grad_norms`
    wall_s: float  # this call (a run read back from its directory: the read-back only)
    out_dir: str
    overrides: tuple[str, ...] = ()  # the run's `--set` strings (what `check_report` re-runs)
    train_wall_s: float | None = None  # the run's own training time (summary.json)
    train_cpu_s: float | None = None
    commit: str | None = None  # the git commit that trained it


def grid(settings: Mapping[str, Sequence[str]], seeds: Iterable[int]) -> list[Run]:
    """Every setting × every seed, settings outermost: `{label: overrides}` → `[Run]`."""
    seeds = list(seeds)
    return [
        Run(label, seed, (*overrides, f"training.seed={seed}"))
        for label, overrides in settings.items()
        for seed in seeds
    ]


def run_dir(out_dir: str | Path, run: Run) -> Path:
    """`out_dir/<label>-seed<seed>`, the label reduced to a safe file name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", run.label).strip("_") or "run"
    return Path(out_dir) / f"{safe}-seed{run.seed}"


def run_one(
    config_path: str, variant: str | None, run: Run, out_dir: str, keep_grad_norms: bool
) -> Outcome:
    """Trains one run into `run_dir(out_dir, run)`; a diverged run is an outcome, not an error.
    An existing finished run directory is read back instead of retrained."""
    from lstm_jax.training import checkpoint
    from lstm_jax.training.config import load  # in the worker: the parent may not need jax
    from lstm_jax.training.trainer import METRICS, Diverged, train

    out = run_dir(out_dir, run)
    start = time.perf_counter()
    config = load(config_path, variant, run.overrides)
    if finished(out):
        # read back through the schema, so fields added since (at their defaults) still match
        if load(out / "config.yaml") != config:
            raise FileExistsError(
                f"{out} holds a finished run of another config than {config_path} "
                f"{' '.join(run.overrides)}; remove it or choose another runs directory"
            )
    else:
        # a diverged run is an outcome: train() wrote summary.json with status "diverged";
        # a run cut short (a checkpoint; no summary, or an "interrupted" one) continues
        resume = checkpoint.exists(out)
        with contextlib.suppress(Diverged):
            train(config, out, resume=resume, progress=False, log=lambda _: None)
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / METRICS).read_text().splitlines() if line]
    batch = summary["sequences"] // max(summary["steps"], 1)
    solved = summary["solved_at_step"]
    return Outcome(
        label=run.label,
        seed=run.seed,
        status=summary["status"],
        steps=summary["steps"],
        sequences=summary["sequences"],
        solved_at_step=solved,
        solved_at_sequences=None if solved is None else solved * batch,
        final_eval=summary["final_eval"] or {},
        evals=[(r["step"], r["eval"]) for r in records if "eval" in r],
        grad_norms=[r["grad_norm"] for r in records if "grad_norm" in r]
        if keep_grad_norms
        else None,
        wall_s=time.perf_counter() - start,
        out_dir=str(out),
        overrides=tuple(run.overrides),
        train_wall_s=summary.get("train_wall_s"),
        train_cpu_s=summary.get("train_cpu_s"),
        commit=(summary.get("provenance") or {}).get("commit"),
    )


def finished(out: Path) -> bool:
    """Whether the run directory `out` holds a run that ended (solved, budget or diverged);
    an interrupted run is not finished: the sweep resumes it.

    >>> import json, tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = (out / "summary.json").write_text(json.dumps({"status": "interrupted"}))
    >>> finished(out)
    False
    """
    summary = out / "summary.json"
    return summary.exists() and json.loads(summary.read_text()).get("status") != "interrupted"


def sweep(
    config_path: str | Path,
    runs: Sequence[Run],
    *,
    out_dir: str | Path,
    variant: str | None = None,
    workers: int = 2,
    keep_grad_norms: bool = False,
    log: Callable[[str], None] = print,
) -> list[Outcome]:
    """Trains every run of `runs` (in `workers` spawned processes; 1 = in this process) and
    returns their outcomes in the order of `runs`. Runs already finished in `out_dir` are read
    back, so an interrupted sweep continues where it stopped."""
    from lstm_jax.training.config import load

    labels = [(r.label, r.seed) for r in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"runs must have distinct (label, seed) pairs, got {labels}")
    for run in runs:  # every config error before any process starts
        load(config_path, variant, run.overrides)
    if not all(finished(run_dir(out_dir, run)) for run in runs):
        require_clean(f"training runs into {out_dir}")  # before hours of training, not after
    args = [(str(config_path), variant, run, str(out_dir), keep_grad_norms) for run in runs]
    outcomes: dict[int, Outcome] = {}
    if workers <= 1:
        for i, a in enumerate(args):
            outcomes[i] = run_one(*a)
            log(_line(outcomes[i], len(outcomes), len(runs)))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {pool.submit(run_one, *a): i for i, a in enumerate(args)}
            for future in as_completed(futures):
                outcomes[futures[future]] = future.result()
                log(_line(outcomes[futures[future]], len(outcomes), len(runs)))
    return [outcomes[i] for i in range(len(runs))]


def _line(o: Outcome, done: int, total: int) -> str:
    at = "" if o.solved_at_step is None else f" at step {o.solved_at_step}"
    return f"[{done}/{total}] {o.label} seed {o.seed}: {o.status}{at} ({o.wall_s:.0f} s)"


def to_json(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Outcomes as JSON-ready dicts (run directories left out: they are machine-local)."""
    return [{k: v for k, v in o._asdict().items() if k != "out_dir"} for o in outcomes]


def _rounded(value: Any) -> Any:
    """`value` with every float (in nested dicts and lists) rounded to 5 significant digits."""
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


class Stats(NamedTuple):
    """Sequences-to-success of one setting over its seeds (unsolved runs count as infinite)."""

    runs: int
    solved: int
    diverged: int
    median: float  # over all runs; inf when half or more did not solve
    mean: float  # over the solved runs (the 1997 paper's statistic); inf if none solved
    low: float  # fastest solved run (inf if none)
    high: float  # slowest run (inf if any did not solve)


def stats(outcomes: Sequence[Outcome]) -> dict[str, Stats]:
    """`{label: Stats}` in first-seen label order."""
    by_label: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_label.setdefault(o.label, []).append(o)
    result = {}
    for label, group in by_label.items():
        seqs = sorted(
            float("inf") if o.solved_at_sequences is None else float(o.solved_at_sequences)
            for o in group
        )
        n = len(seqs)
        median = seqs[n // 2] if n % 2 else (seqs[n // 2 - 1] + seqs[n // 2]) / 2
        result[label] = Stats(
            runs=n,
            solved=sum(o.solved_at_step is not None for o in group),
            diverged=sum(o.status == "diverged" for o in group),
            median=median,
            mean=statistics.fmean(done)
            if (done := [x for x in seqs if x < math.inf])
            else math.inf,
            low=seqs[0],
            high=seqs[-1],
        )
    return result


def wilson_interval(solved: int, runs: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z = 1.96) of a success rate seen as `solved` of
    `runs`: what a published percentage can be compared with at this many runs."""
    if runs == 0:
        return 0.0, 1.0
    p = solved / runs
    centre = (p + z * z / (2 * runs)) / (1 + z * z / runs)
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / (1 + z * z / runs)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_text(solved: int, runs: int) -> str:
    """`9/10 (60-98%)`: the count and its 95% Wilson interval."""
    low, high = wilson_interval(solved, runs)
    return f"{solved}/{runs} ({100 * low:.0f}-{100 * high:.0f}%)"


def fmt_count(x: float) -> str:
    """12,300 / 1.2M style; '-' for infinity (not solved)."""
    if x == float("inf"):
        return "-"
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x:,.0f}"


def table(outcomes: Sequence[Outcome], metric: str | None = None, title: str = "") -> str:
    """A text table, one row per setting: runs solved (with the 95% Wilson interval of the
    rate), sequences to success (mean of the solved runs, median, fastest, slowest; '-' = not
    solved within the budget) and the median final test `metric`."""
    head = (
        f"{'setting':<24}{'solved (95% CI)':>18}{'mean*':>11}{'median':>11}{'fastest':>11}"
        f"{'slowest':>11}"
    )
    if metric:
        head += f"  {'final ' + metric + ' (median)':>30}"
    lines = [title, head] if title else [head]
    for label, s in stats(outcomes).items():
        row = (
            f"{label:<24}{rate_text(s.solved, s.runs):>18}{fmt_count(s.mean):>11}"
            f"{fmt_count(s.median):>11}{fmt_count(s.low):>11}{fmt_count(s.high):>11}"
        )
        if metric:
            values = [o.final_eval.get(metric, math.nan) for o in outcomes if o.label == label]
            row += f"  {statistics.median(values):>30.4g}"
        lines.append(row)
    lines.append("* mean over the solved runs; '-' = not solved within the budget")
    if any(s.diverged for s in stats(outcomes).values()):
        lines.append(
            "diverged: "
            + ", ".join(f"{k} {s.diverged}" for k, s in stats(outcomes).items() if s.diverged)
        )
    return "\n".join(lines)


class Suite(NamedTuple):
    """One row group of a comparison (a task, usually): a config, the overrides every setting
    shares, the final test metric its table reports."""

    config: str
    overrides: tuple[str, ...] = ()
    metric: str | None = None


def compare(
    suites: Mapping[str, Suite],
    settings: Mapping[str, Sequence[str]],
    *,
    seeds: int,
    runs_dir: str | Path,
    variant: str | None = None,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> dict[str, list[Outcome]]:
    """Every suite × setting × seed (`{suite: outcomes}`); prints one `table` per suite."""
    results = {}
    for name, suite in suites.items():
        runs = grid({k: (*suite.overrides, *v) for k, v in settings.items()}, range(seeds))
        results[name] = sweep(
            suite.config,
            runs,
            variant=variant,
            out_dir=Path(runs_dir) / re.sub(r"[^A-Za-z0-9_.-]+", "_", name),
            workers=workers,
            log=log,
        )
        log(table(results[name], suite.metric, title=f"\n{name} ({suite.config}), {seeds} seeds"))
    return results


def report_provenance(
    results: Mapping[str, Sequence[Outcome]], variant: str | None
) -> dict[str, Any]:
    """A report's provenance: the commit and package versions writing it, the config variant,
    the commits that trained its runs (a run read back keeps its own) and their summed training
    wall and CPU time."""
    every = [o for outcomes in results.values() for o in outcomes]
    dirty = sorted({o.out_dir for o in every if str(o.commit).endswith("+dirty")})
    if dirty and os.environ.get(ALLOW_DIRTY) != "1":
        raise DirtyTreeError(
            f"{len(dirty)} of {len(every)} runs were trained from a checkout with uncommitted "
            f"changes (e.g. {dirty[0]}); re-train them from a clean tree, or set "
            f"{ALLOW_DIRTY}=1 to record them anyway"
        )
    return {
        **record_provenance("writing results.json"),
        "variant": variant,
        "commits_of_runs": sorted({str(o.commit) for o in every}),
        "train_wall_s": sum(o.train_wall_s or 0.0 for o in every),
        "train_cpu_s": sum(o.train_cpu_s or 0.0 for o in every),
    }


def write_report(
    results: Mapping[str, Sequence[Outcome]],
    suites: Mapping[str, Suite],
    out: str | Path,
    *,
    title: str,
    unit: str = "training sequences",
    variant: str | None = None,
    analysis: Mapping[str, Any] | None = None,
) -> None:
    """`results.json` (provenance, every outcome and the per-setting stats) and
    `sequences_to_success.png` (one panel per task, one point per run) in `out`.

    The provenance names the commit and package versions writing the report, the commits that
    trained the runs (a run read back from its directory keeps its own), the config variant,
    and the runs' summed training wall and CPU time. `analysis` (e.g. paired tests) is stored
    as it is under its own key."""
    from lstm_jax.reporting.plotting import plot_strips

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"provenance": report_provenance(results, variant)}
    record["suites"] = {
        name: {
            "config": suites[name].config,
            "overrides": list(suites[name].overrides),
            "stats": {k: s._asdict() for k, s in stats(outcomes).items()},
            "runs": to_json(outcomes),
        }
        for name, outcomes in results.items()
    }
    if analysis:
        record["analysis"] = dict(analysis)
    # compact, metrics to 5 significant digits: a committed record, not a checkpoint
    (out / "results.json").write_text(json.dumps(_rounded(record)))
    panels = {}
    for name, outcomes in results.items():
        panel: dict[str, list[float]] = {}
        for o in outcomes:
            seqs = math.inf if o.solved_at_sequences is None else float(o.solved_at_sequences)
            panel.setdefault(o.label, []).append(seqs)
        panels[name] = panel
    plot_strips(panels, out / "sequences_to_success.png", title=title, ylabel=unit)


def check_report(path: str | Path, *, log: Callable[[str], None] = print) -> bool:
    """Re-trains the cheapest recorded run of the `results.json` at `path` (fewest steps) in a
    temporary directory and compares it with the record: status, steps and the step it was
    solved at exactly, the final test metrics within `CHECK_RTOL` (counts: within
    `CHECK_COUNT_FRACTION` of the test sequences). True if it matches (each experiment
    script's `--check`). Exact equality would hold on one machine only: float rounding
    differs between CPUs and XLA's code generation, and training an RNN amplifies it (the
    exploding-gradients check run ends at loss 0.35597 / 6 wrong on one machine, 0.35583 / 6
    and 0.3545 / 4 of 10,000 on two others, at the same code)."""
    import tempfile

    from lstm_jax.training.config import load
    from lstm_jax.training.trainer import Diverged, train

    record = json.loads(Path(path).read_text())
    if "provenance" not in record or "suites" not in record:
        log(
            f"{path} was written before results recorded their provenance and each run's "
            "overrides, so it cannot be re-checked; re-run the experiment to write one that can"
        )
        return False
    variant = record["provenance"]["variant"]
    candidates = [
        (run["steps"], name, run)
        for name, suite in record["suites"].items()
        for run in suite["runs"]
    ]
    if not candidates:
        raise ValueError(f"{path} records no runs")
    _, name, run = min(candidates, key=lambda c: c[0])
    config_path = record["suites"][name]["config"]
    config = load(config_path, variant, tuple(run["overrides"]))
    log(f"re-running {name} / {run['label']} seed {run['seed']} ({run['steps']} steps)")
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.suppress(Diverged):
            train(config, Path(tmp) / "check", progress=False, log=lambda _: None)
        summary = json.loads((Path(tmp) / "check" / "summary.json").read_text())
    got = {
        "status": summary["status"],
        "steps": summary["steps"],
        "solved_at_step": summary["solved_at_step"],
        "final_eval": _rounded(summary["final_eval"] or {}),
    }
    want = {key: _rounded(run[key]) for key in got}
    matches = []
    for key in got:
        same = _close(want[key], got[key]) if key == "final_eval" else got[key] == want[key]
        matches.append(same)
        log(f"  {key}: recorded {want[key]}, now {got[key]}{'' if same else '   <- differs'}")
    return all(matches)


CHECK_RTOL = 0.01  # final test metrics, relative
CHECK_COUNT_FRACTION = 0.001  # counts ("wrong"): of the test set's sequences


def _close(want: dict[str, float], got: dict[str, float]) -> bool:
    """The recorded and re-run final test metrics agree, to `CHECK_RTOL` or, for the count
    of wrong sequences, to `CHECK_COUNT_FRACTION` of the test set."""
    if set(want) != set(got):
        return False
    slack = CHECK_COUNT_FRACTION * float(want.get("sequences", 0))
    return all(
        abs(got[k] - want[k]) <= (slack if k == "wrong" else CHECK_RTOL * abs(want[k]))
        for k in want
    )


def experiment_parser(doc: str, here: Path, runs: str, seeds: int) -> argparse.ArgumentParser:
    """The options every experiment script shares: `--seeds --workers --variant --out --runs
    --check`; `here` is the script's folder (the default `--out`)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variant", help="a variant of every config, e.g. tiny (the tests)")
    parser.add_argument("--out", type=Path, default=here, help="where results.json goes")
    parser.add_argument("--runs", type=Path, default=Path(runs), help="run directories (cache)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="re-run the cheapest run recorded in --out/results.json and compare; exit 1 if "
        "it differs",
    )
    return parser


def run_check(args: argparse.Namespace) -> None:
    """`--check`: exits 0 when the re-run matches `results.json`, 1 when it does not."""
    raise SystemExit(0 if check_report(args.out / "results.json") else 1)
