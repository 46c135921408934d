"""A plain TCP handshake that gathers every process before `jax.distributed` starts.

Process 0 listens on the coordinator's port; every other process connects and sends its id;
process 0 answers "ok" once each id in `1 … N-1` has arrived exactly once, or an error naming
what is wrong, and then closes the port so that JAX's coordination service can take it. So
a missing process, a process id used twice, a second process 0 or a wrong address is a
`RendezvousError` naming the address, the ids and the timeout, instead of JAX's 300 s wait and
C++ abort. Its wire format is one line each way: `lstm-jax <id> <count>` and `ok` / `error …`.
"""

from __future__ import annotations

import contextlib
import socket
import time

POLL_S = 0.25  # how often a process retries a coordinator that is not listening yet


class RendezvousError(RuntimeError):
    """The processes did not all meet: the message says which, where and within what time."""


def split_address(address: str) -> tuple[str, int]:
    """`(host, port)` of `HOST:PORT` (or `[IPv6]:PORT`); a ValueError saying what is expected.

    >>> split_address("localhost:12345")
    ('localhost', 12345)
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT with a port in 1-65535, got {address!r}")
    return host.strip("[]"), int(port)


def meet(address: str, count: int, index: int, timeout_s: float) -> None:
    """Returns once all `count` processes have met at `address`; process `index` of them.

    >>> meet("localhost:12345", count=1, index=0, timeout_s=1.0)  # alone: nothing to wait for
    >>> meet("localhost:1", count=2, index=1, timeout_s=0.5)
    Traceback (most recent call last):
    lstm_jax.training.rendezvous.RendezvousError: process 0 did not answer at the coordinator ...
    """
    if count == 1:
        return
    host, port = split_address(address)
    deadline = time.monotonic() + timeout_s
    if index == 0:
        _gather(port, count, deadline, f"{address} (timeout {timeout_s:g} s)")
    else:
        _join(host, port, count, index, deadline, f"{address} (timeout {timeout_s:g} s)")


def _gather(port: int, count: int, deadline: float, where: str) -> None:
    try:
        server = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    except OSError as err:
        raise RendezvousError(
            f"process 0 cannot listen on port {port} of the coordinator {where}: "
            f"{err.strerror} (is another process 0 running, or another program on that port?)"
        ) from None
    peers: dict[int, socket.socket] = {}
    try:
        problem = _accept_all(server, peers, count, deadline)
        for conn in peers.values():
            _send(conn, "error " + problem if problem else "ok")
        if problem:
            raise RendezvousError(f"{problem} at the coordinator {where}")
        for conn in peers.values():  # let each peer close first: the port's TIME_WAIT is theirs
            conn.settimeout(max(deadline - time.monotonic(), 1.0))
            with contextlib.suppress(OSError):
                conn.recv(1)
    finally:
        for conn in peers.values():
            conn.close()
        server.close()


def _accept_all(
    server: socket.socket, peers: dict[int, socket.socket], count: int, deadline: float
) -> str | None:
    """Accepts peers into `peers` by id until all `1 … count-1` are there; the problem, if any."""
    while len(peers) < count - 1:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = sorted(set(range(1, count)) - set(peers))
            return f"process ids {missing} of {count} did not register"
        server.settimeout(remaining)
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.settimeout(max(deadline - time.monotonic(), 1.0))
        hello = _receive(conn).split()
        if len(hello) != 3 or hello[0] != "lstm-jax" or not hello[1].isdigit():
            conn.close()  # not one of ours (a port scan, a browser): ignore it
            continue
        index, theirs = int(hello[1]), hello[2]
        if theirs != str(count):
            peers[index] = peers.get(index, conn)
            return (
                f"process {index} was started with --num-processes {theirs}, process 0 with {count}"
            )
        if index in peers or index == 0:
            peers.setdefault(-1, conn)  # so that it hears the error too
            return f"process id {index} was given to two processes"
        peers[index] = conn
    return None


def _join(host: str, port: int, count: int, index: int, deadline: float, where: str) -> None:
    conn = _connect(host, port, deadline, where)
    try:
        _send(conn, f"lstm-jax {index} {count}")
        conn.settimeout(max(deadline - time.monotonic(), 1.0))
        try:
            answer = _receive(conn)
        except TimeoutError:
            answer = ""
        if answer == "ok":
            return
        if answer.startswith("error "):
            raise RendezvousError(f"{answer.removeprefix('error ')} at the coordinator {where}")
        raise RendezvousError(
            f"process {index}: the coordinator {where} did not say that all {count} processes "
            "arrived; see process 0's message"
        )
    finally:
        conn.close()


def _connect(host: str, port: int, deadline: float, where: str) -> socket.socket:
    """A connection to process 0, retried until `deadline` while nothing listens there yet."""
    while True:
        try:
            return socket.create_connection((host, port), timeout=POLL_S * 4)
        except socket.gaierror:
            raise RendezvousError(f"cannot resolve the coordinator's host in {where}") from None
        except OSError:
            if time.monotonic() + POLL_S > deadline:
                raise RendezvousError(
                    f"process 0 did not answer at the coordinator {where}: start it with "
                    "--process-id 0, and check that --coordinator is its address"
                ) from None
            time.sleep(POLL_S)


def _send(conn: socket.socket, line: str) -> None:
    with contextlib.suppress(OSError):  # a peer that left hears nothing; its own error says why
        conn.sendall(line.encode() + b"\n")


def _receive(conn: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n") and len(data) < 1024:
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()
