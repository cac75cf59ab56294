"""The reliability suite (`make chaos`): long, fault-injecting runs that are not part
of `make test`. Collected only with LAGTRAIN_CHAOS=1 (the Makefile target sets it).

Every scenario runs on a SQLite file and on a PRIVATE PostgreSQL server (never the
shared one on :5432, which it restarts), with the session's local Ray, and loopback
only; each stops what it started."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.store.db import make_engine, make_sessionmaker
from service.store.migrate import upgrade
from tests.chaos.harness import Processes
from tests.private_postgres import PrivatePostgres, postgres_binaries_available
from tests.ray_cluster import ray_address

__all__ = ["ray_address"]

if os.environ.get("LAGTRAIN_CHAOS") != "1":
    collect_ignore_glob = ["test_*.py"]


@dataclass
class Store:
    kind: str
    url: str
    sessions: sessionmaker[Session]
    server: PrivatePostgres | None  # the private PostgreSQL (restartable)
    path: Path | None  # the SQLite file


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    server: PrivatePostgres | None = None
    path: Path | None = None
    if request.param == "sqlite":
        path = tmp_path / "lagtrain.db"
        url = f"sqlite:///{path}"
    else:
        if not postgres_binaries_available():
            pytest.skip("PostgreSQL server binaries not found (LAGTRAIN_PG_BIN)")
        server = PrivatePostgres()
        server.start()
        url = server.create_database()
    upgrade(url)
    engine = make_engine(url)
    try:
        yield Store(request.param, url, make_sessionmaker(engine), server, path)
    finally:
        engine.dispose()
        if server is not None:
            server.destroy()


@pytest.fixture
def processes(store: Store, ray_address: str, tmp_path: Path) -> Iterator[Processes]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"},
        "LAGTRAIN_DATABASE_URL": store.url,
        "LAGTRAIN_ARTIFACTS_URL": str(tmp_path / "artifacts"),
        "LAGTRAIN_STATE_DIR": str(tmp_path / "state"),
        "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "LAGTRAIN_LEASE_SECONDS": "4",
        "LAGTRAIN_HEARTBEAT_SECONDS": "0.5",
        "RAY_ADDRESS": ray_address,
        "PYTHONUNBUFFERED": "1",
    }
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()
