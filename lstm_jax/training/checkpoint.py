"""Checkpoints of a run through Orbax (`orbax-checkpoint`), the JAX ecosystem's format.

A run directory holds `checkpoints/<step>/` with two items: `state` (the training-state pytree,
Orbax's standard array format) and `meta` (a small JSON dict: the config, step, test metrics,
time). Orbax writes each step into a temporary directory and renames it when complete, so a run
killed mid-write leaves the previous steps intact; the last `keep` steps are kept. With several
processes (`jax.distributed`) every process calls `save` and Orbax coordinates the write.

Reading checks structure and shapes against the expected state before restoring, so a foreign,
corrupt or mismatched checkpoint is a `CheckpointError` naming the step and what differs, and
nothing on disk is changed. Run directories of lstm_jax 0.1's msgpack format
(`checkpoint.msgpack`) are still read; the next save writes the Orbax format beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import serialization

DIRECTORY = "checkpoints"
LEGACY = "checkpoint.msgpack"  # lstm_jax 0.1 (msgpack through flax.serialization), read only
LEGACY_FORMAT, LEGACY_VERSION = "lstm_jax-checkpoint", 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read back into the expected state."""


def _manager(run_dir: Path, keep: int | None = None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=keep is not None,  # only a save creates the directory
        enable_async_checkpointing=False,  # a saved step is on disk when `save` returns
    )
    return ocp.CheckpointManager(
        (run_dir / DIRECTORY).absolute(),  # Orbax refuses relative paths
        options=options,
        # the handlers are named up front, so metadata and meta read without a restore
        item_handlers={
            "state": ocp.StandardCheckpointHandler(),
            "meta": ocp.JsonCheckpointHandler(),
        },
    )


def save(run_dir: str | Path, step: int, state: Any, meta: dict[str, Any], keep: int = 3) -> Path:
    """Writes `state` (any pytree of arrays) and `meta` (JSON-like) as step `step`, keeping
    the newest `keep` steps. Returns the step's directory."""
    run_dir = Path(run_dir)
    with _manager(run_dir, keep) as manager:
        manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,  # the trainer decides when to save; rewriting a step replaces it
        )
    return run_dir / DIRECTORY / str(step)


def steps(run_dir: str | Path) -> list[int]:
    """The complete (committed) steps saved in `run_dir`, oldest first."""
    if not (Path(run_dir) / DIRECTORY).is_dir():
        return []
    with _manager(Path(run_dir)) as manager:
        return sorted(manager.all_steps())


def exists(run_dir: str | Path) -> bool:
    """Whether `run_dir` holds a checkpoint (either format) to resume from."""
    return bool(steps(run_dir)) or (Path(run_dir) / LEGACY).is_file()


def describe(run_dir: str | Path) -> str:
    """The newest checkpoint of `run_dir` for a message: its path and step, or why none."""
    run_dir = Path(run_dir)
    if not exists(run_dir):
        return "none (none was written before the failure)"
    path = _latest_path(run_dir)
    try:
        return f"{path} (step {read_meta(run_dir).get('step')})"
    except CheckpointError as err:
        return f"{path} is unreadable: {err}"


def read_meta(run_dir: str | Path, step: int | None = None) -> dict[str, Any]:
    """The `meta` dict of step `step` (default: the newest), without restoring the state."""
    run_dir = Path(run_dir)
    step = _pick(run_dir, step)
    if step is None:
        return dict(_legacy_read(run_dir / LEGACY).get("meta") or {})
    _check_files(run_dir, step)
    with _manager(run_dir) as manager:
        try:
            restored = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        except Exception as err:  # Orbax raises several unrelated types on a damaged item
            raise _corrupt(run_dir, step, err) from err
    return dict(restored["meta"] or {})


def load(run_dir: str | Path, template: Any, step: int | None = None) -> tuple[Any, dict]:
    """Restores `(state, meta)` of step `step` (default: the newest); `template` is a pytree
    of the expected structure, shapes and dtypes (its arrays' shardings are kept), or None for
    the arrays as stored (nested dicts; for tools that only inspect a checkpoint)."""
    run_dir = Path(run_dir)
    step = _pick(run_dir, step)
    if step is None:
        return _legacy_load(run_dir / LEGACY, template)
    _check_files(run_dir, step)
    where = run_dir / DIRECTORY / str(step)
    with _manager(run_dir) as manager:
        try:
            stored = manager.item_metadata(step)["state"]
        except Exception as err:
            raise _corrupt(run_dir, step, err) from err
        if stored is None:
            raise _corrupt(run_dir, step, "no state item")
        if template is None:  # the arrays as stored, on this process's first device
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            template = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), stored
            )
        _check_matches(where, template, stored)
        try:
            restored = manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as err:
            raise _corrupt(run_dir, step, err) from err
    return restored["state"], dict(restored["meta"] or {})


def _pick(run_dir: Path, step: int | None) -> int | None:
    """The Orbax step to read (None: read the legacy file); a clear error when there is none."""
    saved = steps(run_dir)
    if step is not None and step not in saved:
        raise CheckpointError(f"no checkpoint of step {step} in {run_dir / DIRECTORY}: {saved}")
    if step is None and saved:
        return saved[-1]
    if step is None and not (run_dir / LEGACY).is_file():
        raise CheckpointError(f"no checkpoint at {run_dir / DIRECTORY}")
    return step


def _latest_path(run_dir: Path) -> Path:
    saved = steps(run_dir)
    return run_dir / DIRECTORY / str(saved[-1]) if saved else run_dir / LEGACY


def _corrupt(run_dir: Path, step: int, err: Any) -> CheckpointError:
    earlier = [s for s in steps(run_dir) if s < step]
    hint = (
        f"; earlier steps kept: {earlier} (move the damaged step's directory away to resume "
        "from the one before)"
        if earlier
        else ""
    )
    detail = f"{type(err).__name__}: {_first_line(err)}" if isinstance(err, Exception) else err
    return CheckpointError(
        f"checkpoint {run_dir / DIRECTORY / str(step)} is corrupt or incomplete ({detail}); "
        f"it was left as it is{hint}"
    )


def _first_line(err: Exception, limit: int = 300) -> str:
    """The gist of an Orbax/TensorStore error: its first line, without the TensorStore spec
    (dozens of lines of JSON) that such messages append."""
    text = str(err)
    for spec in ("[tensorstore_spec=", "See full TensorStore details"):
        text = text.split(spec)[0]
    text = text.strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _check_files(run_dir: Path, step: int) -> None:
    """The files every saved step holds, checked before Orbax reads: a missing OCDBT manifest
    would otherwise fail inside TensorStore's event loop, which then prints a traceback from
    each of its pending callbacks before the error arrives."""
    where = run_dir / DIRECTORY / str(step)
    manifests = [where / "state", *sorted((where / "state").glob("ocdbt.process_*"))]
    missing = [item for item in ("state", "meta") if not (where / item).is_dir()]
    if not missing and (where / "state" / "_METADATA").is_file():
        missing = [str(m.relative_to(where) / "manifest.ocdbt") for m in manifests]
        missing = [m for m in missing if not (where / m).is_file()]
    if missing:
        raise _corrupt(run_dir, step, f"missing {', '.join(missing)}")


def _check_matches(where: Path, template: Any, stored: Any) -> None:
    """Structure, then shapes, of the stored state against the template, before restoring."""
    want = {_name(k): v for k, v in jax.tree_util.tree_leaves_with_path(template)}
    have = {_name(k): v for k, v in jax.tree_util.tree_leaves_with_path(stored)}
    if set(want) != set(have):
        missing = ", ".join(sorted(set(want) - set(have))) or "none"
        extra = ", ".join(sorted(set(have) - set(want))) or "none"
        raise CheckpointError(
            f"checkpoint {where} does not match this run's state (different model or "
            f"optimiser?): missing {missing}; unexpected {extra}"
        )
    for key, leaf in want.items():
        got = tuple(getattr(have[key], "shape", ()) or ())
        expected = tuple(getattr(leaf, "shape", ()) or ())
        if got != expected:
            raise CheckpointError(
                f"checkpoint {where}: {key} has shape {got}, this run expects {expected}"
            )


def _name(path: tuple) -> str:
    """`params.rnn.0.w` for a leaf's key path, whether its nodes are NamedTuples, tuples or
    (as Orbax's metadata has them) dicts and lists."""
    parts = (getattr(k, "name", getattr(k, "key", getattr(k, "idx", k))) for k in path)
    return ".".join(str(p) for p in parts)


def _legacy_read(path: Path) -> dict[str, Any]:
    """The checked payload of a 0.1 msgpack checkpoint."""
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
    except Exception as err:  # msgpack raises several unrelated types on corrupt input
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err}); "
            "it was left as it is"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != LEGACY_FORMAT:
        raise CheckpointError(f"{path} is not an lstm_jax checkpoint (no {LEGACY_FORMAT!r} header)")
    if payload.get("version") != LEGACY_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {payload.get('version')}, this code reads "
            f"{LEGACY_VERSION} (and the Orbax format)"
        )
    return payload


def _legacy_load(path: Path, template: Any) -> tuple[Any, dict[str, Any]]:
    payload = _legacy_read(path)
    if template is None:
        return payload["state"], dict(payload.get("meta") or {})
    try:
        state = serialization.from_state_dict(template, payload["state"])
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(
            f"checkpoint {path} does not match this run's state (different model or "
            f"optimiser?): {err}"
        ) from err
    _check_matches(path, template, state)
    return state, dict(payload.get("meta") or {})
