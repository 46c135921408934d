"""Before/after: one pass of an earlier git revision of lstm_jax against the working tree's,
timed round-robin in one process.

    python experiments/benchmarks/compare_revisions.py REV [--cells lstm gru rnn]
        [--gradients full truncated] [--impl auto] [--repeats 10]
        [--train-steps quickstart online_algorithms ...]

The machine's speed drifts between runs (experiments/benchmarks/README.md), so a change is
measured against the code before it side by side, not against an old table. `REV`'s
`lstm_jax/` is extracted with `git archive` into a temporary directory as the package
`lstm_jax_at_rev` (its own imports rewritten to it) and imported beside the working tree's.
Prints, per cell, shape and gradient mode, both times and their ratio (new / old); then, per
config of `--train-steps`, one jit-compiled training step of each revision's trainer on the
same batch (the config as shipped, at its own sizes), and their ratio.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import jax
from benchmark import CELLS, SHAPES, interleaved_medians, ours

import lstm_jax

REPO = Path(__file__).resolve().parents[2]
OLD = "lstm_jax_at_rev"


def import_revision(rev: str, into: Path):
    """`lstm_jax` as of git revision `rev`, imported as the package `OLD`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "lstm_jax"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if archive.returncode:
        raise SystemExit(f"git archive {rev!r} failed: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    package = into / OLD
    (into / "lstm_jax").rename(package)
    for path in package.rglob("*.py"):
        text = re.sub(r"\blstm_jax\b", OLD, path.read_text())
        path.write_text(text)
    sys.path.insert(0, str(into))
    return importlib.import_module(OLD)


def training_step(config_name: str, lib):
    """A call of `lib`'s compiled training step on step 1's batch of the shipped config, for
    the trainer of before and after `training.experiment` (the config read by each
    revision's own loader: the new sections and the keys they replaced)."""
    config = importlib.import_module(f"{lib.__name__}.training.config")
    sharding = importlib.import_module(f"{lib.__name__}.training.sharding")
    try:
        built = importlib.import_module(f"{lib.__name__}.training.experiment")
    except ModuleNotFoundError:  # before the learners: build and init_state in the trainer
        built = importlib.import_module(f"{lib.__name__}.training.trainer")
    configs = Path(lib.__file__).parent / "configs"
    cfg = config.load(configs / f"{config_name}.yaml")
    exp = built.build(cfg)
    state = sharding.shard_state(exp, built.init_state(exp))
    t = cfg.training
    batch = sharding.shard_batch(exp, sharding.pad_time(exp.task.batch(t.seed, 0, t.batch_size)))

    def call():
        new, stats = exp.train_step(state, batch)
        jax.block_until_ready((new, stats))

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="a git revision, e.g. a commit hash or HEAD~3")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--gradients", nargs="+", default=["full", "truncated"])
    parser.add_argument("--impl", default="auto", choices=["auto", "fused", "scan"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--train-steps",
        nargs="*",
        default=["quickstart", "online_algorithms", "exploding_gradients"],
        help="shipped configs whose training step is timed (bptt, online, Ω)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = import_revision(args.rev, Path(tmp))
        print(f"old: lstm_jax at {args.rev}; new: the working tree; impl={args.impl!r}")
        print(
            f"{'cell':<6}{'T, B, I, H':<22}{'gradient':<11}{'old ms':>9}{'new ms':>9}{'new/old':>9}"
        )
        for cell_name in args.cells:
            for shape in SHAPES:
                for gradient in args.gradients:
                    runs = {
                        name: ours(cell_name, shape, gradient, args.impl, lib)
                        for name, lib in (("old", old), ("new", lstm_jax))
                    }
                    repeats = max(3, args.repeats // (4 if shape[-1] >= 512 else 1))
                    s = interleaved_medians(runs, repeats)
                    print(
                        f"{cell_name:<6}{shape!s:<22}{gradient:<11}{s['old'] * 1e3:>9.2f}"
                        f"{s['new'] * 1e3:>9.2f}{s['new'] / s['old']:>9.3f}",
                        flush=True,
                    )
        for name in args.train_steps:
            steps = {
                label: training_step(name, lib) for label, lib in (("old", old), ("new", lstm_jax))
            }
            s = interleaved_medians(steps, args.repeats)
            print(
                f"training step {name:<28}{s['old'] * 1e3:>9.2f}{s['new'] * 1e3:>9.2f}"
                f"{s['new'] / s['old']:>9.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
