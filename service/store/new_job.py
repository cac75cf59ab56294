"""A new job's row and its first event (none -> queued), for lifecycle.transition:
the submit's write, the hottest statement a lab sends (issue 13)."""

from __future__ import annotations

import functools

from sqlalchemy import Executable, String, bindparam, cast, func, insert, inspect, select
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from service.store.models import Job, JobEvent, JobStatus, table_of
from service.store.notify import JOBS_CHANNEL, event_insert, event_row


def insert_new(*, session: Session, job: Job, actor: str, reason: str | None) -> None:
    """Store a new Job and its first event (none -> queued, at job.created_at, which
    NOTIFYs dispatchers), and attach the job to the session as persistent: the same
    rows and object as session.add + flush, without the unit of work, which cost more
    CPU than the statements themselves on the submit path (issue 13). On PostgreSQL
    the row and its event are one statement, a data-modifying WITH: each statement of
    the submit is a round trip and ≈ 0.1 ms of the API's CPU. Every attribute ends up
    loaded (reading one never costs a SELECT): the id and the defaults of columns the
    object left unset come back by RETURNING, the other unset columns are NULL."""
    given = inspect(job).dict
    values = {column.key: given[key] for key, column in _JOB_COLUMNS if key in given}
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    statement, returned, nulls = _job_insert(frozenset(values), with_event=postgres)
    if postgres:
        event = {"at": job.created_at, "actor": actor, "reason": reason}
        params = {f"job_{key}": value for key, value in values.items()}
        params.update({f"event_{key}": value for key, value in event.items()})
        row = connection.execute(statement, params).one()
    else:
        row = connection.execute(statement, values).one()
    for key, value in zip(returned, row, strict=True):
        set_committed_value(job, key, value)
    for key in nulls:
        set_committed_value(job, key, None)
    make_transient_to_detached(job)
    session.add(job)
    if not postgres:
        connection.execute(
            event_insert(session=session, channels=[JOBS_CHANNEL]),
            event_row(job, job.created_at, actor, None, JobStatus.QUEUED, reason),
        )


# (attribute, column) of every mapped column of Job.
_JOB_COLUMNS = tuple((attr.key, attr.columns[0]) for attr in inspect(Job).column_attrs)
# The first event's own values (the rest comes from the new row: job_id, status, attempt).
_EVENT_COLUMNS = ("at", "actor", "reason")


@functools.cache
def _job_insert(
    given: frozenset[str], *, with_event: bool
) -> tuple[Executable, tuple[str, ...], tuple[str, ...]]:
    """For a Job with the columns `given`: the INSERT returning the others that the
    database fills (the id, defaults), those attributes, and the attributes left
    NULL. `with_event` (PostgreSQL): one statement that also inserts the job's first
    event and NOTIFYs dispatchers, its parameters named job_<column> and
    event_<column>. Built once per set of columns."""
    jobs, events = table_of(Job), table_of(JobEvent)
    unset = [(key, column) for key, column in _JOB_COLUMNS if column.key not in given]
    filled = [
        (key, column)
        for key, column in unset
        if column.primary_key or column.default is not None or column.server_default is not None
    ]
    returned = tuple(key for key, _column in filled)
    nulls = tuple(key for key, _column in unset if key not in returned)
    if not with_event:
        return insert(jobs).returning(*(c for _k, c in filled)), returned, nulls
    event_needs = (jobs.c.status, jobs.c.attempt)  # returned if not already filled
    new_job = (
        insert(jobs)
        .values({c: bindparam(f"job_{c.key}", type_=c.type) for c in jobs.c if c.key in given})
        .returning(*(c for _k, c in filled), *(c for c in event_needs if c.key in given))
        .cte("new_job")
    )
    first_event = (
        insert(events)
        .from_select(
            ["job_id", "to_status", "attempt", *_EVENT_COLUMNS],
            select(
                new_job.c.id,
                new_job.c.status,
                new_job.c.attempt,
                *(bindparam(f"event_{k}", type_=events.c[k].type) for k in _EVENT_COLUMNS),
            ),
        )
        .returning(func.pg_notify(JOBS_CHANNEL, cast(events.c.job_id, String)))
        .cte("first_event")
    )
    # A data-modifying WITH runs to completion whether or not its rows are read.
    statement = select(*(new_job.c[c.key] for _k, c in filled)).add_cte(first_event)
    return statement, returned, nulls
