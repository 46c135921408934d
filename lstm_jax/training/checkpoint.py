"""Atomic checkpoints of a training state with flax.serialization (msgpack, never pickle).

A checkpoint is written to a temporary file in the same directory, flushed to disk and renamed
over the old one (`os.replace` is atomic on POSIX), so a run killed mid-write leaves the
previous checkpoint intact. Loading validates the format and restores into a template pytree,
so a corrupt, truncated or foreign file is a `CheckpointError`, and nothing is overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flax import serialization

FORMAT = "lstm_jax-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read back into the expected state."""


def save(path: str | Path, state: Any, meta: dict[str, Any]) -> Path:
    """Writes `state` (any pytree) and a small `meta` dict (JSON-like) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "meta": meta,
        "state": serialization.to_state_dict(state),
    }
    data = serialization.msgpack_serialize(payload)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The `meta` dict of a checkpoint, without restoring its state."""
    return dict(_read(Path(path)).get("meta") or {})


def load(path: str | Path, template: Any) -> tuple[Any, dict[str, Any]]:
    """Restores `(state, meta)`; `template` is a pytree of the expected structure."""
    path = Path(path)
    payload = _read(path)
    try:
        state = serialization.from_state_dict(template, payload["state"])
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(
            f"checkpoint {path} does not match this run's state (different model or "
            f"optimiser?): {err}"
        ) from err
    _check_shapes(path, template, state)
    return state, dict(payload.get("meta") or {})


def _read(path: Path) -> dict[str, Any]:
    """The checked payload of a checkpoint file."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
    except Exception as err:  # msgpack raises several unrelated types on corrupt input
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err}); "
            "it was left as it is"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an lstm_jax checkpoint (no {FORMAT!r} header)")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {payload.get('version')}, this code reads {VERSION}"
        )
    return payload


def _check_shapes(path: Path, template: Any, state: Any) -> None:
    import jax

    for (key, want), got in zip(
        jax.tree_util.tree_flatten_with_path(template)[0], jax.tree.leaves(state), strict=True
    ):
        if getattr(want, "shape", None) != getattr(got, "shape", None):
            raise CheckpointError(
                f"checkpoint {path}: {jax.tree_util.keystr(key)} has shape "
                f"{getattr(got, 'shape', None)}, this run expects {getattr(want, 'shape', None)}"
            )
