"""What counts against a user's storage quota: their uploads' bytes plus every stored
checkpoint of their jobs. One rule, for the submit's standing (quotas._standing, on
every submit and upload) and for usage (the users' listing), as scalar subqueries
correlated to the enclosing select's `users` row.

The checkpoints' sum is driven from the owner's jobs (ix_jobs_owner_id_id) into
their checkpoints by job_id (ix_checkpoints_job_id_bytes, migration 0015, which
holds the bytes too: an index-only scan, no heap page per checkpoint). The join it
replaced (checkpoints JOIN jobs WHERE owner) was planned by PostgreSQL as a hash join
over a scan of every checkpoint, ≈ 300 ms a submit at a year's 1,000,000 checkpoints
(a query-plan review): for an owner known only at run time the planner takes the
table's average owner, and hashing looked cheaper than that many index probes. On
PostgreSQL the owner's job ids are therefore gathered first into an array (`job_id =
ANY(ARRAY(…))`): the planner cannot turn that into a join, and it estimates such an
array at a few elements, so it probes the index whatever the statistics say. SQLite
plans `job_id IN (SELECT …)` that way by itself. The cost grows with the owner's own
jobs and checkpoints, not with everyone's (benchmarks/storage_standing.py;
tests/store/test_stored_bytes.py checks the sums and PostgreSQL's plan)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ScalarSelect, any_, func, select

from service.store.models import Checkpoint, Dataset, Job, User, table_of

_JOBS = table_of(Job).alias("owned_jobs")


def checkpoint_bytes(*, postgres: bool) -> ScalarSelect[Any]:
    """The bytes of every stored checkpoint of the jobs that the enclosing select's
    `users` row owns (0 if none); `postgres`: in PostgreSQL's array form."""
    owned = select(_JOBS.c.id).where(_JOBS.c.owner_id == User.id).correlate(User)
    of_owned = (
        Checkpoint.job_id == any_(func.array(owned.scalar_subquery()))
        if postgres
        else Checkpoint.job_id.in_(owned)
    )
    return select(func.coalesce(func.sum(Checkpoint.bytes), 0)).where(of_owned).scalar_subquery()


def upload_bytes() -> ScalarSelect[Any]:
    """The bytes of the uploads that the enclosing select's `users` row owns (0 if
    none), by the datasets' owner index."""
    return (
        select(func.coalesce(func.sum(Dataset.bytes), 0))
        .where(Dataset.owner_id == User.id)
        .scalar_subquery()
    )
