"""A dispatcher back from a store outage reaps no lease for a lease period: the
leases that ran out during the outage are its peers' (and its own jobs'), whose
heartbeats renew them within seconds of the store's return (workers.reap_grace).
Before, the first maintenance after the outage requeued every such job, healthy
ones included (a review, 2026-12-06)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.node_fit import NodeShape
from service.schemas.resolve import resolve
from service.store.attempts import claim_next
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.jobs import enqueue
from service.store.models import Job
from service.store.users import create_user
from tests.hand_clock import Clock
from tests.polling import wait_until
from tests.workers.dispatcher_seams import GiB, cluster_at_seam, dispatcher_store
from workers.dispatcher import Dispatcher
from workers.reap_grace import ReapGrace
from workers.store_writer import is_transient


def test_an_outage_of_half_a_lease_or_more_stops_the_reaper_for_a_lease() -> None:
    clock = Clock()
    grace = ReapGrace(lease_seconds=30, clock=clock)
    assert grace.may_reap()
    clock.now = 2
    grace.store_failed()  # a SQLite lock past its busy timeout, reached at 0
    assert not grace.may_reap(), "not while the store is away"
    clock.now = 9
    grace.store_answered()  # 9 s: no lease renewed every heartbeat ran out
    assert grace.may_reap()
    clock.now = 70
    grace.store_failed()  # reported a minute later: a statement hung on its timeouts
    clock.now = 71
    grace.store_answered()  # gone since the maintenance at 9: every lease ran out
    clock.now = 100
    assert not grace.may_reap(), "the heartbeats are renewing the leases"
    clock.now = 101
    assert grace.may_reap(), "a lease later: what is still expired has no one renewing it"


def _running_job_whose_lease_has_run_out(sessions: sessionmaker[Session]) -> int:
    """Claimed by a dispatcher "d0" with a lease that ends at once."""
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="ann", role="user")
        job, _ = enqueue(
            session=session, owner_id=user.id, spec=resolve({"task": {"kind": "adding"}})
        )
        claimed = claim_next(
            session=session, dispatcher_id="d0", lease_seconds=0, free_cpus=64, free_gpus=0
        )
        assert claimed is not None and claimed.job_id == job.id
        return job.id


def _status(sessions: sessionmaker[Session], job_id: int) -> tuple[str, int]:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status, job.attempt


def test_a_dispatcher_back_from_a_store_outage_reaps_nothing_for_a_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    settings = settings.model_copy(update={"lease_seconds": 8.0, "heartbeat_seconds": 0.5})
    node = NodeShape(4, 0, 16 * GiB)
    cluster_at_seam(monkeypatch, [(node, node)])  # no Ray: the maintenance's reads
    job_id = _running_job_whose_lease_has_run_out(sessions)
    # The outage: another connection holds SQLite's write lock past the dispatcher's
    # busy timeout ("database is locked"), from before the dispatcher's first turn.
    holder = sqlite3.connect(tmp_path / "lagtrain.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    engine = make_engine(settings.database_url, sqlite_busy_timeout_ms=100)
    dispatcher = Dispatcher(settings, make_sessionmaker(engine), dispatcher_id="d1")
    thread = threading.Thread(target=dispatcher.run_forever, daemon=True)
    thread.start()
    try:
        # Three maintenances fail, 2 s apart: the outage outlasts half a lease.
        wait_until(lambda: dispatcher.maintenance_runs >= 3, timeout=30, what="failed turns")
        holder.close()
        back = dispatcher.maintenance_runs
        wait_until(
            lambda: dispatcher.maintenance_runs >= back + 3,
            timeout=30,
            what="two maintenances done after the one that reached the store again",
        )
        assert _status(sessions, job_id) == ("running", 1), "reaped at the store's return"
        wait_until(
            lambda: _status(sessions, job_id)[0] == "queued",
            timeout=30,
            what="the reaper, a lease after the store answered",
        )
    finally:
        holder.close()
        dispatcher.stop()
        thread.join(timeout=30)
        engine.dispose()


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.errors.TooManyConnections("sorry, too many clients already"), True),
        (psycopg.errors.DiskFull("could not extend file: No space left on device"), True),
        (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), True),
        (RuntimeError("a bug"), False),
    ],
)
def test_a_failure_the_heartbeat_retries_counts_as_a_store_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, outage: bool
) -> None:
    """One rule for both: what the heartbeat's writer retries (store_writer.is_transient)
    renews no lease while it lasts, so the reaper must wait it out too. Before (a
    review), the loop counted only a lost connection (its log's rule), and an outage
    of too many connections, a full disk or a lock timeout longer than a lease let it
    requeue healthy jobs whose heartbeats were still retrying."""
    raised = sqlalchemy.exc.OperationalError("UPDATE", {}, error) if outage else error
    assert is_transient(raised) is outage
    settings, sessions = dispatcher_store(tmp_path)
    cluster_at_seam(monkeypatch, [(NodeShape(4, 0, 16 * GiB),) * 2])
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")

    def maintain() -> None:
        dispatcher.stop()  # one turn of the loop: it ends after this failure
        raise raised

    monkeypatch.setattr(dispatcher, "_maintain", maintain)
    dispatcher.run_forever()
    assert dispatcher.reap_grace.may_reap() is not outage
