"""Explain's "room is held for …" names a held job only to whom may read it: its
owner's own job by id, another user's job by id to an admin only (another user's job
is a 404 on every route). No database: the reasons are built from what the claim's
hold query returned (claim_candidate.HeldJob) and the dispatchers' reports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.store.claim_candidate import HeldJob
from service.store.models import Dispatcher, Job
from service.store.room_reasons import QuotaLeft, held_behind

HOLD = timedelta(minutes=10)
ANN, BOB = 1, 2
# Two live clusters, each with 3 CPUs free: a 1.3-CPU job would leave neither the
# 5 CPUs its held gang waits for.
LIVE = [Dispatcher(id=f"d{i}", resources={"free": {"CPU": 3.0}}) for i in (1, 2)]


def small_job(owner_id: int) -> Job:
    return Job(id=99, owner_id=owner_id, cpus_required=1.3, gpus_required=0.0)


PLENTY = QuotaLeft(10, 64.0, 4.0)  # what the job owner's quota leaves


def message(job: Job, holds: list[HeldJob | None], *, names_others: bool) -> str:
    reason = held_behind(job, holds, LIVE, HOLD, names_others=names_others, quota_left=PLENTY)
    assert reason is not None
    return reason.message


def test_the_owners_own_held_job_is_named_another_users_is_not() -> None:
    own, other = HeldJob(10, BOB, 5.0, 0.0), HeldJob(11, ANN, 5.0, 0.0)
    assert message(small_job(BOB), [own, own], names_others=False) == (
        "room is held for job 10, waiting for it over 600 s: this job would take resources "
        "it waits for, so it starts after it"
    )
    assert message(small_job(BOB), [other, other], names_others=False) == (
        "room is held for another user's job, waiting for it over 600 s: this job would "
        "take resources it waits for, so it starts after it"
    )
    assert message(small_job(BOB), [other, other], names_others=True).startswith(
        "room is held for job 11, waiting for it"
    )


@pytest.mark.parametrize(
    ("names_others", "expected"),
    [
        (False, "room is held for job 10 and another user's job, waiting for them"),
        (True, "room is held for jobs 10, 11, waiting for them"),
    ],
)
def test_holds_on_two_clusters_name_what_may_be_named(names_others: bool, expected: str) -> None:
    holds: list[HeldJob | None] = [HeldJob(10, BOB, 5.0, 0.0), HeldJob(11, ANN, 5.0, 0.0)]
    text = message(small_job(BOB), holds, names_others=names_others)
    assert text.startswith(expected)
    assert text.endswith("they wait for, so it starts after them")
    assert names_others or "11" not in text


def test_two_other_users_jobs_are_counted() -> None:
    holds: list[HeldJob | None] = [HeldJob(10, ANN, 5.0, 0.0), HeldJob(11, 3, 5.0, 0.0)]
    assert message(small_job(BOB), holds, names_others=False).startswith(
        "room is held for 2 jobs of other users, waiting for them"
    )


def test_a_job_of_the_held_owner_that_would_take_their_quota_is_held_behind() -> None:
    """As the claim judges it (claim_candidate._leaves_its_quota): a job that leaves
    the held gang its room on the cluster, but not within its owner's quota."""
    roomy = [Dispatcher(id="d1", resources={"free": {"CPU": 30.0}})]
    held: list[HeldJob | None] = [HeldJob(10, BOB, 5.0, 0.0)]
    job = small_job(BOB)

    def reason(left: QuotaLeft) -> str | None:
        found = held_behind(job, held, roomy, HOLD, names_others=False, quota_left=left)
        return None if found is None else found.message

    assert reason(PLENTY) is None
    quota = (
        "room is held for job 10, waiting for it over 600 s: this job would take its "
        "owner's quota (running jobs, CPUs or GPUs) it waits for, so it starts after it"
    )
    assert reason(QuotaLeft(1, 64.0, 4.0)) == quota  # one running slot left: not both
    assert reason(QuotaLeft(2, 6.0, 4.0)) == quota  # 1.3 + 5 CPUs over 6
    assert reason(QuotaLeft(2, 6.3, 4.0)) is None
    other = [Dispatcher(id="d1", resources={"free": {"CPU": 30.0}})]
    assert (
        held_behind(
            small_job(ANN), held, other, HOLD, names_others=False, quota_left=QuotaLeft(0, 0, 0)
        )
        is None
    )  # another owner's quota is not the held job's
