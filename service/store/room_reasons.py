"""What explain says of a hold on room (service.store.claim_candidate): the held
job's wait, and why a job that may fit waits behind it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from service.schemas.jobs import BlockingReason
from service.schemas.node_fit import RESOURCE_EPSILON, ClusterRoom
from service.schemas.quota import QuotaOut
from service.store.claim_candidate import HeldJob
from service.store.dispatchers import resource_view
from service.store.models import Dispatcher, Job
from service.store.quotas import RunningUsage
from service.store.resource_reasons import NO_ROOM_HELD, nodes_of


def room_of(report: dict[str, Any]) -> ClusterRoom | None:
    """The room a dispatcher's claim holds by (its report's "room": what it could
    free), else, from an older dispatcher, its totals and nodes; None: unknown."""
    if isinstance(room := report.get("room"), dict):
        return ClusterRoom.from_report(room)
    total = resource_view(report, "total")
    if total is None or "CPU" not in total:
        return None
    return ClusterRoom(total["CPU"], total.get("GPU", 0.0), tuple(nodes_of([report])) or None)


def room_wait_note(job_id: int, holds: list[HeldJob | None], hold_after: timedelta | None) -> str:
    """What a wait for free room adds: whether room is held for the job (`holds`: the
    job each live dispatcher holds room for, or None), else that smaller jobs start
    past it until it has waited."""
    if hold_after is None:
        return NO_ROOM_HELD
    mine = sum(1 for held in holds if held is not None and held.id == job_id)
    if mine:
        where = "" if mine == len(holds) else f" on {mine} of the {len(holds)} live clusters"
        return (
            f"; room is held for it{where} (it has waited over {_seconds(hold_after)}, first "
            "in line of those that have): it starts there first once it fits, and another "
            "job, ahead of it in the queue or behind, only if it leaves free what this one "
            "waits for"
        )
    return (
        "; smaller jobs queued behind it start meanwhile when they fit; room is held for "
        f"the first in line of the jobs that have waited {_seconds(hold_after)} for it "
        "and that a cluster could free room for"
    )


def held_behind(
    job: Job,
    holds: list[HeldJob | None],
    live: list[Dispatcher],
    hold_after: timedelta | None,
    *,
    names_others: bool,
    quota_left: QuotaLeft,
) -> BlockingReason | None:
    """Why a job does not start though it may fit: on every live dispatcher (`holds`,
    in `live`'s order) room is held for another job, and this one would take what
    that one waits for (claim_candidate's test, by the dispatcher's free resources
    as reported). None where it may start. The held jobs are named when they are the
    job owner's own or `names_others` (an admin asks): another user's job is a 404 on
    every route, so its id is no one else's to read. `quota_left`: what the job
    owner's quota leaves now, for a held job of the same owner (claim_candidate's
    _leaves_its_quota)."""
    if hold_after is None or not holds:
        return None
    ahead: dict[int, HeldJob] = {}
    quota_only = True  # on every cluster it would take its owner's quota, not the room
    for held, dispatcher in zip(holds, live, strict=True):
        if held is None or held.id == job.id:
            return None
        takes_room = _takes_its_room(job, held, resource_view(dispatcher.resources, "free"))
        if not (takes_room or _takes_its_quota(job, held, quota_left)):
            return None
        quota_only = quota_only and not takes_room
        ahead[held.id] = held
    named = sorted(i for i, held in ahead.items() if names_others or held.owner_id == job.owner_id)
    others = len(ahead) - len(named)
    which = [
        f"job {named[0]}" if len(named) == 1 else "jobs " + ", ".join(map(str, named)),
        "another user's job" if others == 1 else f"{others} jobs of other users",
    ]
    jobs = " and ".join(
        text for text, count in zip(which, (len(named), others), strict=True) if count
    )
    it, waits = ("it", "it waits") if len(ahead) == 1 else ("them", "they wait")
    taken = (
        f"its owner's quota (running jobs, CPUs or GPUs) {waits} for"
        if quota_only
        else f"resources {waits} for"
    )
    return BlockingReason(
        kind="resources",
        message=f"room is held for {jobs}, waiting for {it} over {_seconds(hold_after)}: this "
        f"job would take {taken}, so it starts after {it}",
    )


def _takes_its_room(job: Job, held: HeldJob, free: dict[str, float] | None) -> bool:
    if free is None:
        return True  # not reported: it may
    for needs, kind, held_needs in (
        (job.cpus_required, "CPU", held.cpus),
        (job.gpus_required, "GPU", held.gpus),
    ):
        if needs > RESOURCE_EPSILON and free.get(kind, 0.0) - needs < held_needs - RESOURCE_EPSILON:
            return True
    return False


@dataclass(frozen=True)
class QuotaLeft:
    """What an owner's quota leaves them now: running jobs, CPUs, GPUs."""

    running_jobs: float
    cpus: float
    gpus: float

    @classmethod
    def of(cls, in_force: QuotaOut, used: RunningUsage) -> QuotaLeft:
        return cls(
            in_force.max_running_jobs - used.running_jobs,
            in_force.max_cpus - used.cpus,
            in_force.max_gpus - used.gpus,
        )


def _takes_its_quota(job: Job, held: HeldJob, left: QuotaLeft) -> bool:
    if held.owner_id != job.owner_id:
        return False
    return (
        left.running_jobs < 2
        or job.cpus_required + held.cpus > left.cpus + RESOURCE_EPSILON
        or job.gpus_required + held.gpus > left.gpus + RESOURCE_EPSILON
    )


def _seconds(duration: timedelta) -> str:
    return f"{duration.total_seconds():g} s"
