"""Training as several processes, on one host or many, through `jax.distributed`.

Every process runs the same program: `jax.distributed.initialize` connects them, after which
`jax.devices()` lists the devices of all processes and the trainer's `Mesh` spans them. Each
process generates the same batch (data are a function of `(seed, step)`) and places only its
own shards (`jax.make_array_from_callback`); XLA's SPMD partitioner inserts the gradient
all-reduce, over NCCL on GPUs and over Gloo on CPUs. Process 0 writes the logs; every
process takes part in each checkpoint, which Orbax coordinates (the run directory must be on
a filesystem all processes share).

Launch one command per process, on each host (HOST:PORT: a free port on the host of process 0,
reachable from the others):

    lstm-jax run CONFIG --out DIR --coordinator HOST:PORT --num-processes N --process-id K

or set `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` instead of the flags.

Before JAX's coordination service starts, the processes meet in a plain TCP handshake on the
coordinator's port (`rendezvous`): process 0 waits up to `--distributed-timeout` seconds for the
others, so a missing or duplicated process id is a one-line error naming the address, the ids
and the timeout. (JAX's own service, left to find that out, waits 300 s and then aborts the
process from C++.)
"""

from __future__ import annotations

import os

from lstm_jax.training import rendezvous

ENV = {
    "coordinator": "JAX_COORDINATOR_ADDRESS",
    "num_processes": "JAX_NUM_PROCESSES",
    "process_id": "JAX_PROCESS_ID",
}


class DistributedError(ValueError):
    """The process-group settings are incomplete or out of range."""


def settings(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> dict[str, str | int] | None:
    """The process-group settings from the arguments, else the environment; None when neither
    asks for several processes."""
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    values = {k: v if v is not None else os.environ.get(ENV[k]) for k, v in given.items()}
    if all(v is None for v in values.values()):
        return None
    missing = [f"--{k.replace('_', '-')} (or {ENV[k]})" for k, v in values.items() if v is None]
    if missing:
        raise DistributedError(f"several processes need all three settings; missing {missing}")
    try:
        count, index = int(values["num_processes"]), int(values["process_id"])
    except ValueError:
        raise DistributedError(
            f"num_processes and process_id must be integers, got {values['num_processes']!r} "
            f"and {values['process_id']!r}"
        ) from None
    if count < 1 or not 0 <= index < count:
        raise DistributedError(
            f"process_id must be in [0, num_processes); got {index} of {count} processes"
        )
    address = str(values["coordinator"])
    try:
        rendezvous.split_address(address)
    except ValueError as err:
        raise DistributedError(f"--coordinator: {err}") from None
    return {"coordinator": address, "num_processes": count, "process_id": index}


def initialize(group: dict[str, str | int], timeout_s: float = 60.0) -> None:
    """Joins the process group `group` (from `settings`); blocks until all have joined, at
    most `timeout_s` seconds, else a DistributedError says which processes are missing."""
    import jax  # here, not at the top: the command line's `list` and `--help` stay fast

    if not timeout_s > 0:
        raise DistributedError(f"--distributed-timeout must be > 0 seconds, got {timeout_s}")
    address, count = str(group["coordinator"]), int(group["num_processes"])
    try:
        rendezvous.meet(address, count, int(group["process_id"]), timeout_s)
    except rendezvous.RendezvousError as err:
        raise DistributedError(str(err)) from None
    # Cross-process collectives on CPU need an implementation; Gloo ships with jaxlib.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=address,
        num_processes=count,
        process_id=int(group["process_id"]),
        initialization_timeout=max(int(timeout_s), 1),
    )


def is_writer() -> bool:
    """Whether this process writes logs and plots (process 0; the only one when alone)."""
    import jax

    return jax.process_index() == 0


def any_process(flag: bool) -> bool:
    """Whether `flag` is true on any process (a collective: every process must call it).

    >>> any_process(True), any_process(False)  # one process: its own flag
    (True, False)
    """
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def barrier(name: str, timeout_s: int = 1800) -> None:
    """Waits until every process reaches `barrier(name)` (no-op with one process). Through the
    coordination service, not a collective: the first collective sets up Gloo's context, which
    fails if one process reaches it 30 s after another (a slower compile does that), so the
    trainer compiles first and meets here before running anything."""
    import jax
    from jax._src import distributed as state  # the client `jax.distributed` started

    if jax.process_count() > 1:
        state.global_state.client.wait_at_barrier(name, timeout_in_ms=timeout_s * 1000)
