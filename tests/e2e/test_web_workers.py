"""`lagtrain server` with LAGTRAIN_WEB_WORKERS=2: two uvicorn worker processes, each
building its app from the environment, serve one API over one store, and SIGTERM
stops them all."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.timeout(180)

SPEC = {"task": {"kind": "adding", "num_samples": 64}, "schedule": {"rounds": 2}}


def test_two_web_workers_serve_one_store_and_stop_on_sigterm(service_stack: Stack) -> None:
    service_stack.env["LAGTRAIN_WEB_WORKERS"] = "2"
    service_stack.start_server()
    with service_stack.admin() as admin:
        submitted = {admin.submit({**SPEC, "name": f"job-{i}"})["id"] for i in range(20)}
        listed = {job["id"] for job in admin.jobs()}
    assert submitted <= listed
    assert "Started parent process" in service_stack.logs(), service_stack.logs()
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
