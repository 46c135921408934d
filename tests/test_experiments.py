"""Each experiment script's code path, end to end on its configs' tiny variants (seconds, not
the minutes of the real runs, whose outputs are committed beside the scripts)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import jax
import numpy as np
import pytest
from conftest import chorales_cache

from lstm_jax.training import load_run

ROOT = Path(__file__).resolve().parents[1]


class Done(NamedTuple):
    """What `python path args` would leave: its exit code and output."""

    returncode: int
    stdout: str
    stderr: str


def _run(path: str, *args: str) -> Done:
    """Runs the script `path` with `args` as `python path args` from the repository root would,
    but in this process: its `main` under that argv and working directory, output captured.
    (A subprocess spends seconds importing JAX and compiling what this worker has compiled.)
    Its folder leads `sys.path` while it runs, as under python (scripts import the one beside
    them); the process-wide setting a script changes, `jax_enable_x64`, is restored afterwards."""
    x64, argv, folder = jax.config.jax_enable_x64, sys.argv, str((ROOT / path).parent)
    stdout, stderr = io.StringIO(), io.StringIO()
    sys.argv, sys.path = [path, *args], [folder, *sys.path]
    try:
        with contextlib.chdir(ROOT), redirect_stdout(stdout), redirect_stderr(stderr):
            _module(path).main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except Exception:  # a script that crashes: its traceback is the message, as from python
        stderr.write(traceback.format_exc())
        code = 1
    finally:
        sys.argv = argv
        sys.path.remove(folder)
        jax.config.update("jax_enable_x64", x64)
    return Done(code, stdout.getvalue(), stderr.getvalue())


def _script(path: str, tmp_path: Path, *args: str) -> dict:
    """Runs `path` with `args` in the repository root; returns its results.json."""
    done = _run(path, *args, "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "out" / "results.json").read_text())


def _module(path: str) -> ModuleType:
    """The experiment script at `path` imported as a module (its `main` not run)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_command(script: str, out: Path) -> Done:
    return _run(script, "--check", "--out", str(out))


@pytest.mark.slow  # re-trains configs that test_train.py trains; run with -m slow
def test_vanishing_gradients(tmp_path):
    """All five setups, one seed, 4 steps, probed every 2 (a second seed is the same code)."""
    results = _script(
        "experiments/vanishing_gradients/vanishing.py",
        tmp_path,
        *("--variant", "tiny", "--steps", "4", "--probe-every", "2", "--seeds", "1"),
    )
    assert results["provenance"]["cpu_s"] > 0 and results["args"]["steps"] == 4
    results = results["runs"]
    assert [r["seed"] for r in results] == [0] * 5
    assert [r["setup"] for r in results[:5]] == [
        "Elman RNN",
        "GRU",
        "LSTM bias 0",
        "LSTM bias 1",
        "LSTM chrono",
    ]
    assert [h["step"] for h in results[0]["history"]] == [0, 2, 4]
    lstm = results[3]["history"][-1]
    assert set(lstm["terms"]) == {"A", "B", "C", "D", "P"} and len(lstm["forget_product"]) == 5
    for png in ("per_lag.png", "per_lag_truncated.png", "terms.png"):
        assert (tmp_path / "out" / png).is_file()


@pytest.mark.slow  # re-trains configs that test_train.py trains; run with -m slow
def test_exploding_gradients(tmp_path):
    """One seed of every initialisation x method (and our extra rows) at one length; every run
    logs its gradient norms. (The sweep's --check is tested in test_adding_1997.)"""
    results = _script(
        "experiments/exploding_gradients/exploding.py",
        tmp_path,
        *("--variant", "tiny", "--seeds", "1", "--workers", "1", "--lengths", "20"),
        *("--runs", str(tmp_path / "r")),
    )
    assert results["provenance"]["variant"] == "tiny"
    suites = results["suites"]
    assert set(suites) == {"temporal order T=20"}
    runs = suites["temporal order T=20"]["runs"]
    paper = [f"{i}, {m}" for i in ("sigmoid", "basic tanh", "smart tanh") for m in METHODS]
    assert [r["label"] for r in runs] == [*paper, *(f"R=2 orth (ours), {m}" for m in METHODS[:2])]
    for run in runs:
        assert run["steps"] == 10 or run["status"] == "diverged"
        assert run["grad_norm"]["max"] > 0
        assert len(run["grad_norm"]["trace_max_per_50_steps"]) == 1
        assert "task.options.length=20" in run["overrides"]
    by_label = {r["label"]: r for r in runs}
    # Ω changes the gradient (its norm), clipping alone does not at these small norms
    assert by_label["basic tanh, SGD-CR"]["grad_norm"] != by_label["basic tanh, SGD-C"]["grad_norm"]
    assert by_label["basic tanh, SGD"]["grad_norm"] == by_label["basic tanh, SGD-C"]["grad_norm"]
    assert (tmp_path / "out" / "grad_norms.png").is_file()


METHODS = ("SGD", "SGD-C", "SGD-CR")


def _check_report(results: dict, tasks: set[str], settings: list[str], seeds: int) -> None:
    provenance = results["provenance"]
    assert provenance["variant"] == "tiny" and provenance["versions"]["jax"]
    assert provenance["train_cpu_s"] > 0 and provenance["commits_of_runs"]
    results = results["suites"]
    assert set(results) == tasks
    for task in results.values():
        assert list(task["stats"]) == settings
        assert [(r["label"], r["seed"]) for r in task["runs"]] == [
            (s, seed) for s in settings for seed in range(seeds)
        ]
        assert all(r["status"] in ("solved", "budget") and r["evals"] for r in task["runs"])


@pytest.mark.slow  # re-trains configs that test_train.py trains; run with -m slow
def test_truncated_vs_full(tmp_path):
    results = _script(
        "experiments/truncated_vs_full/truncated_vs_full.py",
        tmp_path,
        *("--variant", "tiny", "--seeds", "2", "--workers", "1", "--runs", str(tmp_path / "r")),
        *("--tasks", "temporal order 6a"),
    )
    _check_report(results, {"temporal order 6a"}, ["truncated", "full"], 2)
    # the two modes are different runs: different weights (10 tiny SGD steps move the test
    # metrics by less than their 5 recorded digits)
    runs = tmp_path / "r" / "temporal_order_6a"
    for seed in (0, 1):
        truncated, full = (
            load_run(runs / f"{mode}-seed{seed}").params for mode in ("truncated", "full")
        )
        assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, truncated, full)))
    assert (tmp_path / "out" / "sequences_to_success.png").is_file()


def test_adding_1997(tmp_path):
    results = _script(
        "experiments/adding_1997/adding_1997.py",
        tmp_path,
        *("--variant", "tiny", "--seeds", "1", "--seeds-500", "1", "--seeds-sigmoid", "1"),
        *("--workers", "1"),
        *("--runs", str(tmp_path / "r")),
    )
    _check_report(
        {**results, "suites": {"adding T=100": results["suites"]["adding T=100"]}},
        {"adding T=100"},
        ["sigmoid output", "linear output"],
        1,
    )
    _check_report(
        {**results, "suites": {"adding T=500": results["suites"]["adding T=500"]}},
        {"adding T=500"},
        ["linear output"],
        1,
    )
    runs = [r for t in results["suites"].values() for r in t["runs"]]
    assert [r["final_eval"]["sequences"] for r in runs] == [64.0, 64.0, 64.0]
    assert runs[0]["final_eval"] != runs[1]["final_eval"]  # sigmoid and linear outputs differ
    # --check re-trains the cheapest recorded run and finds the same figures
    done = _check_command("experiments/adding_1997/adding_1997.py", tmp_path / "out")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "differs" not in done.stdout
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    for run in record["suites"]["adding T=100"]["runs"]:
        run["final_eval"]["mse"] *= 1.05  # a figure the code no longer produces (tolerance 1%)
    (tmp_path / "out" / "results.json").write_text(json.dumps(record))
    done = _check_command("experiments/adding_1997/adding_1997.py", tmp_path / "out")
    assert done.returncode == 1 and "final_eval" in done.stdout and "differs" in done.stdout


@pytest.mark.slow  # re-trains configs that test_train.py trains; run with -m slow
def test_continual_reber(tmp_path):
    """The paper suite and the pilots (tiny, one seed each), then `failures.py` over their runs.
    (The modern suite is the same code on `configs/continual_reber.yaml`, whose tiny variant
    `test_train.py` trains.)"""
    results = _script(
        "experiments/continual_reber/continual_reber.py",
        tmp_path,
        *("--variant", "tiny", "--seeds", "1", "--seeds-modern", "0", "--pilots", "1"),
        *("--workers", "1", "--runs", runs := str(tmp_path / "r")),
    )
    paper = "continual Reber, Gers et al. 2000 protocol"
    suites = results["suites"]
    _check_report(
        results,
        {paper},
        ["no forget gate", "forget gate", "forget gate, decay", "no forget gate, reset"],
        1,
    )
    pilots = json.loads((tmp_path / "out" / "pilots" / "results.json").read_text())
    (suite,) = pilots["suites"].values()  # their own report, eleven settings
    assert len({r["label"] for r in suite["runs"]}) == 11
    done = _run("experiments/continual_reber/failures.py", "--runs", runs)
    assert done.returncode == 0, done.stderr
    unsolved = {r["label"] for r in suites[paper]["runs"] if r["status"] != "solved"}
    assert sum(" unsolved: " in line for line in done.stdout.splitlines()) == len(unsolved)
    done = _run("experiments/continual_reber/streams.py", "--runs", runs)
    assert done.returncode == 0, done.stderr
    counted = [line for line in done.stdout.splitlines() if not line.startswith(" ")]
    assert len(counted) == 4  # the paper suite's four settings, all under reset_on_error
    # a net trained and tested with max_error = 0.7, re-tested by the 0.5 threshold: a symbol
    # right by the threshold is within 0.5 < 0.7 of its target, so no more symbols are right
    failures = _module("experiments/continual_reber/failures.py")
    (run,) = Path(runs).glob("*/forget_gate_squared_error*-seed0")
    loose = json.loads((run / "summary.json").read_text())["final_eval"]
    strict = failures.retest_at_threshold(run)
    assert strict.keys() == loose.keys() - {"loss"}
    assert strict["symbols_correct"] <= loose["symbols_correct"]
    assert strict["symbols_before_first_error"] <= loose["symbols_before_first_error"]


@pytest.mark.slow  # 18 tiny runs, about a minute on 2 cores; run with -m slow
def test_greff_variants(tmp_path):
    results = _script(
        "experiments/greff_variants/greff_variants.py",
        tmp_path,
        *("--variant", "tiny", "--seeds", "1", "--workers", "1", "--runs", str(tmp_path / "r")),
        *("--tasks", "embedded Reber", "--rates", "0.01", "0.03"),
    )
    variants = ["vanilla", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR"]
    labels = [f"{v}, lr {r}" for v in variants for r in ("0.01", "0.03")]
    _check_report(results, {"embedded Reber"}, labels, 1)


@pytest.mark.slow  # 18 tiny runs and 9 re-runs on the test split, about a minute on 2 cores
def test_greff_variants_on_the_chorales(tmp_path, monkeypatch):
    """The scored path: each run's best validation epoch, each variant's best rate, its seeds
    re-trained on the test split to that step (the script checks they train alike)."""
    chorales_cache(monkeypatch, tmp_path / "cache")
    results = _script(
        "experiments/greff_variants/greff_variants.py",
        tmp_path,
        *("--variant", "tiny", "--seeds", "1", "--workers", "1", "--runs", str(tmp_path / "r")),
        *("--tasks", "Bach chorales", "--rates", "0.001", "0.01"),
    )
    suites = results["suites"]
    assert set(suites) == {"Bach chorales", "Bach chorales, test"}
    search = {r["label"]: r for r in suites["Bach chorales"]["runs"]}
    tested = suites["Bach chorales, test"]["runs"]
    assert len(search) == 18 and len(tested) == 9
    for run in tested:
        chosen = search[run["label"].removesuffix(", test")]
        best_step = min(chosen["evals"], key=lambda e: (e[1]["nll"], e[0]))[0]
        assert run["steps"] == best_step and "task.options.split=test" in run["overrides"]
        # the test split is another set of chorales: another NLL at the same step
        assert run["final_eval"]["nll"] != dict(chosen["evals"])[best_step]["nll"]
    assert (tmp_path / "out" / "test_nll.png").is_file()


def test_gradient_flow(tmp_path):
    """The init-time script at T=12, H=4: the truncated error on c equals the forget-gate closed
    form (float64), and every plot is written."""
    results = _script(
        "experiments/gradient_flow/gradient_flow.py",
        tmp_path,
        *("--seq-len", "12", "--hidden", "4", "--inputs", "3", "--batch", "2"),
    )
    assert results["truncated_c_vs_closed_form_max_relative_gap"] < 1e-10
    assert "out" not in results["args"]  # no local paths in committed results
    assert set(results["term_means_over_time"]) == {f"‖{k}_t‖₂" for k in "ABCD"}
    for png in ("per_lag_h.png", "per_lag_c.png", "forget_product.png", "jacobian_terms.png"):
        assert (tmp_path / "out" / png).is_file()
    assert results["provenance"]["versions"]["jax"] and results["provenance"]["cpu_s"] > 0


def test_slstm_gradient_flow(tmp_path):
    """The sLSTM vs LSTM script at T=12, H=4 without trained nets: the truncated sLSTM error on
    c equals its closed form, full and truncated curves for every setup, both plots."""
    done = _run(
        "experiments/gradient_flow/slstm_vs_lstm.py",
        *("--seq-len", "12", "--hidden", "4", "--heads", "2", "--inputs", "3", "--batch", "2"),
        *("--runs", str(tmp_path / "none"), "--out", str(tmp_path)),
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "slstm_results.json").read_text())
    gaps = results["truncated_c_vs_closed_form_max_relative_gap"]
    assert len(gaps) == 2 and max(gaps.values()) < 1e-10
    assert len(results["per_lag_c"]) == 6 and len(results["per_lag_h"]) == 3
    assert results["trained_nets_final_eval"] == {}  # no runs: said so, left out
    for png in ("slstm_per_lag_h.png", "slstm_per_lag_c.png"):
        assert (tmp_path / png).is_file()


@pytest.mark.slow  # 5 tiny runs in spawned workers, about 17 s on 2 cores; run with -m slow
def test_formal_languages(tmp_path):
    """One modern cell per parallel and recurrent form on both tasks, tiny variant. (The same
    config's tiny variant and the parallel form's trainer path run in test_train.)"""
    results = _script(
        "experiments/xlstm_formal_languages/formal_languages.py",
        tmp_path,
        *("--variant", "tiny", "--seeds", "1", "--workers", "1", "--runs", str(tmp_path / "r")),
        *("--cells", "sLSTM", "minGRU", "--rates", "0.01", "--long-steps", "12"),
        *("--long-cells", "sLSTM"),
    )
    long = "modular arithmetic, 12 steps"
    suites = results["suites"]
    _check_report(
        {**results, "suites": {k: v for k, v in suites.items() if k != long}},
        {"parity", "modular arithmetic"},
        ["sLSTM, lr 0.01", "minGRU, lr 0.01"],
        1,
    )
    assert [(r["label"], r["steps"]) for r in suites[long]["runs"]] == [("sLSTM, lr 0.01", 12)]
    assert (tmp_path / "out" / "scaled_accuracy.png").is_file()


def test_quickstart_per_lag_gradients():
    """The quick-start example prints one row per cell and gradient mode."""
    done = _run("experiments/quickstart/per_lag_gradients.py", "--seq-len", "8")
    assert done.returncode == 0, done.stderr
    assert "truncated" in done.stdout and "full" in done.stdout


@pytest.mark.slow  # every part of the script at toy sizes: about 40 s on 2 cores (CI time)
def test_online_algorithms(tmp_path):
    """Every part at toy sizes: alignment (Elman; RTRL's cosine is 1), learning through
    the trainer (tiny copy), cost. (Its --check: test_scripts_check_their_records, slow.)"""
    results = _script(
        "experiments/online_algorithms/online_algorithms.py",
        tmp_path,
        *("--tiny", "--seeds", "1", "--runs", str(tmp_path / "runs")),
    )
    rows = {(r["cell"], r["algorithm"]): r for r in results["alignment"]["rows"]}
    assert abs(rows[("Elman", "rtrl")]["cos@0"] - 1) < 1e-5
    assert ("Elman", "rflo (random B)") in rows
    runs = results["learning"]["suites"]["copy, online"]["runs"]
    assert len(runs) == 8 and all(r["steps"] == 3 for r in runs)
    assert {r["algorithm"] for r in results["cost"]["rows"]} >= {"BPTT", "rtrl", "uoro"}
    assert results["cost"]["provenance"]["cpu_s"] > 0
    for png in ("alignment.png", "learning.png", "cost.png"):
        assert (tmp_path / "out" / png).is_file()


CHECKED_SCRIPTS = {  # scripts re-measuring their own figures (the sweeps': test_adding_1997)
    "vanishing": (
        "experiments/vanishing_gradients/vanishing.py",
        ("--variant", "tiny", "--steps", "4", "--probe-every", "2", "--seeds", "1"),
    ),
    "gradient_flow": (
        "experiments/gradient_flow/gradient_flow.py",
        ("--seq-len", "12", "--hidden", "4", "--inputs", "3", "--batch", "2"),
    ),
    "online_algorithms": (
        "experiments/online_algorithms/online_algorithms.py",
        ("--tiny", "--seeds", "1"),
    ),
}


@pytest.mark.slow  # each re-runs its script: 10-30 s apiece on 2 cores; run with -m slow
@pytest.mark.parametrize("name", sorted(CHECKED_SCRIPTS))
def test_scripts_check_their_records(tmp_path, name):
    """`--check` recomputes what the script recorded and finds it the same."""
    script, args = CHECKED_SCRIPTS[name]
    extra = ("--runs", str(tmp_path / "runs")) if name == "online_algorithms" else ()
    _script(script, tmp_path, *args, *extra)
    done = _check_command(script, tmp_path / "out")
    assert done.returncode == 0 and "differs" not in done.stdout, done.stdout + done.stderr
