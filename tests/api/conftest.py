"""API tests: the real app (create_app) over a migrated SQLite file and PostgreSQL,
driven through Starlette's TestClient (lifespan included, so bootstrap runs)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from service.app import create_app
from service.artifacts import checkpoint_url, write_file
from service.settings import Settings
from service.store.attempts import ClaimedJob, claim_next, finish
from service.store.checkpoints import record_checkpoint
from service.store.db import transaction
from service.store.metrics import MetricIn, append_metrics
from tests.polling import wait_until

REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ADMIN_TOKEN = "test-admin-token-" + "x" * 32
SMALL_SPEC: dict[str, Any] = {
    "task": {"kind": "adding", "num_samples": 64},
    "model": {"cell": "rnn", "hidden_size": 8},
    "distributed": {"workers": 1, "cpus_per_worker": 1},
    "schedule": {"rounds": 5, "batch_size": 8},
}

SMALL_SWEEP: dict[str, Any] = {
    "name": "small-sweep",
    "base": SMALL_SPEC,
    "parameters": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
    "objectives": [{"metric": "val_mse", "direction": "minimize"}],
    "trials": 3,
    "parallel": 2,
    "sampler": "random",
}


@pytest.fixture(autouse=True)
def _empty_tables(clean_db: None) -> None:
    """Every API test starts from empty tables (so bootstrap creates the admin)."""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    """A client plus the admin's token; creates users through the API."""

    client: TestClient
    settings: Settings
    sessions: sessionmaker[Session]

    @property
    def admin(self) -> dict[str, str]:
        return bearer(ADMIN_TOKEN)

    def create_user(self, name: str, *, role: str = "user") -> tuple[int, dict[str, str]]:
        r = self.client.post("/v1/users", json={"name": name, "role": role}, headers=self.admin)
        assert r.status_code == 201, r.text
        body = r.json()
        return body["id"], bearer(body["token"])

    def submit(self, headers: dict[str, str], spec: dict[str, Any] | None = None) -> int:
        r = self.client.post("/v1/jobs", json=spec or SMALL_SPEC, headers=headers)
        assert r.status_code == 201, r.text
        job_id: int = r.json()["id"]
        return job_id

    def claim(self) -> ClaimedJob:
        """Claim the next queued job as a dispatcher would (tests keep one queued)."""
        with transaction(self.sessions) as session:
            claimed = claim_next(
                session=session, dispatcher_id="d-test", lease_seconds=60, free_cpus=64, free_gpus=0
            )
        assert claimed is not None
        return claimed

    def append(self, claimed: ClaimedJob, seqs: range) -> None:
        with transaction(self.sessions) as session:
            append_metrics(
                session=session,
                job_id=claimed.job_id,
                token=claimed.fencing_token,
                attempt=claimed.attempt,
                records=[
                    MetricIn(seq=s, round=s - 1, values={"train_loss": 1.0 / s}, uploaded=[0])
                    for s in seqs
                ],
            )

    def checkpoint(self, claimed: ClaimedJob, round_: int, data: bytes) -> tuple[str, int]:
        """Write `data` as the claimed job's checkpoint after `round_` and record it, as
        its dispatcher would: (the file's uri, the checkpoint's id)."""
        uri = checkpoint_url(self.settings.artifacts_url, claimed.job_id, round_, claimed.attempt)
        write_file(uri, data)
        with transaction(self.sessions) as session:
            checkpoint = record_checkpoint(
                session=session,
                job_id=claimed.job_id,
                token=claimed.fencing_token,
                round=round_,
                seq=1,
                uri=uri,
                sha256=hashlib.sha256(data).hexdigest(),
                bytes=len(data),
            )
            return uri, checkpoint.id

    def finish(self, claimed: ClaimedJob) -> None:
        with transaction(self.sessions) as session:
            finish(
                session=session,
                job_id=claimed.job_id,
                token=claimed.fencing_token,
                summary={"train_loss": 0.1},
            )


MakeApi = Callable[..., Api]


@pytest.fixture
def make_api(settings: Settings) -> Iterator[MakeApi]:
    """make_api(**settings overrides) -> a started app (closed after the test)."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> Api:
        overrides.setdefault("bootstrap_admin_token", SecretStr(ADMIN_TOKEN))
        app_settings = settings.model_copy(update=overrides)
        app = create_app(app_settings)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return Api(client=client, settings=app_settings, sessions=app.state.sessions)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api()


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """`app` on a real uvicorn (in a thread, on a free port); yields its base URL."""
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: uv.started, timeout=30, what="uvicorn to start")
        port = uv.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


def assert_json_error(response: httpx.Response, status: int) -> Any:
    """The response is `status` with a JSON {"detail": ...} body and no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"detail"}, body
    return body["detail"]
