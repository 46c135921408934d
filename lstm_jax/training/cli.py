"""The lstm-jax command line (`python -m lstm_jax` is the same program).

lstm-jax run CONFIG [--variant V] [--set key=value ...] [--out DIR] [--resume]
             [--coordinator HOST:PORT --num-processes N --process-id K
              --distributed-timeout S]
    train from a YAML config: a path, or the name of one shipped with the package
    (`lstm-jax run quickstart`); with the process flags, as process K of N
    (`training.distributed`). Ctrl-C saves a checkpoint and exits 130; --resume continues
    (with --set training.steps=N, for longer);
lstm-jax show RUN [--out DIR]
    a run's summary, its learning curve and the per-lag gradient norms of its newest
    checkpoint (full vs truncated);
lstm-jax compare RUN RUN ... [--out PNG]
    several runs in one table, their curves overlaid;
lstm-jax list
    the configs, by name, with what each one runs.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
import os
import sys
from pathlib import Path
from typing import Any

from lstm_jax.training import checkpoint, config, distributed, run_dir, runs

EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_CHECKPOINT = 2, 3, 4


def _configs_dir() -> Path:
    """The named configs: package data of `lstm_jax` (`lstm_jax/configs/`, which the checkout's
    `configs/` links to), so they are found from any directory and in an installed wheel."""
    return Path(str(importlib.resources.files("lstm_jax") / "configs"))


def _describe(path: Path) -> str:
    """The first comment line of a config file: what the experiment is."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def cmd_list(args: argparse.Namespace) -> int:
    directory = Path(args.dir) if args.dir else _configs_dir()
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        print(f"no configs (*.yaml) in {directory}", file=sys.stderr)
        return EXIT_BAD_INPUT
    width = max(len(p.stem) for p in paths)
    print(f"configs in {directory} (run one with `lstm-jax run NAME`):")
    for path in paths:
        print(f"  {path.stem:<{width}}  {_describe(path)}")
    return 0


def resolve_config(name_or_path: str) -> Path:
    """A config file: `name_or_path` if it is a file, else the packaged config of that name
    (the names `lstm-jax list` shows); a FileNotFoundError naming both places otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = _configs_dir() / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and named.is_file():
        return named
    raise FileNotFoundError(
        f"no config file {name_or_path!r}, and no config of that name in {_configs_dir()} "
        "(`lstm-jax list` shows the names)"
    )


def _fresh(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`, ...: a default run directory never reuses an old run."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def cmd_run(args: argparse.Namespace) -> int:
    from lstm_jax.training.interrupt import EXIT_INTERRUPTED, Interrupted
    from lstm_jax.training.trainer import (  # imports jax: keep `list` and `--help` fast
        Diverged,
        train,
    )

    path = resolve_config(args.config)
    cfg = config.load(path, args.variant, tuple(args.set))
    group = distributed.settings(args.coordinator, args.num_processes, args.process_id)
    if group is not None and not args.out:
        # each process would pick its own fresh default directory
        raise distributed.DistributedError("several processes need --out, one shared directory")
    name = path.stem + (f"-{args.variant}" if args.variant else "")
    default = Path("runs") / name
    out = Path(args.out) if args.out else (default if args.resume else _fresh(default))
    if group is not None:
        distributed.initialize(group, args.distributed_timeout)
    writer = distributed.is_writer()
    try:
        summary = train(
            cfg,
            out,
            resume=args.resume,
            progress=not args.no_progress,
            log=print if writer else lambda _: None,
        )
    except Diverged as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except Interrupted as err:
        print(f"stopped: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if writer:
        print(f"run directory: {summary.out_dir}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import numpy as np

    from lstm_jax.reporting.plotting import plot_curves

    runs.check_sequences(args.sequences)  # before anything is printed or drawn
    run = runs.read(args.run)
    rows = runs.summary_rows(run)
    width = max(map(len, rows))
    print("\n".join(f"{key:<{width}}  {value}" for key, value in rows.items()))
    out = Path(args.out) if args.out else run.path
    curve = runs.plot_learning_curve(run, out / "learning_curve.png")
    if curve is not None:
        print(f"learning curve: {curve}")
    if args.no_gradients:
        return 0
    if not checkpoint.exists(run.path):
        print("per-lag gradients: no checkpoint yet")
        return 0
    curves = runs.per_lag_norms(run, args.sequences)
    # a curve that is zero past lag 0 (∂L/∂h under the truncated gradient) has no log line
    silent = [name for name, (_, y) in curves.items() if not np.any(y[1:])]
    if silent:
        print(f"zero at every lag past 0 (not drawn): {', '.join(silent)}")
    lags = plot_curves(
        {name: curve for name, curve in curves.items() if name not in silent},
        out / "per_lag_gradients.png",
        title=f"{run.path.name}: error of the output at step T reaching step T - lag "
        f"(step {checkpoint.read_meta(run.path).get('step')})",
        xlabel="lag (steps back from the last step)",
        ylabel="mean norm of the gradient",
    )
    print(f"per-lag gradient norms: {lags}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    found = [runs.read(path) for path in args.runs]
    print(runs.format_table([runs.summary_rows(run) for run in found]))
    print(f"curves: {runs.plot_compare(found, args.out)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
        return code
    except (
        config.ConfigError,
        distributed.DistributedError,
        runs.RunError,
        run_dir.RunDirError,
        FileExistsError,
        FileNotFoundError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except checkpoint.CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CHECKPOINT
    except BrokenPipeError:  # `lstm-jax list | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstm-jax", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"lstm-jax {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands)
    show = commands.add_parser(
        "show", help="a run's summary, learning curve and per-lag gradient norms"
    )
    show.add_argument("run", help="a run directory")
    show.add_argument("--out", help="directory for the PNGs (default: the run directory)")
    show.add_argument(
        "--sequences", type=int, default=16, help="test sequences for the per-lag norms"
    )
    show.add_argument(
        "--no-gradients", action="store_true", help="skip the per-lag view (no jax work)"
    )
    show.set_defaults(func=cmd_show)
    compare = commands.add_parser("compare", help="several runs in one table and one plot")
    compare.add_argument("runs", nargs="+", help="run directories")
    compare.add_argument("--out", default="compare.png", help="the PNG (default: compare.png)")
    compare.set_defaults(func=cmd_compare)
    listing = commands.add_parser("list", help="list the configs")
    listing.add_argument("--dir", help="directory to list (default: the shipped configs)")
    listing.set_defaults(func=cmd_list)
    return parser


def _add_run(commands: Any) -> None:
    """The `run` command and its arguments."""
    run = commands.add_parser("run", help="train from a config file")
    run.add_argument("config", help="a YAML file, or a shipped config's name (`lstm-jax list`)")
    run.add_argument("--variant", help="a named override set from the file, e.g. tiny")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value, e.g. --set training.steps=200 (repeatable)",
    )
    run.add_argument(
        "--out",
        help="run directory (default: a new runs/<config>[-N]; with --resume: runs/<config>)",
    )
    run.add_argument("--resume", action="store_true", help="continue the run in --out")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = run.add_argument_group(
        "several processes (jax.distributed; or the environment variables "
        f"{', '.join(distributed.ENV.values())})"
    )
    group.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    group.add_argument("--num-processes", type=int, metavar="N", help="processes in all")
    group.add_argument("--process-id", type=int, metavar="K", help="this process, 0 ... N-1")
    group.add_argument(
        "--distributed-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for every process to join (default 60)",
    )
    run.set_defaults(func=cmd_run)


def _version() -> str:
    try:
        return importlib.metadata.version("lstm-jax")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "(not installed)"


if __name__ == "__main__":
    sys.exit(main())
