"""Why a job waits (GET /v1/jobs/{id}/explain): its place in the claim order and what
blocks it. Mirrors the claim's rules in service.store.queue: fair share (owner's
running jobs / share weight), then priority, then submit time; quota; the gang must
fit the resources a dispatcher sees.

Dispatcher rows carry Ray's logical resources, either flat (``{"CPU": 8, "GPU": 1}``,
the totals) or as ``{"total": {...}, "free": {...}}``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.schemas.jobs import BlockingReason, Explanation
from service.store.lifecycle import ACTIVE, JobStatus
from service.store.models import Dispatcher, Job, User, utcnow
from service.store.queue import MIN_SHARE_WEIGHT, RESOURCE_EPSILON

# The claim's order: fair-share usage, then priority (high first), submit time, id.
ClaimOrder = tuple[float, int, datetime, int]


def resource_view(resources: dict[str, Any], part: str) -> dict[str, float] | None:
    nested = resources.get(part)
    if isinstance(nested, dict):
        return {k: float(v) for k, v in nested.items() if isinstance(v, int | float)}
    if part == "total":
        return {k: float(v) for k, v in resources.items() if isinstance(v, int | float)}
    return None


def _fits(required: dict[str, float], available: dict[str, float]) -> bool:
    return all(available.get(k, 0.0) + RESOURCE_EPSILON >= v for k, v in required.items() if v)


def _describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in resources.items() if v) or "nothing"


def explain_job(session: Session, *, job: Job, dispatcher_timeout: timedelta) -> Explanation:
    required = {"CPU": job.cpus_required, "GPU": job.gpus_required}
    if job.status != JobStatus.QUEUED.value:
        reasons = [BlockingReason(kind="state", message=f"job is {job.status}; it is not waiting")]
        return Explanation(
            job_id=job.id,
            status=job.status,
            queue_position=None,
            queued_ahead=None,
            required=required,
            reasons=reasons,
        )
    running = Counter(
        dict(
            session.execute(
                select(Job.owner_id, func.count())
                .where(Job.status.in_([s.value for s in ACTIVE]))
                .group_by(Job.owner_id)
            ).all()
        )
    )
    weights = dict(session.execute(select(User.id, User.share_weight)).all())

    def usage(owner_id: int) -> float:
        return running[owner_id] / max(weights.get(owner_id, 1.0), MIN_SHARE_WEIGHT)

    def order(owner_id: int, priority: int, created: datetime, job_id: int) -> ClaimOrder:
        return (usage(owner_id), -priority, created, job_id)

    mine = order(job.owner_id, job.priority, job.created_at, job.id)
    queued = session.execute(
        select(Job.id, Job.owner_id, Job.priority, Job.created_at).where(
            Job.status == JobStatus.QUEUED.value
        )
    )
    ahead_fair = ahead_priority = 0
    for other_id, owner_id, priority, created in queued:
        key = order(owner_id, priority, created, other_id)
        if key < mine:
            if key[0] < mine[0]:
                ahead_fair += 1
            else:
                ahead_priority += 1
    reasons = _resource_reasons(session, required, dispatcher_timeout)
    owner = session.get(User, job.owner_id)
    quota = owner.max_running_jobs if owner is not None else None
    if owner is not None and quota is not None and running[job.owner_id] >= quota:
        reasons.append(
            BlockingReason(
                kind="quota",
                message=f"{owner.name} runs {running[job.owner_id]} jobs, the quota is {quota}",
            )
        )
    if ahead_fair:
        reasons.append(
            BlockingReason(
                kind="fair_share",
                message=f"{ahead_fair} queued job(s) of users with less current usage go first",
            )
        )
    if ahead_priority:
        reasons.append(
            BlockingReason(
                kind="priority",
                message=f"{ahead_priority} queued job(s) with higher priority or submitted "
                "earlier go first",
            )
        )
    ahead = ahead_fair + ahead_priority
    return Explanation(
        job_id=job.id,
        status=job.status,
        queue_position=ahead + 1,
        queued_ahead=ahead,
        required=required,
        reasons=reasons,
    )


def _resource_reasons(
    session: Session, required: dict[str, float], dispatcher_timeout: timedelta
) -> list[BlockingReason]:
    dispatchers = list(session.scalars(select(Dispatcher)))
    if not dispatchers:
        return [
            BlockingReason(
                kind="no_dispatcher",
                message="no dispatcher has registered: start `lagtrain worker` "
                "(or `lagtrain server --embedded`)",
            )
        ]
    reasons: list[BlockingReason] = []
    cutoff = utcnow() - dispatcher_timeout
    if all(d.last_seen_at < cutoff for d in dispatchers):
        reasons.append(
            BlockingReason(
                kind="no_dispatcher",
                message=f"no dispatcher was seen in the last {dispatcher_timeout.seconds} s",
            )
        )
    totals = [resource_view(d.resources, "total") or {} for d in dispatchers]
    largest = max(totals, key=lambda t: (t.get("GPU", 0.0), t.get("CPU", 0.0)))
    if not any(_fits(required, total) for total in totals):
        reasons.append(
            BlockingReason(
                kind="resources",
                message=f"the gang needs {_describe(required)}; the largest cluster a "
                f"dispatcher sees has {_describe(largest)}, so it can never start",
            )
        )
        return reasons
    frees = [f for d in dispatchers if (f := resource_view(d.resources, "free")) is not None]
    if frees and not any(_fits(required, free) for free in frees):
        reasons.append(
            BlockingReason(
                kind="resources",
                message=f"waiting for {_describe(required)} to become free",
            )
        )
    return reasons
