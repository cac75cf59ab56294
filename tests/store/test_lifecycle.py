"""The lifecycle's transition table, tested edge by edge on both databases."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from service.errors import InvalidTransition, StaleLease
from service.schemas.resolved import ResolvedSpec
from service.store import lifecycle
from service.store.attempts import claim_next, finish
from service.store.db import transaction
from service.store.jobs import fail_queued, request_cancel
from service.store.models import TERMINAL, Job, JobAttempt, JobEvent, JobStatus
from tests.store.conftest import MakeUser, Submit, get_job, load_job, minimal_spec

S = JobStatus
# DESIGN §3, written out independently of lifecycle.ALLOWED.
EXPECTED_EDGES = {
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.CANCELLED),
    (S.QUEUED, S.FAILED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLING),
    (S.RUNNING, S.QUEUED),
    (S.CANCELLING, S.CANCELLED),
    (S.CANCELLING, S.SUCCEEDED),
    (S.CANCELLING, S.FAILED),
}
ALL_PAIRS = list(itertools.product(list(JobStatus), list(JobStatus)))


def put_job_in(
    status: JobStatus, factory: sessionmaker[Session], owner_id: int, submit: Submit
) -> tuple[int, str | None]:
    """A job in `status`, reached through the public store functions; (id, lease token)."""
    job_id = submit(owner_id)
    if status is S.QUEUED:
        return job_id, None
    with transaction(factory) as session:
        if status is S.CANCELLED:
            request_cancel(session=session, job=get_job(session, job_id), actor="user:test")
            return job_id, None
        if status is S.FAILED:
            fail_queued(session=session, job_id=job_id, actor="admin", reason="no such GPU")
            return job_id, None
        claimed = claim_next(
            session=session, dispatcher_id="d", lease_seconds=60, free_cpus=99, free_gpus=0
        )
        assert claimed is not None and claimed.job_id == job_id
        token = claimed.fencing_token
        if status is S.CANCELLING:
            request_cancel(session=session, job=get_job(session, job_id), actor="user:test")
        elif status is S.SUCCEEDED:
            finish(session=session, job_id=job_id, token=token, summary={})
            return job_id, None
    return job_id, token


def _events(session: Session, job_id: int) -> list[tuple[str | None, str, str]]:
    rows = session.execute(
        select(JobEvent.from_status, JobEvent.to_status, JobEvent.actor)
        .where(JobEvent.job_id == job_id)
        .order_by(JobEvent.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_expected_edges_match_the_table() -> None:
    table = {(a, b) for a, targets in lifecycle.ALLOWED.items() for b in targets}
    assert table == EXPECTED_EDGES
    assert all(not lifecycle.ALLOWED[t] for t in TERMINAL)


@pytest.mark.parametrize(("start", "to"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_every_edge(
    start: JobStatus,
    to: JobStatus,
    session_factory: sessionmaker[Session],
    make_user: MakeUser,
    submit: Submit,
) -> None:
    owner = make_user("ann")
    job_id, token = put_job_in(start, session_factory, owner, submit)
    with session_factory() as session:
        events_before = _events(session, job_id)
    assert events_before[-1][1] == start.value

    actor = "tester"
    with transaction(session_factory) as session:
        job = get_job(session, job_id)
        if (start, to) == (S.QUEUED, S.RUNNING):
            # Only the claim statement starts a job: it also creates the lease.
            with pytest.raises(InvalidTransition, match="only a claim"):
                lifecycle.transition(session=session, job=job, to=to, actor=actor)
            claimed = claim_next(
                session=session, dispatcher_id="d", lease_seconds=60, free_cpus=99, free_gpus=0
            )
            assert claimed is not None and claimed.job_id == job_id
            actor = "dispatcher:d"
        elif (start, to) in EXPECTED_EDGES:
            lifecycle.transition(
                session=session, job=job, to=to, actor=actor, reason="why", expect_token=token
            )
        else:
            with pytest.raises(InvalidTransition):
                lifecycle.transition(
                    session=session, job=job, to=to, actor=actor, reason="why", expect_token=token
                )

    after = load_job(session_factory, job_id)
    with session_factory() as session:
        events_after = _events(session, job_id)
    if (start, to) in EXPECTED_EDGES:
        assert after.status == to.value
        assert events_after == [*events_before, (start.value, to.value, actor)]
        if to in TERMINAL:
            assert after.finished_at is not None
            assert after.lease_token is None
    else:
        assert after.status == start.value
        assert events_after == events_before


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_never_change(
    terminal: JobStatus,
    session_factory: sessionmaker[Session],
    make_user: MakeUser,
    submit: Submit,
) -> None:
    job_id, _ = put_job_in(terminal, session_factory, make_user("ann"), submit)
    with transaction(session_factory) as session:
        job = get_job(session, job_id)
        for to in JobStatus:
            with pytest.raises(InvalidTransition, match="never changes"):
                lifecycle.transition(session=session, job=job, to=to, actor="admin")
        # Cancelling a finished job is a harmless no-op, not a change.
        assert request_cancel(session=session, job=job, actor="user:ann").status == terminal.value
    assert load_job(session_factory, job_id).status == terminal.value


def test_success_needs_the_lease_holder(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id, token = put_job_in(S.RUNNING, session_factory, make_user("ann"), submit)
    with transaction(session_factory) as session:
        job = get_job(session, job_id)
        with pytest.raises(InvalidTransition, match="lease holder"):
            lifecycle.transition(session=session, job=job, to=S.SUCCEEDED, actor="admin")
        with pytest.raises(StaleLease):
            lifecycle.transition(
                session=session, job=job, to=S.SUCCEEDED, actor="admin", expect_token="f" * 32
            )
    assert load_job(session_factory, job_id).status == "running"
    assert token is not None


def test_leaving_running_ends_the_attempt(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id, token = put_job_in(S.RUNNING, session_factory, make_user("ann"), submit)
    with transaction(session_factory) as session:
        lifecycle.transition(
            session=session,
            job=get_job(session, job_id),
            to=S.FAILED,
            actor="admin",
            reason="broken node",
        )
    with session_factory() as session:
        attempt = session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)).one()
        job = get_job(session, job_id)
    assert (attempt.number, attempt.fencing_token, attempt.outcome) == (1, token, "failed")
    assert attempt.error == "broken node" and attempt.ended_at is not None
    assert job.error == "broken node" and job.lease_token is None and job.lease_expires_at is None


def test_request_cancel_paths(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    owner = make_user("ann")
    running, _ = put_job_in(S.RUNNING, session_factory, owner, submit)
    queued, _ = put_job_in(S.QUEUED, session_factory, owner, submit)
    with transaction(session_factory) as session:
        assert request_cancel(session=session, job=get_job(session, queued), actor="u").status == (
            "cancelled"
        )
        assert request_cancel(session=session, job=get_job(session, running), actor="u").status == (
            "cancelling"
        )
        # Asking again while it stops changes nothing and adds no event.
        assert request_cancel(session=session, job=get_job(session, running), actor="u").status == (
            "cancelling"
        )
    with session_factory() as session:
        assert [e[1] for e in _events(session, running)] == ["queued", "running", "cancelling"]


def test_submit_and_claim_are_transitions_too(
    session_factory: sessionmaker[Session], make_user: MakeUser
) -> None:
    """transition() is also the submit (a new Job: only to queued) and the claim (a
    Claim: only to running, None when nothing is eligible); each writes its event."""
    owner = make_user("ann")
    claim = lifecycle.Claim(dispatcher_id="d", lease_seconds=60, free_cpus=99, free_gpus=0)
    spec = minimal_spec()
    with transaction(session_factory) as session:
        assert (
            lifecycle.transition(session=session, job=claim, to=S.RUNNING, actor="dispatcher:d")
            is None
        )
        for to in set(JobStatus) - {S.QUEUED}:
            with pytest.raises(InvalidTransition, match="a new job starts queued"):
                lifecycle.transition(session=session, job=new_job(owner, spec), to=to, actor="t")
        job = lifecycle.transition(
            session=session, job=new_job(owner, spec), to=S.QUEUED, actor="t"
        )
        for to in set(JobStatus) - {S.RUNNING}:
            with pytest.raises(InvalidTransition, match="a claim makes a job running"):
                lifecycle.transition(session=session, job=claim, to=to, actor="dispatcher:d")
        started = lifecycle.transition(
            session=session, job=claim, to=S.RUNNING, actor="dispatcher:d"
        )
        assert started is not None and started.id == job.id
        assert (started.status, started.attempt, started.dispatcher_id) == ("running", 1, "d")
        attempt = session.scalars(select(JobAttempt).where(JobAttempt.job_id == job.id)).one()
        assert attempt.fencing_token == started.lease_token
        assert _events(session, job.id) == [
            (None, "queued", "t"),
            ("queued", "running", "dispatcher:d"),
        ]


def new_job(owner_id: int, spec: ResolvedSpec) -> Job:
    return Job(
        owner_id=owner_id,
        name=None,
        spec=spec.model_dump(mode="json"),
        priority=0,
        cpus_required=1.0,
        gpus_required=0.0,
        attempt=0,
        max_attempts=1,
        progress_round=0,
        progress_rounds=1,
        last_seq=0,
    )


def test_a_submitted_job_is_stored_and_attached_as_if_flushed(
    session_factory: sessionmaker[Session], make_user: MakeUser
) -> None:
    """The submit stores the new row by one Core INSERT (issue 13): the object that comes
    back is the session's persistent Job with every attribute loaded (reading one runs
    no statement), later changes to it in the same transaction are written, and the
    columns it left unset are SQL NULL or their defaults, as an ORM flush leaves them."""
    owner = make_user("ann")
    job = Job(  # priority, gpus_required, attempt, progress_round, last_seq: defaults
        owner_id=owner,
        spec=minimal_spec().model_dump(mode="json"),
        cpus_required=1.0,
        max_attempts=2,
        progress_rounds=10,
    )
    with transaction(session_factory) as session:
        stored = lifecycle.transition(session=session, job=job, to=S.QUEUED, actor="t")
        assert stored is job and job in session and not inspect(job).pending
        assert inspect(job).unloaded == set()
        statements: list[str] = []

        def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            statements.append(statement)

        event.listen(session.get_bind(), "before_cursor_execute", count)
        try:
            loaded = {a.key: getattr(job, a.key) for a in inspect(Job).column_attrs}
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", count)
        assert statements == []
        assert loaded["id"] > 0 and loaded["status"] == "queued"
        assert (loaded["priority"], loaded["attempt"], loaded["last_seq"]) == (0, 0, 0)
        assert loaded["summary"] is None and loaded["lease_token"] is None
        job.priority = 7  # tracked like any loaded object's change
    with session_factory() as session:
        row = session.execute(
            select(Job.priority, Job.gpus_required, Job.summary.is_(None), Job.created_at).where(
                Job.id == loaded["id"]
            )
        ).one()
        assert (row[0], row[1], row[2]) == (7, 0.0, True)
        assert row[3] == loaded["created_at"]
