"""`lagtrain server` with LAGTRAIN_WEB_WORKERS=2: two uvicorn worker processes, each
building its app from the environment and listening on a socket of its own, serve one
API over one store; connections that arrive at once reach both; SIGTERM stops them
all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import on_one_database
from tests.e2e.conftest import Stack
from tests.polling import wait_until

pytestmark = pytest.mark.timeout(180)

SPEC = {"task": {"kind": "adding", "num_samples": 64}, "schedule": {"rounds": 2}}


def test_two_web_workers_serve_one_store_and_stop_on_sigterm(service_stack: Stack) -> None:
    service_stack.env["LAGTRAIN_WEB_WORKERS"] = "2"
    service_stack.start_server()
    with service_stack.admin() as admin:
        submitted = {admin.submit({**SPEC, "name": f"job-{i}"})["id"] for i in range(20)}
        listed = {job["id"] for job in admin.jobs()}
    assert submitted <= listed
    assert "a listening socket each (SO_REUSEPORT)" in service_stack.logs(), service_stack.logs()
    # An open event stream (a queued job: no worker runs it) must not hold the stop:
    # the workers give streams 3 s, as one web worker does (docs/reliability.md).
    watcher = service_stack.admin()
    stream = watcher.events(min(submitted))
    assert next(stream)[0] == "status"
    server = service_stack.procs[0]
    stopping = time.monotonic()
    os.killpg(server.pid, signal.SIGTERM)
    assert server.wait(timeout=60) == 0, service_stack.logs()
    assert time.monotonic() - stopping < 10, service_stack.logs()
    watcher.close()


LISTEN, ESTABLISHED = "0A", "01"  # /proc/net/tcp states


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _sockets_on(port: int) -> dict[str, str]:
    """inode -> TCP state of this machine's sockets whose local port is `port`."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port:
                found[fields[9]] = fields[3]
    return found


def _held_by(pid: int, inodes: dict[str, str], state: str) -> set[str]:
    """The sockets in `inodes` in `state` that process `pid` holds."""
    held = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            inode = target[len("socket:[") : -1] if target.startswith("socket:[") else None
            if inode is not None and inodes.get(inode) == state:
                held.add(inode)
    except OSError:  # exited meanwhile
        pass
    return held


def _listening_children(pid: int, port: int) -> set[int]:
    """The children of process `pid` that hold a listening socket on `port`."""
    sockets = _sockets_on(port)
    return {c for c in _children(pid) if _held_by(c, sockets, LISTEN)}


@on_one_database("sqlite")
def test_each_web_worker_listens_on_its_own_socket_and_takes_connections(
    service_stack: Stack,
) -> None:
    """The kernel spreads connections over the workers' own sockets (SO_REUSEPORT):
    with one shared socket (uvicorn's --workers) a burst of keep-alive connections
    went to whichever worker woke first, all of them in half the benchmark's runs."""
    service_stack.env["LAGTRAIN_WEB_WORKERS"] = "2"
    server = service_stack.start_server()
    port = int(service_stack.url.rpartition(":")[2])

    def listeners() -> dict[int, set[str]]:  # the server's children that listen
        sockets = _sockets_on(port)
        held = {child: _held_by(child, sockets, LISTEN) for child in _children(server.pid)}
        return {child: inodes for child, inodes in held.items() if inodes}

    wait_until(
        lambda: sorted(len(inodes) for inodes in listeners().values()) == [1, 1],
        timeout=60,
        what="two web workers listening",
    )
    workers = listeners()
    first, second = workers.values()
    assert first != second, "the workers share one listening socket"

    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
    try:

        def accepted() -> list[int]:
            sockets = _sockets_on(port)
            return [len(_held_by(worker, sockets, ESTABLISHED)) for worker in workers]

        wait_until(lambda: sum(accepted()) == 16, timeout=30, what="16 connections accepted")
        # All 16 on one worker: a chance of 2 in 65,536 with the kernel's hash.
        assert min(accepted()) > 0, accepted()
    finally:
        for conn in connections:
            conn.close()


def _two_web_workers(stack: Stack) -> tuple[subprocess.Popen[bytes], Callable[[], set[int]]]:
    """`lagtrain server` with two web workers, both listening: (its process, a probe of
    its listening children)."""
    stack.env["LAGTRAIN_WEB_WORKERS"] = "2"
    server = stack.start_server()
    port = int(stack.url.rpartition(":")[2])

    def listening() -> set[int]:
        return _listening_children(server.pid, port)

    wait_until(lambda: len(listening()) == 2, timeout=60, what="two web workers listening")
    return server, listening


@on_one_database("sqlite")
def test_a_web_worker_that_dies_is_replaced(service_stack: Stack) -> None:
    """The supervisor starts another worker, on a socket of its own, when one dies; the
    API answers throughout from the other."""
    _server, listening = _two_web_workers(service_stack)
    victim, survivor = sorted(listening())
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: victim not in listening(), timeout=30, what="the killed worker's socket closed"
    )
    with service_stack.admin() as admin:
        admin.submit(SPEC)  # served by the survivor, or already by the new worker
    wait_until(lambda: len(listening()) == 2, timeout=60, what="a new web worker in its place")
    assert survivor in listening()
    assert "exited (-9); starting another" in service_stack.logs(), service_stack.logs()


@on_one_database("postgresql")
def test_a_hung_web_worker_is_killed_and_replaced(service_stack: Stack) -> None:
    """A worker that stops answering (here SIGSTOPped: alive, holding its socket, its
    connections unserved) is killed once a ping stays out past the timeout, and a new
    worker takes its place; the other keeps serving."""
    service_stack.env["LAGTRAIN_WEB_WORKER_TIMEOUT_S"] = "5"
    _server, listening = _two_web_workers(service_stack)
    victim, survivor = sorted(listening())
    os.kill(victim, signal.SIGSTOP)
    wait_until(lambda: victim not in listening(), timeout=60, what="the hung worker killed")
    with service_stack.admin() as admin:
        admin.submit(SPEC)
    wait_until(lambda: len(listening()) == 2, timeout=60, what="a new web worker in its place")
    assert survivor in listening()
    logs = service_stack.logs()
    assert f"web worker {victim} left a ping unanswered for " in logs, logs
    assert "(timeout 5 s); killing it" in logs, logs
    assert f"web worker {victim} exited (-9); starting another" in logs, logs


@on_one_database("postgresql")
def test_web_workers_stop_when_their_supervisor_is_killed(service_stack: Stack) -> None:
    """No orphan keeps serving on the shared port (SO_REUSEPORT would let a new
    server bind beside it) once `lagtrain server` itself dies, even by SIGKILL."""
    server, listening = _two_web_workers(service_stack)
    workers = listening()
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=30)
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
        timeout=30,
        what="the web workers to exit after their supervisor",
    )
    port = int(service_stack.url.rpartition(":")[2])
    assert LISTEN not in _sockets_on(port).values()
