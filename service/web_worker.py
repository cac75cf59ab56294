"""One web worker of `lagtrain server` with LAGTRAIN_WEB_WORKERS > 1 (a process the
supervisor in service/web_workers.py spawns): its own SO_REUSEPORT listening socket,
the app built from the environment, uvicorn, and the answers to the supervisor's
pings, sent only once the event loop has run a callback."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import threading
from multiprocessing.connection import Connection

import uvicorn

# uvicorn's exit status for a worker that could not start (app, lifespan, socket):
# starting another would fail the same way.
STARTUP_FAILURE = 3
READY, PING, PONG = b"ready", b"ping", b"pong"


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT (not listening yet)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def run_worker(host: str, port: int, access_log: bool, supervisor: int, pipe: Connection) -> None:
    """One web worker (a spawned process): its own SO_REUSEPORT socket, then uvicorn."""
    import sys
    import traceback

    from service.app import create_app_from_env, freeze_for_serving

    _stop_with(supervisor)
    try:
        sock = listening_socket(host, port)
        app = create_app_from_env()
    except Exception:  # every worker would fail the same way: the supervisor stops
        traceback.print_exc()
        sys.exit(STARTUP_FAILURE)
    freeze_for_serving()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        timeout_graceful_shutdown=3,  # as one web worker (service.cli_server._serve)
    )
    PingedServer(config, pipe).run(sockets=[sock])


class PingedServer(uvicorn.Server):
    """uvicorn's server, answering the supervisor's pings once its loop runs."""

    def __init__(self, config: uvicorn.Config, pipe: Connection) -> None:
        super().__init__(config)
        self.pipe = pipe

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=answer_pings, args=(self.pipe, loop), name="ping", daemon=True
        ).start()


def answer_pings(pipe: Connection, loop: asyncio.AbstractEventLoop) -> None:
    """READY, then a PONG per PING once `loop` has run a callback: a loop that is
    blocked answers late or never, and the supervisor judges by how long it waited."""
    try:
        pipe.send_bytes(READY)
        while pipe.recv_bytes() == PING:
            turned = threading.Event()
            loop.call_soon_threadsafe(turned.set)
            turned.wait()  # a stopped loop never sets it: this daemon thread just waits
            pipe.send_bytes(PONG)
    except (EOFError, OSError, RuntimeError):  # the supervisor or the loop is gone
        return


def _stop_with(supervisor: int) -> None:
    """SIGTERM this process when `supervisor` (its parent) dies, however it dies
    (Linux's PR_SET_PDEATHSIG); exit at once if it is already gone."""
    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: an orphan is possible there
        return
    if os.getppid() != supervisor:  # it died before the prctl took effect
        raise SystemExit(0)
