"""`lagtrain server --embedded` (what `make run` starts): API + SQLite + its own local
Ray + one dispatcher in one process tree; a job runs, a GP sweep runs to completion
(tests/e2e/sweep_checks.py; the sweep tests' SQLite case, on this one local Ray), and
SIGTERM stops it cleanly (Ray replaces the SIGTERM handler; lagtrain restores it)."""

from __future__ import annotations

import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.client import TERMINAL_STATUSES
from tests.e2e.conftest import Stack, embedded_env, wait_until
from tests.e2e.sweep_checks import check_a_sweep_runs_to_completion

pytestmark = pytest.mark.ray


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Stack]:
    env = embedded_env() | {
        # The sweep's controller steps as soon as a trial ends.
        "LAGTRAIN_SWEEP_POLL_SECONDS": "0.2",
        # Fewer logical CPUs: fewer worker processes Ray starts ahead.
        "LAGTRAIN_EMBEDDED_RAY_CPUS": "4",
        # The job's gang (3 replicas + its driver) hands its actors, torch imported, to
        # the sweep's trials (workers.warm_pool) instead of each trial starting two
        # processes that import torch; the embedded wiring under test is the same.
        "LAGTRAIN_WARM_POOL_SIZE": "4",
    }
    stack = Stack(env, tmp_path)
    try:
        yield stack
    finally:
        stack.stop(timeout=60)


def test_embedded_server_runs_a_job_and_a_sweep_and_stops_on_sigterm(
    embedded: Stack, tmp_path: Path
) -> None:
    server = embedded.start_server("--embedded")
    token_file = tmp_path / ".lagtrain" / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # A first start: the bootstrap prints where the token is; the start line does
    # not claim a file that is not there yet.
    assert "created user 'admin'; its token (shown once, also in " in embedded.logs()
    assert "the admin token is in" not in embedded.logs(), embedded.logs()
    embedded.admin_token = token_file.read_text().strip()
    with embedded.admin() as client:
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
        assert done["status"] == "succeeded", (done, embedded.logs())
        assert done["summary"]["uploads_total"] < done["summary"]["dense_equiv_uploads"]
    database = tmp_path / ".lagtrain" / "lagtrain.db"
    assert database.is_file()
    check_a_sweep_runs_to_completion(
        embedded.url, embedded.admin_token, f"sqlite:///{database}", tmp_path
    )
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0, embedded.logs()
