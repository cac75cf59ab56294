"""Deleting a finished job, or a finished sweep with its trials' jobs: the job rows,
and with them (the foreign keys cascade) their metric records, events, attempts and
checkpoint rows; a sweep's row takes its trials with it. The one way for a lab's
tables to shrink — metrics and events only grow otherwise — and for a user to clear
away experiments they no longer want; the audit log keeps the record that they were
there and who removed them.

A trial's job goes only with its sweep: the sweep's page draws each trial from its
job (status, bytes uploaded), so a sweep is kept whole or deleted whole.

On SQLite, metric records go first, in batches each in its own transaction (the
caller's loop): a job's records are one a round, and one transaction deleting a long
job's or a large sweep's would hold SQLite's one write lock for seconds (1.3 to 1.8
µs a record here: benchmarks/job_delete.py). The records of a finished job never
change, so a delete that fails part way leaves the job finished with fewer records,
and repeating the delete ends it. PostgreSQL locks rows, not the database: there the
cascade does it all."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.errors import Conflict
from service.store.models import TERMINAL, Checkpoint, Job, JobStatus, Metric, Sweep
from service.store.sweeps import SWEEP_TERMINAL

# Metric records deleted per transaction: ≈ 50 ms of SQLite's write lock on this
# machine, a few round trips' worth of work on PostgreSQL.
METRIC_BATCH = 20_000


@dataclass(frozen=True)
class Removal:
    """What a delete will take, as checked: the jobs, and their metric records then."""

    job_ids: list[int]
    metric_records: int


def check_job(*, session: Session, job: Job) -> Removal:
    """Conflict unless `job` may be deleted: no trial of a sweep, and finished (a
    dispatcher may still write to an unfinished one; terminal states never change,
    so the answer stays true)."""
    if job.sweep_id is not None:
        sweep = session.get(Sweep, job.sweep_id)
        finished = sweep is not None and sweep.status in SWEEP_TERMINAL
        raise Conflict(
            f"job {job.id} is a trial of sweep {job.sweep_id}; it is deleted with its "
            + (f"sweep: delete sweep {job.sweep_id}" if finished else "sweep, once it has finished")
        )
    if job.status == JobStatus.CANCELLING.value:
        raise Conflict(f"job {job.id} is cancelling; wait until it has stopped, then delete it")
    if job.status not in TERMINAL:
        raise Conflict(
            f"job {job.id} is {job.status}; cancel it or wait until it finishes, then delete it"
        )
    return Removal(job_ids=[job.id], metric_records=_records(session, [job.id]))


def check_sweep(*, session: Session, sweep: Sweep) -> Removal:
    """Conflict unless `sweep` may be deleted with its trials' jobs: the sweep and
    every one of those jobs finished (a cancelled sweep's running trials pass through
    cancelling). A finished sweep adds no trials, so the jobs found are all of them."""
    if sweep.status not in SWEEP_TERMINAL:
        raise Conflict(
            f"sweep {sweep.id} is {sweep.status}; cancel it or wait until it finishes, "
            "then delete it"
        )
    jobs = session.execute(
        select(Job.id, Job.status).where(Job.sweep_id == sweep.id).order_by(Job.id)
    ).all()
    unfinished = [f"job {row.id} is {row.status}" for row in jobs if row.status not in TERMINAL]
    if unfinished:
        raise Conflict(
            f"sweep {sweep.id}'s trial jobs have not all finished ({', '.join(unfinished)}); "
            "cancel them or wait until they finish, then delete it"
        )
    job_ids = [row.id for row in jobs]
    return Removal(job_ids=job_ids, metric_records=_records(session, job_ids))


def delete_metric_batch(*, session: Session, job_ids: list[int], limit: int) -> int:
    """Delete up to `limit` metric records of the jobs; how many went. In the order of
    their (job_id, seq) index: two deletes of the same job lock rows in one order, so
    on PostgreSQL one waits for the other instead of deadlocking."""
    batch = (
        select(Metric.id)
        .where(Metric.job_id.in_(job_ids))
        .order_by(Metric.job_id, Metric.seq)
        .limit(limit)
        .scalar_subquery()
    )
    gone = session.execute(
        delete(Metric).where(Metric.id.in_(batch)),
        execution_options={"synchronize_session": False},
    )
    session.flush()
    count: int = gone.rowcount  # type: ignore[attr-defined]
    return count


def delete_jobs(*, session: Session, job_ids: list[int]) -> tuple[list[tuple[str, int]], int]:
    """Delete the (checked) jobs and what they still have; returns (uri, bytes) of the
    checkpoint rows this call deleted, whose files the caller deletes once this
    transaction has committed, and how many of the jobs this call deleted (of two
    concurrent deletes, the second finds fewer than it checked: a NotFound)."""
    files = session.execute(
        delete(Checkpoint)
        .where(Checkpoint.job_id.in_(job_ids))
        .returning(Checkpoint.uri, Checkpoint.bytes),
        execution_options={"synchronize_session": False},
    ).all()
    gone = session.execute(
        delete(Job).where(Job.id.in_(job_ids)), execution_options={"synchronize_session": False}
    )
    session.flush()
    count: int = gone.rowcount  # type: ignore[attr-defined]
    return [(row.uri, row.bytes) for row in files], count


def delete_sweep_row(*, session: Session, sweep_id: int) -> bool:
    """Delete the sweep's row (its trials go with it: their foreign key cascades);
    whether this call deleted it."""
    gone = session.execute(
        delete(Sweep).where(Sweep.id == sweep_id), execution_options={"synchronize_session": False}
    )
    session.flush()
    return bool(gone.rowcount)  # type: ignore[attr-defined]


def _records(session: Session, job_ids: list[int]) -> int:
    if not job_ids:
        return 0
    return session.scalar(select(func.count()).where(Metric.job_id.in_(job_ids))) or 0
