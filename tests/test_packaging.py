"""The package works outside its repository: a wheel built from the package's own files ships
the named configs, and `lstm-jax list` and `lstm-jax run NAME` work from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def _build_wheel(tmp: Path) -> Path:
    """A wheel built from a copy holding only what a source distribution needs (no `configs/`
    link, no tests or experiments), so nothing of the checkout can leak into it."""
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "lstm_jax", source / "lstm_jax", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*pip_wheel, "-q", "-w", str(tmp / "dist"), str(source)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp / "dist").glob("lstm_jax-*.whl")
    return wheel


def test_wheel_runs_named_configs_from_any_directory(tmp_path):
    wheel = _build_wheel(tmp_path)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the installed copy comes first on the path, ahead of the editable checkout
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(site / "bin" / "lstm-jax"), *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    listing = run("list")
    assert listing.returncode == 0, listing.stderr
    assert str(site / "lstm_jax" / "configs") in listing.stdout
    shipped = {p.stem for p in (ROOT / "lstm_jax" / "configs").glob("*.yaml")}
    assert {line.split()[0] for line in listing.stdout.splitlines()[1:]} == shipped
    done = run(
        "run", "quickstart", "--variant", "tiny", "--set", "training.steps=4", "--no-progress"
    )
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "runs" / "quickstart-tiny" / "summary.json").is_file()
    where = subprocess.run(
        [sys.executable, "-c", "import lstm_jax; print(lstm_jax.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site)  # the wheel ran, not the checkout
    missing = run("run", "no_such_config")
    assert missing.returncode == 2 and "`lstm-jax list` shows the names" in missing.stderr
