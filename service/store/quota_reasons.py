"""What a user's quota says of a queued job, for explain: the quotas that hold it
back now (the claim's queue_order.under_quota), and those it exceeds by itself, so
that it cannot start until an admin raises them (queue_order.startable_under_quota)."""

from __future__ import annotations

from service.schemas.jobs import BlockingReason
from service.schemas.quota import QuotaDefaults
from service.store.models import Job, User
from service.store.queue_order import exceeds
from service.store.quotas import RunningUsage, quota_in_force

# Beyond the quota by itself, whatever else finishes: the job waits until an admin
# raises the quota (a submit would be a 429), which explain must not hide.
NEVER_STARTS = "; it cannot start under this quota: ask an admin to raise it, or cancel the job"


def never_startable(owner: User, job: Job, defaults: QuotaDefaults) -> list[BlockingReason]:
    """The quotas `job` exceeds by itself (none: it may start once others finish)."""
    return _reasons(owner, job, None, defaults)


def quota_reasons(
    owner: User, job: Job, used: RunningUsage, defaults: QuotaDefaults
) -> list[BlockingReason]:
    """The owner's running/CPU/GPU quotas that hold this job back (as the claim's
    queue_order.under_quota tests them), those it exceeds by itself among them."""
    return _reasons(owner, job, used, defaults)


def _reasons(
    owner: User, job: Job, used: RunningUsage | None, defaults: QuotaDefaults
) -> list[BlockingReason]:
    """Per quota, in one order: exceeded by the job itself, else (given `used`)
    exceeded with what the owner's running jobs hold."""
    quota = quota_in_force(owner, defaults)
    found = []
    if quota.max_running_jobs == 0:
        found.append(f"max_running_jobs: {owner.name}'s quota is 0{NEVER_STARTS}")
    elif used is not None and used.running_jobs >= quota.max_running_jobs:
        found.append(
            f"max_running_jobs: {owner.name} runs {count_of(used.running_jobs, 'job')}, "
            f"the quota is {quota.max_running_jobs}"
        )
    for kind, held, needed, limit in (
        ("cpus", used.cpus if used else 0.0, job.cpus_required, quota.max_cpus),
        ("gpus", used.gpus if used else 0.0, job.gpus_required, quota.max_gpus),
    ):
        unit = kind[:3].upper()
        if exceeds(needed, limit):
            needs = count_of(needed, unit)
            found.append(
                f"max_{kind}: this job needs {needs}, the quota is {limit:g}{NEVER_STARTS}"
            )
        elif used is not None and exceeds(held + needed, limit):
            found.append(
                f"max_{kind}: {owner.name}'s running jobs hold {count_of(held, unit)}, "
                f"this job needs {needed:g}, the quota is {limit:g}"
            )
    return [BlockingReason(kind="quota", message=message) for message in found]


def count_of(number: float, noun: str) -> str:
    """The number and its noun, singular for exactly one: "1 job", "2 jobs", "0.5 CPUs"."""
    return f"{number:g} {noun}" if number == 1 else f"{number:g} {noun}s"
