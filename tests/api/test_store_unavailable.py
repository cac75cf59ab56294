"""A database that does not answer (here SQLite locked past its busy timeout by
another process's exclusive transaction) is a 503 with Retry-After that a client can
retry, not a 500 with a traceback per request; the same request succeeds once the
store answers again, and nothing half-done is left behind."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.engine import make_url

from service.http_errors import STORE_RETRY_AFTER_SECONDS
from service.store.db import make_engine, make_sessionmaker
from tests.api.conftest import SMALL_SPEC, Api


def test_a_locked_store_is_503_with_retry_after_then_the_retry_succeeds(api: Api) -> None:
    url = make_url(api.settings.database_url)
    if url.get_backend_name() != "sqlite":
        pytest.skip("a lock held past the busy timeout: SQLite's way of not answering")
    _uid, alice = api.create_user("alice")
    # The app's own sessions, with a busy timeout of 0.1 s instead of 30 s (as the
    # dispatcher's store-outage tests shorten it): the same store, answered sooner.
    app_state = api.client.app.state  # type: ignore[attr-defined]
    engine = make_engine(api.settings.database_url, sqlite_busy_timeout_ms=100)
    app_state.sessions = make_sessionmaker(engine)
    holder = sqlite3.connect(str(url.database), isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        for path, body in (("/v1/jobs", SMALL_SPEC), ("/v1/tokens", {})):
            refused = api.client.post(path, json=body, headers=alice)
            assert refused.status_code == 503, (path, refused.text)
            assert refused.headers["Retry-After"] == str(STORE_RETRY_AFTER_SECONDS)
            detail = refused.json()["detail"]
            assert detail == "the database is not answering; try again shortly"
        # Reads take no lock under WAL, and a token's last use, due here, is skipped
        # rather than waited for (db.write_if_free): a GET still answers.
        assert api.client.get("/v1/users/me", headers=alice).status_code == 200
        holder.execute("ROLLBACK")
        assert api.client.get("/v1/jobs", headers=alice).json()["data"] == []
        assert api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice).status_code == 201
    finally:
        holder.close()
        engine.dispose()


def test_a_missing_table_is_a_500_not_an_outage(api: Api) -> None:
    """SQLite reports a missing table (a bug, or a schema out of step) as an
    OperationalError too: that is no outage a client should retry for ever."""
    url = make_url(api.settings.database_url)
    if url.get_backend_name() != "sqlite":
        pytest.skip("PostgreSQL reports a missing table as a ProgrammingError (a 500 already)")
    _uid, alice = api.create_user("alice")
    other = sqlite3.connect(str(url.database), isolation_level=None)
    try:
        other.execute("ALTER TABLE api_tokens RENAME TO api_tokens_away")
        broken = api.client.get("/v1/users/me", headers=alice)
        assert broken.status_code == 500 and "Retry-After" not in broken.headers, broken.text
    finally:
        other.execute("ALTER TABLE api_tokens_away RENAME TO api_tokens")
        other.close()
    assert api.client.get("/v1/users/me", headers=alice).status_code == 200


def test_every_route_that_reads_the_store_declares_the_503(api: Api) -> None:
    """Generated clients see the 503 wherever it can happen: every /v1 operation (and
    the Prometheus route); /healthz touches no database."""
    document = api.client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = "503" in operation["responses"]
            assert declared == (path != "/healthz"), (method, path)
