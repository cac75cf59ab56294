"""Shared fixtures.

Database fixtures: every store/API test runs on a migrated SQLite file and on a fresh
PostgreSQL database (127.0.0.1:5432, user postgres), created for the test session and
dropped at its end. Use `clean_db` (directly or from an autouse fixture in a
subdirectory's conftest) to start each test from empty tables.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.store.db import make_engine, make_sessionmaker
from service.store.migrate import upgrade
from service.store.models import Base

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DB_KINDS = ["sqlite", "postgresql"]


def on_one_database(kind: str) -> pytest.MarkDecorator:
    """Run a test on one database only: for a test of a process, Ray or file behaviour
    (a drain, a crashed replica, a web worker's supervision) whose store writes run on
    both databases in tests/store and tests/api. Such tests alternate the kind, so each
    database still runs a share of them; docs/decisions.md says which and why."""
    assert kind in DB_KINDS, kind
    return pytest.mark.parametrize("db_url", [kind], indirect=True)


def create_postgres_database() -> str:
    """A new, empty database; returns its URL. Pair with drop_postgres_database."""
    name = f"lagtrain_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            # A throwaway database needs no durable commits; skipping the WAL flush
            # makes every committing test several times faster on a slow disk.
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    finally:
        admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            # FORCE: a crashed subprocess may still hold a connection.
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def empty_database(kind: str, directory: Path) -> Iterator[str]:
    """An empty database of `kind` ("sqlite" file in `directory`, or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'lagtrain.db'}"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(scope="session", params=DB_KINDS)
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """URL of a migrated database, one per kind for the whole test session."""
    with empty_database(request.param, tmp_path_factory.mktemp("db")) as url:
        upgrade(url)
        yield url


@pytest.fixture(params=DB_KINDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a brand-new, unmigrated database for this test only (migration tests)."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def clean_db(engine: Engine) -> None:
    """Empty every table (children first) before the test."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        artifacts_url=str(tmp_path / "artifacts"),
        state_dir=tmp_path / "state",
    )
