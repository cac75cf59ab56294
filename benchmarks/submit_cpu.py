"""CPU per submit inside the API process, without the HTTP server or a client: the
app (service.app.create_app over a fresh PostgreSQL database) is called as an ASGI
application, one POST /v1/jobs after another, on one event loop with its real thread
pool. Reports CPU ms per submit (time.process_time: every thread of this process,
PostgreSQL's backend not included) and, optionally, Python function calls per submit
(a profile hook on every thread: a count, the same on a busy or a quiet machine).

It leaves out what is the same for every app version: uvicorn's HTTP parsing, the
socket writes and the access log. benchmarks/submit_load.py measures those too.

    .venv/bin/python benchmarks/submit_cpu.py [--submits 1000] [--rounds 3] [--calls]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.app import create_app
from service.settings import Settings
from service.store.migrate import upgrade

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import load_average, postgres_database
    from benchmarks.submit_load import POSTGRES_ADMIN_URL, SPEC
else:  # run as `python benchmarks/submit_cpu.py`: benchmarks/ is on sys.path
    from local_stack import load_average, postgres_database
    from submit_load import POSTGRES_ADMIN_URL, SPEC

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def call(app: Any, method: str, path: str, token: str, payload: Any) -> tuple[int, bytes]:
    """One request through the ASGI app: (status, body)."""
    body = json.dumps(payload).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a disconnect never comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


class CallCounter:
    """Counts Python function calls in every thread (a profile hook: installed in
    this thread and in every thread started afterwards, e.g. a new loop's pool)."""

    def __init__(self) -> None:
        self.calls = 0

    def hook(self, _frame: Any, event: str, _arg: Any) -> None:
        if event == "call":
            self.calls += 1  # threads race on this; the error is a few counts in 10^5

    def install(self) -> None:
        threading.setprofile(self.hook)
        sys.setprofile(self.hook)

    def remove(self) -> None:
        sys.setprofile(None)
        threading.setprofile(None)


async def run(
    args: argparse.Namespace, url: str, workdir: Path, counter: CallCounter | None = None
) -> None:
    admin_token = secrets.token_urlsafe(32)
    settings = Settings(
        database_url=url,
        artifacts_url=str(workdir / "artifacts"),
        state_dir=workdir / "state",
        bootstrap_admin_token=admin_token,
        default_max_queued_jobs=10**9,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        status, body = await call(app, "POST", "/v1/users", admin_token, {"name": "load"})
        assert status == 201, body
        token = json.loads(body)["token"]

        async def submits(n: int) -> None:
            for _ in range(n):
                status, body = await call(app, "POST", "/v1/jobs", token, SPEC)
                if status != 201:
                    raise RuntimeError(f"submit: HTTP {status} {body!r}")

        await submits(100)  # warm: caches, pool, the token's last_used_at write
        if counter is not None:
            before = counter.calls
            await submits(100)
            print(f"Python calls per submit: {(counter.calls - before) / 100:.0f}")
            return
        for _ in range(args.rounds):
            cpu, wall = time.process_time(), time.perf_counter()
            await submits(args.submits)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"CPU {cpu * 1e3 / args.submits:.2f} ms/submit "
                f"(wall {wall * 1e3 / args.submits:.2f}); {load_average()}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=1000, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", action="store_true", help="also count Python calls per submit")
    parser.add_argument("--postgres-admin-url", default=POSTGRES_ADMIN_URL)
    args = parser.parse_args()
    with (
        postgres_database(args.postgres_admin_url) as url,
        tempfile.TemporaryDirectory(prefix="lagtrain-cpu-") as workdir,
    ):
        upgrade(url)
        asyncio.run(run(args, url, Path(workdir)))
    if args.calls:  # on a new database, a new loop and new pool threads, all counted
        counter = CallCounter()
        with (
            postgres_database(args.postgres_admin_url) as url,
            tempfile.TemporaryDirectory(prefix="lagtrain-cpu-") as workdir,
        ):
            upgrade(url)
            counter.install()
            try:
                asyncio.run(run(args, url, Path(workdir), counter))
            finally:
                counter.remove()


if __name__ == "__main__":
    main()
