"""The claim order (DESIGN §4), written once: fair share (the owner's recent jobs
divided by their share weight, least first), then priority (high first), then submit
time, then id. The claim's candidate and the job it may hold room for
(service.store.claim_candidate) and explain's ranking (`queue_ranking`) are all
built from the expressions here.

An owner's recent jobs (runs) are the jobs that hold a lease and the attempts that
ended since :fair_share_since (the claim's time less LAGTRAIN_FAIR_SHARE_WINDOW_SECONDS):
"least recent usage per user, weighted". Counting running jobs alone made the order first
come, first served wherever one gang fits at a time — every claim comes just after
the last job ended, with every owner at 0 (migration 0012's docstring).

Why the ranking predicts the claim sequence: each claim adds one run to its owner's
recent jobs, and a run that ends stays among them, so an owner's k-th queued job
(0-based, in the owner's own priority/submit order) is claimed when the owner has
`recent + k`. Ranking every queued job by `fair_share(recent + k, weight)` and the
same tie-breakers therefore lists the jobs in the order that successive claims pick
them, as long as nothing new arrives, no run leaves the window meanwhile, and every
ranked job is eligible when its turn comes (fits the free resources, owner under
quota; a job its quota forbids by itself is not ranked: startable_under_quota).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Float,
    FromClause,
    Row,
    Select,
    bindparam,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session

from service.schemas.node_fit import RESOURCE_EPSILON
from service.schemas.quota import QuotaDefaults
from service.store.db import db_now
from service.store.models import ACTIVE, Job, JobAttempt, JobStatus, User, UtcDateTime, table_of

# The gang's size is the sum of its bundles (service.schemas.gang), which is also
# what the placement group reserves, so the claim's "fits" test counts what Ray does;
# RESOURCE_EPSILON (node_fit) is its float slack.


def exceeds(needed: float, available: float) -> bool:
    """The claim's "does not fit" (under_quota, fits_free) in Python, for the checks
    that must agree with it: the submit's quota check and explain."""
    return needed > available + RESOURCE_EPSILON


# Stands in for a zero share weight: one recent run then counts as a huge usage, so such
# a user waits for everyone else once they have run in the window (with none, they tie
# with the other idle users, by priority and submit time).
MIN_SHARE_WEIGHT = 1e-9


def running_per_owner() -> CTE:
    """(owner_id, running, cpus, gpus): each owner's jobs that hold a lease, running
    or cancelling, and the CPUs/GPUs their gangs hold (owners with none are absent;
    coalesce to 0)."""
    active = table_of(Job).alias("active")
    return (
        select(
            active.c.owner_id,
            func.count().label("running"),
            func.sum(active.c.cpus_required).label("cpus"),
            func.sum(active.c.gpus_required).label("gpus"),
        )
        .where(active.c.status.in_([s.value for s in ACTIVE]))
        .group_by(active.c.owner_id)
        # Computed once per statement whatever the planner guesses (fresh tables have
        # no statistics, and a nested loop would re-aggregate for every queued job).
        .cte("usage")
        .prefix_with("MATERIALIZED")
    )


# The start of fair share's window: bound by the caller (the claim's time, or the
# database's clock for explain, less LAGTRAIN_FAIR_SHARE_WINDOW_SECONDS); on PostgreSQL
# the claim computes it in the statement from its own clock (claim.py).
FAIR_SHARE_SINCE = bindparam("fair_share_since", type_=UtcDateTime())


def ended_per_owner(since: ColumnElement[datetime]) -> CTE:
    """(owner_id, ended): each owner's attempts that ended since `since`, whatever
    their outcome (owners with none are absent; coalesce to 0). With the jobs that hold
    a lease (running_per_owner), fair share's usage: the owner's runs lately. Runs,
    not finished jobs: a job that failed and went back to the queue keeps the turn it
    used. An index range (job_attempts by ended_at)."""
    attempts = table_of(JobAttempt).alias("ended")
    jobs = table_of(Job).alias("ended_job")
    # The window's attempts by their index, each one's owner looked up by the job's
    # primary key. A join let SQLite, once it had statistics, walk every job instead
    # (40 ms a claim at 20,000 jobs).
    owner = select(jobs.c.owner_id).where(jobs.c.id == attempts.c.job_id).scalar_subquery()
    lately = select(owner.label("owner_id")).where(attempts.c.ended_at >= since).subquery()
    return (
        select(lately.c.owner_id, func.count().label("ended"))
        .group_by(lately.c.owner_id)
        .cte("ended_lately")
        .prefix_with("MATERIALIZED")
    )


def recent_runs(usage: CTE, ended: CTE, owner_id: ColumnElement[int]) -> ColumnElement[int]:
    """An owner's runs lately: jobs holding a lease now plus attempts ended since.
    The ended count is looked up, not joined: a join changed SQLite's plan for the
    claim (it then built an index over every job at each claim: 5.6 ms against 2)."""
    ended_count = select(ended.c.ended).where(ended.c.owner_id == owner_id).scalar_subquery()
    return func.coalesce(usage.c.running, 0) + func.coalesce(ended_count, 0)


def share_weight(weight: ColumnElement[float]) -> ColumnElement[float]:
    return case((weight > MIN_SHARE_WEIGHT, weight), else_=literal(MIN_SHARE_WEIGHT))


def fair_share(recent: ColumnElement[int], weight: ColumnElement[float]) -> ColumnElement[Any]:
    """The owner's usage as the order sees it: recent jobs per unit of share weight."""
    return cast(recent, Float) / share_weight(weight)


def tie_breakers(c: Any) -> list[ColumnElement[Any]]:
    """After fair share: priority (high first), submit time, id. `c` is a column
    collection with priority, created_at and id (a jobs alias or a subquery)."""
    return [c.priority.desc(), c.created_at.asc(), c.id.asc()]


def claim_order(usage: ColumnElement[Any], c: Any) -> list[ColumnElement[Any]]:
    return [usage.asc(), *tie_breakers(c)]


def quota(column: ColumnElement[Any], default: str) -> ColumnElement[Any]:
    """The user's own quota, else the server default bound at claim time
    (lifecycle.Claim.quota_defaults)."""
    return func.coalesce(column, bindparam(default, type_=column.type))


# A quota the server leaves unset for store-level callers (no settings): no limit.
UNLIMITED = 2**31 - 1


def quota_params(defaults: QuotaDefaults | None) -> dict[str, float]:
    """The server's quota defaults as `quota` binds them (None: unlimited)."""
    if defaults is None:
        return {
            "default_max_running_jobs": UNLIMITED,
            "default_max_cpus": UNLIMITED,
            "default_max_gpus": UNLIMITED,
        }
    return {
        "default_max_running_jobs": defaults.max_running_jobs,
        "default_max_cpus": defaults.max_cpus,
        "default_max_gpus": defaults.max_gpus,
    }


def startable_under_quota(job: Any, users: Any) -> list[ColumnElement[bool]]:
    """The job could start under its owner's quota with nothing else of theirs
    running: max_running_jobs above 0, its gang within max_cpus and max_gpus. One that
    is not waits until an admin raises the quota (a submit of it would be a 429): the
    claim never starts it, and the ranking leaves it out rather than count it ahead
    of jobs that can start."""
    return [
        quota(users.c.max_running_jobs, "default_max_running_jobs") > 0,
        job.c.cpus_required <= quota(users.c.max_cpus, "default_max_cpus") + RESOURCE_EPSILON,
        job.c.gpus_required <= quota(users.c.max_gpus, "default_max_gpus") + RESOURCE_EPSILON,
    ]


def under_quota(candidate: Any, users: Any, usage: CTE) -> list[ColumnElement[bool]]:
    """The owner may start `candidate` now: fewer running jobs than max_running_jobs,
    and its gang fits beside what the owner's running gangs hold (max_cpus,
    max_gpus). A quota makes a job wait, never fails it."""
    running = func.coalesce(usage.c.running, 0)
    cpus = func.coalesce(usage.c.cpus, 0.0) + candidate.c.cpus_required
    gpus = func.coalesce(usage.c.gpus, 0.0) + candidate.c.gpus_required
    return [
        running < quota(users.c.max_running_jobs, "default_max_running_jobs"),
        cpus <= quota(users.c.max_cpus, "default_max_cpus") + RESOURCE_EPSILON,
        gpus <= quota(users.c.max_gpus, "default_max_gpus") + RESOURCE_EPSILON,
    ]


def owner_enabled(users: FromClause) -> ColumnElement[bool]:
    """A disabled user's queued jobs wait (neither claimed nor ranked) until an admin
    enables them again: they would run for an account that is locked out."""
    return users.c.disabled_at.is_(None)


def queue_ranking() -> Select[tuple[int, int, int, float, int]]:
    """Every queued job of an enabled owner as (id, owner_id, recent, usage,
    position), in the order successive claims would start them (see the module
    docstring): `usage` is the owner's fair share when this job's turn comes,
    `recent` the owner's recent jobs now, `position` the job's place in the whole
    order (1 = the next claim's). Binds :fair_share_since as the claim does."""
    jobs = table_of(Job)
    users = table_of(User)
    usage = running_per_owner()
    ended = ended_per_owner(FAIR_SHARE_SINCE)
    queued = (
        select(
            jobs.c.id,
            jobs.c.owner_id,
            jobs.c.priority,
            jobs.c.created_at,
            users.c.share_weight,
            recent_runs(usage, ended, jobs.c.owner_id).label("recent"),
            # The owner's queued jobs that go before this one.
            (
                func.row_number().over(partition_by=jobs.c.owner_id, order_by=tie_breakers(jobs.c))
                - 1
            ).label("own_ahead"),
        )
        .select_from(
            jobs.join(users, users.c.id == jobs.c.owner_id).outerjoin(
                usage, usage.c.owner_id == jobs.c.owner_id
            )
        )
        .where(
            jobs.c.status == JobStatus.QUEUED.value,
            owner_enabled(users),
            *startable_under_quota(jobs, users),
        )
        .subquery("queued")
    )
    turn = fair_share(queued.c.recent + queued.c.own_ahead, queued.c.share_weight)
    order = claim_order(turn, queued.c)
    return select(
        queued.c.id,
        queued.c.owner_id,
        queued.c.recent,
        turn.label("usage"),
        func.row_number().over(order_by=order).label("position"),
    ).order_by(*order)


def fair_share_ahead(ranking: Sequence[Any]) -> list[int]:
    """For each row of `ranking` (queue_ranking's, in its order), how many jobs of other
    owners go before it by fair share: a lower usage at their turn. In one pass — the
    ranking is in usage order, so those are the rows before its usage's first row less
    the owner's own among them (counting them per job cost O(queue) each: 0.1 s for
    /v1/cluster's 50 jobs deep in a queue of 2,000)."""
    counts: list[int] = []
    before = 0  # rows with a usage below the current one
    own_before: dict[int, int] = {}  # of those, each owner's
    group: list[Row[Any]] = []  # the rows of the current usage
    for row in ranking:
        if group and row.usage != group[0].usage:
            before += len(group)
            for seen in group:
                own_before[seen.owner_id] = own_before.get(seen.owner_id, 0) + 1
            group = []
        group.append(row)
        counts.append(before - own_before.get(row.owner_id, 0))
    return counts


def ranked_queue(
    *, session: Session, fair_share_window: timedelta, quota_defaults: QuotaDefaults | None
) -> Sequence[Row[Any]]:
    """queue_ranking's rows, counting runs since the database's clock less the window
    and judging quotas by the server's defaults, as the claim does (explain and the
    cluster's queue head pass the settings')."""
    since = db_now(session) - fair_share_window
    params = {"fair_share_since": since, **quota_params(quota_defaults)}
    return session.execute(queue_ranking(), params).all()
