"""End-to-end harness: a real uvicorn (`lagtrain server`) and real dispatchers
(`lagtrain worker`) as subprocesses, over the session's database and local Ray."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.client import Client
from tests.polling import wait_until
from tests.ray_cluster import ray_address

__all__ = ["ray_address", "wait_until"]

STARTUP_DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_env(db_url: str, tmp_path: Path, ray_address: str | None = None) -> dict[str, str]:
    """The environment of a test's `lagtrain server` and `lagtrain worker`s."""
    # Without RAY_AUTH_MODE: the worker must turn token auth on by itself (ray.init in
    # this process put it in os.environ).
    env = {
        **{k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"},
        "LAGTRAIN_DATABASE_URL": db_url,
        "LAGTRAIN_ARTIFACTS_URL": str(tmp_path / "artifacts"),
        "LAGTRAIN_STATE_DIR": str(tmp_path / "state"),
        "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "LAGTRAIN_LEASE_SECONDS": "4",
        "LAGTRAIN_HEARTBEAT_SECONDS": "0.5",
        # SQLite has no NOTIFY: a dispatcher sees a submitted job at its next poll.
        "LAGTRAIN_POLL_SECONDS": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    if ray_address is not None:
        env["RAY_ADDRESS"] = ray_address
    return env


def embedded_env() -> dict[str, str]:
    """`lagtrain server --embedded` as `make run` starts it: nothing of lagtrain's or
    Ray's configuration from this process (it starts its own local Ray)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAGTRAIN_", "RAY_"))}
    return {**env, "PYTHONUNBUFFERED": "1"}


class Stack:
    """Processes of one test's service: server and dispatchers, run in `log_dir`."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.url = ""
        # An embedded server without a bootstrap token writes its own (read it then).
        self.admin_token = env.get("LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN", "")

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "lagtrain"), *args],
            env=self.env,
            cwd=self.log_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def start_server(self, *args: str) -> subprocess.Popen[bytes]:
        """`lagtrain server` (with `args`, e.g. --embedded) on a free port, once ready."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        proc = self._spawn("server", "server", "--host", "127.0.0.1", "--port", str(port), *args)

        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=STARTUP_DEADLINE_S, what="the API server")
        return proc

    def start_worker(self) -> subprocess.Popen[bytes]:
        return self._spawn("worker", "worker")

    def admin(self) -> Client:
        return Client(self.url, self.admin_token)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )

    def stop(self, timeout: float = 20) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def service_stack(db_url: str, clean_db: None, ray_address: str, tmp_path: Path) -> Iterator[Stack]:
    """A fresh service over an emptied database; the test starts what it needs."""
    stack = Stack(stack_env(db_url, tmp_path, ray_address), tmp_path)
    try:
        yield stack
    finally:
        stack.stop()
