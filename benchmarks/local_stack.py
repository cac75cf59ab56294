"""Process wiring shared by the service benchmarks: a private Ray head started with
`ray start --head --block` in its own session, and a real `lagtrain server` plus
`lagtrain worker` over a temporary database. Everything is stopped by killing the
process groups this module started (never `ray stop`, which would kill every Ray
on the machine, other people's included).

Ray 2.60 authentication is handled deliberately: each head gets a fresh token that
reaches every process through the environment (RAY_AUTH_MODE=token plus
RAY_AUTH_TOKEN), so ~/.ray/auth_token is neither needed nor changed. A client with
an explicit address (the lagtrain worker's RAY_ADDRESS, the Jobs SDK) does not
switch token mode on by itself, hence RAY_AUTH_MODE=token on every side.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from service.client import Client

BIN = Path(sys.executable).parent
STARTUP_DEADLINE_S = 120.0
STOP_GRACE_S = 20.0
OBJECT_STORE_BYTES = 256 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy; raise after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def parse_time(stamp: str) -> float:
    """API timestamps ("…Z" or "+00:00") as POSIX seconds."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class ProcessGroup:
    """Subprocesses each in its own session; stop() kills each whole group."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, *, since: int = 0) -> None:
        """Stop the processes started since the `since`-th, newest first
        (dispatchers before the API, everything before Ray)."""
        for _, proc in reversed(self.procs[since:]):
            # SIGTERM to the leader only: `ray start --block` then drains and stops its
            # children in ~3 s; signalling the whole group kills the GCS under it
            # and the drain waits 30 s for it.
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            # Ray's own children live in the same group; make sure none outlive it.
            _signal_group(proc, signal.SIGKILL)
        del self.procs[since:]


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


@dataclass(frozen=True)
class RayHead:
    address: str  # GCS host:port, what RAY_ADDRESS names
    dashboard_url: str | None
    env: dict[str, str]  # the environment every client of this head needs


def ray_auth_env(token: str) -> dict[str, str]:
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


@contextmanager
def ray_head(
    workdir: Path, processes: ProcessGroup, *, num_cpus: int, dashboard: bool
) -> Iterator[RayHead]:
    """A private single-node Ray cluster on free ports. On exit it stops every
    process in `processes` (the head and whatever was started after it)."""
    env = {**os.environ, **ray_auth_env(secrets.token_hex(32)), "RAY_USAGE_STATS_ENABLED": "0"}
    # Ray's unix sockets live under the temp dir: keep its path short.
    temp_dir = Path(tempfile.mkdtemp(prefix="lgr-", dir="/tmp"))
    port, dashboard_port = free_port(), free_port()
    args = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        f"--include-dashboard={'true' if dashboard else 'false'}",
        f"--dashboard-port={dashboard_port}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    processes.spawn("ray-head", args, env)
    # `ray start` writes this file once the head node is up, just before blocking.
    marker = temp_dir / "ray_current_cluster"

    def up() -> bool:
        processes.check_alive()
        return marker.exists()

    try:
        wait_for(up, timeout=STARTUP_DEADLINE_S, what="the Ray head", every=0.2)
        dashboard_url = f"http://127.0.0.1:{dashboard_port}" if dashboard else None
        yield RayHead(address=f"127.0.0.1:{port}", dashboard_url=dashboard_url, env=env)
    finally:
        # Everything started after the head depends on it: stop it all first.
        processes.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


@dataclass
class Service:
    port: int
    token: str
    processes: ProcessGroup

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Client:
        return Client(self.url, self.token)

    def log_tail(self, kind: str) -> str:
        """The end of the `server` or `worker` log."""
        return self.processes.tail(f"{kind}-{self.port}")

    def dispatchers(self) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.url}/v1/cluster", headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )
        response.raise_for_status()
        return list(response.json()["dispatchers"])


@contextmanager
def lagtrain_service(
    workdir: Path,
    processes: ProcessGroup,
    *,
    ray: RayHead,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Service]:
    """Migrate a database, start `lagtrain server` and one `lagtrain worker` joined to
    `ray`, and wait until the dispatcher has reported to the store (warm). Both are
    stopped on exit; Ray keeps running."""
    token = secrets.token_urlsafe(32)
    env = {
        **ray.env,
        "LAGTRAIN_DATABASE_URL": database_url or f"sqlite:///{workdir / 'lagtrain.db'}",
        "LAGTRAIN_ARTIFACTS_URL": str(workdir / "artifacts"),
        "LAGTRAIN_STATE_DIR": str(workdir / "state"),
        "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN": token,
        "RAY_ADDRESS": ray.address,
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    lagtrain = str(BIN / "lagtrain")
    subprocess.run(
        [lagtrain, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120
    )
    mark = len(processes.procs)
    try:
        yield _start_service(processes, env)
    finally:
        processes.stop(since=mark)


def spawn_server(
    processes: ProcessGroup, env: dict[str, str], *options: str, what: str = "the API server"
) -> int:
    """Start `lagtrain server [options]` on a free local port and wait for /readyz;
    returns the port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes.spawn(
        f"server-{port}",
        [str(BIN / "lagtrain"), "server", "--host", "127.0.0.1", "--port", str(port), *options],
        env,
    )

    def ready() -> bool:
        processes.check_alive()
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=STARTUP_DEADLINE_S, what=what, every=0.2)
    return port


def _start_service(processes: ProcessGroup, env: dict[str, str]) -> Service:
    lagtrain = str(BIN / "lagtrain")
    token = env["LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN"]
    port = spawn_server(processes, env)
    processes.spawn(f"worker-{port}", [lagtrain, "worker"], env)
    service = Service(port=port, token=token, processes=processes)

    def dispatcher_seen() -> bool:
        processes.check_alive()
        return any(d["alive"] for d in service.dispatchers())

    wait_for(dispatcher_seen, timeout=STARTUP_DEADLINE_S, what="the dispatcher", every=0.2)
    return service


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one run; dropped on exit."""
    from sqlalchemy import create_engine, make_url, text

    name = f"lagtrain_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def workspace(prefix: str) -> Iterator[tuple[Path, ProcessGroup]]:
    """A temporary directory and a process group that is stopped on exit."""
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
        processes = ProcessGroup(workdir)
        stack.callback(processes.stop)
        yield workdir, processes


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPUs"


@contextmanager
def api_server(
    workdir: Path, processes: ProcessGroup, *, database_url: str, extra_env: dict[str, str]
) -> Iterator[Service]:
    """Migrate `database_url` and start `lagtrain server` alone (no dispatcher, no
    Ray): for benchmarks of the API itself. Stopped on exit."""
    token = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "LAGTRAIN_DATABASE_URL": database_url,
        "LAGTRAIN_ARTIFACTS_URL": str(workdir / "artifacts"),
        "LAGTRAIN_STATE_DIR": str(workdir / "state"),
        "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN": token,
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    lagtrain = str(BIN / "lagtrain")
    subprocess.run(
        [lagtrain, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120
    )
    mark = len(processes.procs)
    try:
        port = spawn_server(processes, env)
        yield Service(port=port, token=token, processes=processes)
    finally:
        processes.stop(since=mark)
