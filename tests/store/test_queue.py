"""Submit, claim policy (resources, quota, fair share, priority), reaper, registry."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.errors import IdempotencyConflict
from service.schemas.quota import QuotaDefaults
from service.store.attempts import ClaimedJob, claim_next, finish, heartbeat, requeue_expired
from service.store.db import transaction
from service.store.dispatchers import upsert_dispatcher
from service.store.jobs import enqueue, request_cancel
from service.store.lifecycle import JOBS_CHANNEL
from service.store.models import Job, JobAttempt, JobEvent, utcnow
from tests.store.conftest import MakeUser, Submit, get_job, load_job, minimal_spec

# The server's default time limit (its settings), for owners without their own.
SERVER_HOURS = QuotaDefaults().max_job_hours


def claim(
    factory: sessionmaker[Session],
    *,
    cpus: float = 99,
    gpus: float = 0,
    lease_seconds: float = 30,
    now: datetime | None = None,
) -> ClaimedJob | None:
    with transaction(factory) as session:
        return claim_next(
            session=session,
            dispatcher_id="d1",
            lease_seconds=lease_seconds,
            free_cpus=cpus,
            free_gpus=gpus,
            now=now,
        )


def claim_order(factory: sessionmaker[Session], n: int) -> list[int]:
    order = []
    for _ in range(n):
        claimed = claim(factory)
        assert claimed is not None
        order.append(claimed.job_id)
    return order


def test_enqueue_writes_row_event_and_gang_size(
    session_factory: sessionmaker[Session], make_user: MakeUser
) -> None:
    owner = make_user("ann")
    spec = minimal_spec(
        distributed={"workers": 3, "cpus_per_worker": 0.5, "gpus_per_worker": 1},
        priority=7,
        name="from-spec",
        max_attempts=2,
    )
    with transaction(session_factory) as session:
        job, created = enqueue(session=session, owner_id=owner, spec=spec)
        job_id = job.id
    assert created
    job = load_job(session_factory, job_id)
    assert (job.status, job.attempt, job.max_attempts, job.priority) == ("queued", 0, 2, 7)
    assert job.cpus_required == pytest.approx(1 + 3 * 0.5)
    assert job.gpus_required == pytest.approx(3.0)
    assert job.name == "from-spec" and job.progress_rounds == 10
    assert job.spec == spec.model_dump(mode="json")
    with session_factory() as session:
        event = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).one()
    assert (event.from_status, event.to_status, event.actor) == (None, "queued", f"user:{owner}")


def test_idempotency_key(session_factory: sessionmaker[Session], make_user: MakeUser) -> None:
    owner, other = make_user("ann"), make_user("bob")
    spec = minimal_spec()
    args: dict[str, Any] = {"spec": spec, "idempotency_key": "k1"}
    with transaction(session_factory) as session:
        first, created = enqueue(session=session, owner_id=owner, request_sha256="a" * 64, **args)
        assert created
    with transaction(session_factory) as session:
        again, created = enqueue(session=session, owner_id=owner, request_sha256="a" * 64, **args)
        assert (again.id, created) == (first.id, False)
        with pytest.raises(IdempotencyConflict):
            enqueue(session=session, owner_id=owner, request_sha256="b" * 64, **args)
        # Keys are per owner.
        theirs, created = enqueue(session=session, owner_id=other, request_sha256="b" * 64, **args)
        assert theirs.id != first.id and created
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 2
        assert session.scalar(select(func.count()).select_from(JobEvent)) == 2


def test_concurrent_first_use_of_a_key_yields_one_job(
    engine: Engine, session_factory: sessionmaker[Session], make_user: MakeUser
) -> None:
    owner = make_user("ann")
    args: dict[str, Any] = {
        "owner_id": owner,
        "spec": minimal_spec(max_attempts=1),
        "idempotency_key": "k",
        "request_sha256": "a" * 64,
    }
    second: list[tuple[int, bool]] = []

    def second_request() -> None:
        with transaction(session_factory) as session:
            job, created = enqueue(session=session, **args)
            second.append((job.id, created))

    with session_factory() as first, first.begin():
        job, created = enqueue(session=first, **args)
        first_id = job.id
        assert created
        thread = threading.Thread(target=second_request)
        thread.start()
        if engine.dialect.name == "postgresql":
            # Commit only once the second insert waits on the unique index, so that it
            # takes the IntegrityError path (SQLite serialises whole transactions).
            wait_until_a_backend_waits_on_a_lock(engine)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert second == [(first_id, False)]  # a replay, also when it lost the race
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1


def wait_until_a_backend_waits_on_a_lock(engine: Engine) -> None:
    deadline = time.monotonic() + 20
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.01)  # polling interval, not synchronisation
    raise AssertionError("the second submission never waited on the first")


def test_claim_marks_running_with_attempt_row_and_event(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("ann"))
    now = utcnow()
    claimed = claim(session_factory, now=now, lease_seconds=12)
    assert claimed is not None
    assert (claimed.job_id, claimed.attempt, claimed.resume, claimed.last_seq) == (
        job_id,
        1,
        None,
        0,
    )
    assert claimed.lease_expires_at == now + timedelta(seconds=12)
    assert claimed.spec["task"]["kind"] == "adding"
    job = load_job(session_factory, job_id)
    assert (job.status, job.attempt, job.lease_token, job.dispatcher_id) == (
        "running",
        1,
        claimed.fencing_token,
        "d1",
    )
    assert job.started_at == now and job.lease_expires_at == now + timedelta(seconds=12)
    with session_factory() as session:
        attempt = session.scalars(select(JobAttempt)).one()
        events = session.scalars(select(JobEvent.to_status).order_by(JobEvent.id)).all()
    assert (attempt.number, attempt.fencing_token, attempt.outcome) == (
        1,
        claimed.fencing_token,
        None,
    )
    assert events == ["queued", "running"]
    assert claim(session_factory) is None


def test_claim_respects_free_resources(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    owner = make_user("ann")
    big = submit(owner, distributed={"workers": 4, "cpus_per_worker": 1})  # 5 CPUs
    gpu = submit(owner, distributed={"workers": 2, "cpus_per_worker": 0.1, "gpus_per_worker": 1})
    small = submit(owner, distributed={"workers": 3, "cpus_per_worker": 0.1})  # 1.3 CPUs
    assert claim(session_factory, cpus=1.2, gpus=1) is None
    taken = claim(session_factory, cpus=1.3, gpus=1)  # float sum 1.3000000000000003 fits
    assert taken is not None and taken.job_id == small
    assert claim(session_factory, cpus=4.9, gpus=1.9) is None
    taken = claim(session_factory, cpus=4.9, gpus=2)
    assert taken is not None and taken.job_id == gpu
    taken = claim(session_factory, cpus=5, gpus=0)
    assert taken is not None and taken.job_id == big


def test_claim_order_priority_then_submit_time(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    owner = make_user("ann")
    low, mid1, high, mid2 = (submit(owner, priority=p) for p in (-1, 0, 5, 0))
    assert claim_order(session_factory, 4) == [high, mid1, mid2, low]


def test_fair_share_by_weight_before_priority(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann, bob = make_user("ann", share_weight=2.0), make_user("bob", share_weight=1.0)
    a = [submit(ann) for _ in range(4)]
    b = [submit(bob) for _ in range(4)]
    # running/weight, ties to the older job: a0 (0|0) b0 (.5|0) a1 (.5|1) a2 (1|1)
    # b1 (1.5|1) a3 (1.5|2) then bob's rest.
    expected = [a[0], b[0], a[1], a[2], b[1], a[3], b[2], b[3]]
    assert claim_order(session_factory, 8) == expected

    # Fair share ranks before priority: carl has nothing running, so his job goes first.
    carl = make_user("carl")
    urgent = submit(ann, priority=100)
    calm = submit(carl, priority=-100)
    assert claim_order(session_factory, 2) == [calm, urgent]


def test_zero_share_weight_waits_for_everyone_else(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    idle, busy = make_user("idle", share_weight=0.0), make_user("busy")
    first_idle = submit(idle)  # nothing running: 0 / tiny = 0, ties on submit time
    assert claim_order(session_factory, 1) == [first_idle]
    second_idle, others = submit(idle), [submit(busy) for _ in range(3)]
    assert claim_order(session_factory, 4) == [*others, second_idle]


def test_quota_blocks_only_that_owner(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    capped, free = make_user("capped", max_running_jobs=1), make_user("free")
    c1, c2 = submit(capped), submit(capped)
    f1 = submit(free)
    first = claim(session_factory)
    assert first is not None and first.job_id == c1
    second = claim(session_factory)
    assert second is not None and second.job_id == f1
    assert claim(session_factory) is None  # c2 waits for c1
    with transaction(session_factory) as session:
        finish(session=session, job_id=c1, token=first.fencing_token, summary=None)
    third = claim(session_factory)
    assert third is not None and third.job_id == c2


def test_requeue_expired_then_fail_at_max_attempts(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    owner = make_user("ann")
    job_id = submit(owner, max_attempts=2)
    t0 = utcnow()
    first = claim(session_factory, now=t0, lease_seconds=10)
    assert first is not None
    with transaction(session_factory) as session:
        assert requeue_expired(session=session, now=t0 + timedelta(seconds=9)) == []
        assert requeue_expired(session=session, now=t0 + timedelta(seconds=11)) == [job_id]
    job = load_job(session_factory, job_id)
    assert (job.status, job.attempt, job.lease_token, job.dispatcher_id) == (
        "queued",
        1,
        None,
        None,
    )

    second = claim(session_factory, now=t0 + timedelta(seconds=20), lease_seconds=10)
    assert second is not None and second.attempt == 2
    assert second.fencing_token != first.fencing_token
    with transaction(session_factory) as session:
        assert requeue_expired(session=session, now=t0 + timedelta(seconds=31)) == [job_id]
    job = load_job(session_factory, job_id)
    assert (job.status, job.attempt) == ("failed", 2)
    assert job.error == "lease expired after 2 attempts"
    with session_factory() as session:
        attempts = session.execute(
            select(JobAttempt.number, JobAttempt.outcome).order_by(JobAttempt.number)
        ).all()
        events = session.execute(
            select(JobEvent.to_status, JobEvent.actor, JobEvent.attempt).order_by(JobEvent.id)
        ).all()
    assert [tuple(a) for a in attempts] == [(1, "lost"), (2, "lost")]
    assert [tuple(e) for e in events] == [
        ("queued", f"user:{owner}", 0),
        ("running", "dispatcher:d1", 1),
        ("queued", "reaper", 1),
        ("running", "dispatcher:d1", 2),
        ("failed", "reaper", 2),
    ]


def test_reaper_spares_renewed_leases_and_cancels_cancelling(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    owner = make_user("ann")
    kept, cancelled = submit(owner), submit(owner)
    t0 = utcnow()
    a = claim(session_factory, now=t0, lease_seconds=10)
    b = claim(session_factory, now=t0, lease_seconds=10)
    assert a is not None and b is not None
    with transaction(session_factory) as session:
        heartbeat(
            session=session,
            job_id=kept,
            token=a.fencing_token,
            lease_seconds=10,
            default_max_job_hours=SERVER_HOURS,
            now=t0 + timedelta(seconds=8),
        )
        request_cancel(session=session, job=get_job(session, cancelled), actor="u")
    with transaction(session_factory) as session:
        assert requeue_expired(session=session, now=t0 + timedelta(seconds=12)) == [cancelled]
    assert load_job(session_factory, kept).status == "running"
    assert load_job(session_factory, cancelled).status == "cancelled"


def test_upsert_dispatcher(session_factory: sessionmaker[Session]) -> None:
    t0 = utcnow()
    with transaction(session_factory) as session:
        d = upsert_dispatcher(
            session=session, dispatcher_id="d1", hostname="h1", resources={"CPU": 2}, now=t0
        )
        assert (d.hostname, d.resources, d.started_at) == ("h1", {"CPU": 2}, t0)
    later = t0 + timedelta(seconds=5)
    with transaction(session_factory) as session:
        d = upsert_dispatcher(
            session=session,
            dispatcher_id="d1",
            hostname="h2",
            resources={"CPU": 4, "GPU": 1},
            now=later,
        )
        assert (d.hostname, d.resources, d.started_at, d.last_seen_at) == (
            "h2",
            {"CPU": 4, "GPU": 1},
            t0,
            later,
        )


# LISTEN/NOTIFY exists only on PostgreSQL; SQLite dispatchers poll.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_submission_notifies_dispatchers_on_commit(
    db_url: str, session_factory: sessionmaker[Session], make_user: MakeUser
) -> None:
    owner = make_user("ann")
    libpq_url = make_url(db_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(libpq_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {JOBS_CHANNEL}")
        with transaction(session_factory) as session:
            job_id = enqueue(session=session, owner_id=owner, spec=minimal_spec(max_attempts=1))[
                0
            ].id
            assert list(listener.notifies(timeout=0.2, stop_after=1)) == []  # not before commit
        note = next(listener.notifies(timeout=5, stop_after=1))
    assert (note.channel, note.payload) == (JOBS_CHANNEL, str(job_id))
