"""Running a sweep's grid: each run trained in its own directory by `trainer.train`, in
`workers` spawned processes (JAX is not fork-safe; one small net keeps about one core busy),
a run already finished there read back instead of trained again."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from lstm_jax.training.provenance import require_clean
from lstm_jax.training.sweeps.grid import Run, Suite, grid, run_dir, safe_name
from lstm_jax.training.sweeps.outcome import Outcome, read_outcome
from lstm_jax.training.sweeps.summary import table


def run_one(
    config_path: str, variant: str | None, run: Run, out_dir: str, keep_grad_norms: bool
) -> Outcome:
    """Trains one run into `run_dir(out_dir, run)`; a diverged run is an outcome, not an error.
    An existing finished run directory is read back instead of retrained.

    >>> run_one("configs/quickstart.yaml", "tiny", Run("a", 0), "runs/s", False)  # doctest: +SKIP
    Outcome(label='a', seed=0, status='budget', ...)
    """
    from lstm_jax.training import checkpoint
    from lstm_jax.training.config import load  # in the worker: the parent may not need jax
    from lstm_jax.training.trainer import Diverged, train

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
    return read_outcome(out, run, keep_grad_norms, time.perf_counter() - start)


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
    back, so an interrupted sweep continues where it stopped.

    >>> runs = grid({"full": ("model.gradient=full",), "truncated": ()}, seeds=range(5))
    >>> sweep("configs/adding_1997.yaml", runs, out_dir="runs/s", workers=2)  # doctest: +SKIP
    [Outcome(label='full', seed=0, ...), ...]
    """
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
    """Every suite × setting × seed (`{suite: outcomes}`); prints one `table` per suite.

    >>> compare({"adding": Suite("configs/adding_1997.yaml")}, {"sgd": ()}, seeds=3,
    ...         runs_dir="runs/cmp")  # doctest: +SKIP
    {'adding': [Outcome(label='sgd', seed=0, ...), ...]}
    """
    results = {}
    for name, suite in suites.items():
        runs = grid({k: (*suite.overrides, *v) for k, v in settings.items()}, range(seeds))
        results[name] = sweep(
            suite.config,
            runs,
            variant=variant,
            out_dir=Path(runs_dir) / safe_name(name),
            workers=workers,
            log=log,
        )
        log(table(results[name], suite.metric, title=f"\n{name} ({suite.config}), {seeds} seeds"))
    return results
