"""The dispatcher registry's stopped mark (on SQLite and PostgreSQL): a dispatcher
that exited cleanly is not alive at once, whatever its last_seen_at says; its
resources no longer count; the same id registering again runs again."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from service.store.db import db_now, transaction
from service.store.dispatchers import (
    cluster_resources,
    is_alive,
    list_dispatchers,
    mark_dispatcher_stopped,
    upsert_dispatcher,
)
from service.store.models import Dispatcher

LEASE = timedelta(seconds=30)
NODE = {"total": {"CPU": 8}, "free": {"CPU": 6}}


def _register(sessions: sessionmaker[Session], dispatcher_id: str, **resources: object) -> None:
    with transaction(sessions) as session:
        upsert_dispatcher(
            session=session,
            dispatcher_id=dispatcher_id,
            hostname="node-1",
            resources=dict(resources) or NODE,
        )


def _read(sessions: sessionmaker[Session], dispatcher_id: str) -> Dispatcher:
    with sessions() as session:
        dispatcher = session.get(Dispatcher, dispatcher_id)
        assert dispatcher is not None
        return dispatcher


def test_a_stopped_dispatcher_is_not_alive_by_the_database_clock(
    session_factory: sessionmaker[Session],
) -> None:
    _register(session_factory, "d1")
    with transaction(session_factory) as session:
        before = db_now(session)
        marked = mark_dispatcher_stopped(session=session, dispatcher_id="d1")
        assert marked is not None and marked.stopped_at is not None
        after = db_now(session)
    stopped = _read(session_factory, "d1")
    assert stopped.stopped_at is not None and before <= stopped.stopped_at <= after
    # Seen a moment ago, well within its lease: stopped all the same.
    alive_since = after - LEASE
    assert stopped.last_seen_at >= alive_since
    assert not is_alive(stopped, alive_since=alive_since)

    # A second mark (a second exit path) keeps the first time.
    with transaction(session_factory) as session:
        mark_dispatcher_stopped(session=session, dispatcher_id="d1")
    assert _read(session_factory, "d1").stopped_at == stopped.stopped_at


def test_marking_an_unknown_dispatcher_changes_nothing(
    session_factory: sessionmaker[Session],
) -> None:
    with transaction(session_factory) as session:
        assert mark_dispatcher_stopped(session=session, dispatcher_id="never") is None
    with session_factory() as session:
        assert list_dispatchers(session=session) == []


def test_registering_again_under_the_same_id_clears_the_mark(
    session_factory: sessionmaker[Session],
) -> None:
    _register(session_factory, "d1")
    with transaction(session_factory) as session:
        mark_dispatcher_stopped(session=session, dispatcher_id="d1")
    _register(session_factory, "d1")
    again = _read(session_factory, "d1")
    assert again.stopped_at is None
    with session_factory() as session:
        alive_since = db_now(session) - LEASE
    assert is_alive(again, alive_since=alive_since)


def test_the_cluster_resources_are_the_live_dispatchers_only(
    session_factory: sessionmaker[Session],
) -> None:
    """The stopped dispatcher reported last (the freshest report) used to be the
    cluster's word until its lease ran out; the one still running is."""
    _register(session_factory, "running", total={"CPU": 4}, free={"CPU": 1})
    _register(session_factory, "stopping", total={"CPU": 8}, free={"CPU": 8})
    with session_factory() as session:
        alive_since = db_now(session) - LEASE
        both = list_dispatchers(session=session)
    assert cluster_resources(both, alive_since=alive_since)["free"] == {"CPU": 8.0}

    with transaction(session_factory) as session:
        mark_dispatcher_stopped(session=session, dispatcher_id="stopping")
    with session_factory() as session:
        dispatchers = list_dispatchers(session=session)
    assert cluster_resources(dispatchers, alive_since=alive_since) == {
        "total": {"CPU": 4.0},
        "free": {"CPU": 1.0},
    }
    with transaction(session_factory) as session:
        mark_dispatcher_stopped(session=session, dispatcher_id="running")
    with session_factory() as session:
        dispatchers = list_dispatchers(session=session)
    assert cluster_resources(dispatchers, alive_since=alive_since) == {"total": {}, "free": {}}
