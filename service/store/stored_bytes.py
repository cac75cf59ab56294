"""What counts against a user's storage quota: their uploads' bytes plus every stored
checkpoint of their jobs. One rule in two forms: scalar subqueries correlated to the
enclosing select's `users` row, for the submit's standing (quotas._standing, on every
submit and upload), and sums grouped by owner over a list of user ids, for usage
(the users' listing and /v1/users/me).

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
tests/store/test_stored_bytes.py checks the sums and PostgreSQL's plan).

usage names its users as constants, whose rows the planner can estimate from its
statistics: there a plain join grouped by owner lets it loop over a few users' jobs
and hash the index of all checkpoints for many. At a year's scale with 0015's index,
one user 24 ms against 17 ms by the correlated form, all 40 users 293 ms against
594 ms (the correlated form walks every job's checkpoints one job at a time;
docs/benchmarks.md, storage_standing)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ScalarSelect, Select, any_, func, select

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


def checkpoint_bytes_by_owner(user_ids: list[int]) -> Select[int, Any]:
    """(owner id, bytes of their jobs' checkpoints) of each of `user_ids` that has any."""
    return (
        select(Job.owner_id, func.sum(Checkpoint.bytes))
        .join(Job, Job.id == Checkpoint.job_id)
        .where(Job.owner_id.in_(user_ids))
        .group_by(Job.owner_id)
    )


def upload_bytes_by_owner(user_ids: list[int]) -> Select[int, Any]:
    """(owner id, bytes of their uploads) of each of `user_ids` that has any."""
    return (
        select(Dataset.owner_id, func.sum(Dataset.bytes))
        .where(Dataset.owner_id.in_(user_ids))
        .group_by(Dataset.owner_id)
    )
