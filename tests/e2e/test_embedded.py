"""`lagtrain server --embedded` (what `make run` starts): API + SQLite + its own local
Ray + one dispatcher in one process tree; a job runs, and SIGTERM stops it cleanly
(Ray replaces the SIGTERM handler; lagtrain restores it)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.client import TERMINAL_STATUSES, Client
from tests.e2e.conftest import STARTUP_DEADLINE_S, free_port, wait_until

pytestmark = pytest.mark.ray


def test_embedded_server_runs_a_job_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAGTRAIN_", "RAY_"))}
    env["PYTHONUNBUFFERED"] = "1"
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "lagtrain"),
            "server",
            "--embedded",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=STARTUP_DEADLINE_S, what="the embedded server")
        token_file = tmp_path / ".lagtrain" / "admin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        with Client(url, token_file.read_text().strip()) as client:
            job = client.submit(
                {
                    "task": {"kind": "lag_paper_linreg"},
                    "aggregation": {"strategy": "lag_wk"},
                    "distributed": {"workers": 3, "cpus_per_worker": 0.25},
                    "schedule": {"rounds": 20},
                }
            )
            wait_until(
                lambda: client.job(job["id"])["status"] in TERMINAL_STATUSES,
                timeout=120,
                what="the job to finish in embedded mode",
            )
            done = client.job(job["id"])
            assert done["status"] == "succeeded", (done, (tmp_path / "server.log").read_text())
            assert done["summary"]["uploads_total"] < done["summary"]["dense_equiv_uploads"]
        assert (tmp_path / ".lagtrain" / "lagtrain.db").is_file()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, (tmp_path / "server.log").read_text()[-3000:]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
