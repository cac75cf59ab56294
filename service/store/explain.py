"""Why a job waits (GET /v1/jobs/{id}/explain): its place in the claim order and what
blocks it (quota; the gang must fit the resources a dispatcher sees).

The place comes from service.store.queue_order.queue_ranking, built from the same
expressions as the claim itself: position n means n-1 claims start other jobs first,
as long as nothing arrives, no run leaves the fair-share window (finishes stay
counted) and nothing ahead is blocked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from service.schemas.jobs import BlockingReason, Explanation
from service.schemas.quota import QuotaDefaults
from service.store.claim_candidate import HeldJob, held_jobs
from service.store.db import db_now
from service.store.dispatchers import RECENT_DISPATCHERS, list_dispatchers, live_dispatchers
from service.store.models import Dispatcher, Job, JobStatus, User
from service.store.node_fit_sql import bundles_of, workers_of
from service.store.order_reasons import order_reasons
from service.store.queue_order import fair_share_ahead, ranked_queue
from service.store.quota_reasons import never_startable, quota_reasons
from service.store.quotas import RunningUsage, quota_in_force, running_usage
from service.store.resource_reasons import none_live, resource_reasons
from service.store.room_reasons import QuotaLeft, held_behind, room_of, room_wait_note
from service.store.users import get_user


def explain_job(
    *,
    session: Session,
    job: Job,
    dispatcher_timeout: timedelta,
    quota_defaults: QuotaDefaults,
    fair_share_window: timedelta = timedelta(0),
    hold_room_after: timedelta | None = None,
    viewer_is_admin: bool = False,
) -> Explanation:
    """Why `job` waits, as its owner (or, with `viewer_is_admin`, an admin) may read
    it: another user's job is named to admins only."""
    queued = job.status == JobStatus.QUEUED.value
    owner = get_user(session=session, user_id=job.owner_id)
    ranking = (
        ranked_queue(
            session=session, fair_share_window=fair_share_window, quota_defaults=quota_defaults
        )
        if queued
        else []
    )
    position = next((i for i, row in enumerate(ranking) if row.id == job.id), None)
    if position is None:
        live = _live(session, _recent_dispatchers(session), dispatcher_timeout)
        return _unranked(job, owner, live, dispatcher_timeout, quota_defaults)
    waits = _Waits(
        session,
        dispatcher_timeout,
        quota_defaults,
        hold_room_after,
        fair_share_window,
        names_others=viewer_is_admin,
    )
    return waits.explain(job, owner, ranking, position)


# With no dispatcher alive, what waits for one to start: a cancelling job's
# dispatcher stops it, or a reaper ends it once the lease runs out; a running job's
# dispatcher, killed outright, leaves it running in the store until another one's
# reaper finds the lease expired.
_NEEDS_A_DISPATCHER = {
    JobStatus.CANCELLING.value: "job is cancelling and {none} to end it: start `lagtrain "
    "worker` (or `lagtrain server`, whose start ends it too)",
    JobStatus.RUNNING.value: "job is running by its last report, but {none}: nothing runs "
    "it until `lagtrain worker` (or `lagtrain server --embedded`) starts and takes it "
    "over from its last checkpoint",
}


def _unranked(
    job: Job,
    owner: User,
    live: list[Dispatcher],
    dispatcher_timeout: timedelta,
    quota_defaults: QuotaDefaults,
) -> Explanation:
    """A job outside the claim order: not queued, or queued but skipped by the claim
    (its owner disabled, or its quota forbids it by itself)."""
    queued = job.status == JobStatus.QUEUED.value
    reasons: list[BlockingReason]
    if queued and (skipped := _skipped_by_claim(job, owner, quota_defaults)):
        reasons = skipped
    elif job.status in _NEEDS_A_DISPATCHER and not live:
        message = _NEEDS_A_DISPATCHER[job.status].format(none=none_live(dispatcher_timeout))
        reasons = [BlockingReason(kind="no_dispatcher", message=message)]
    else:  # Not queued, or claimed or cancelled since `job` was read.
        state = job.status if not queued else "no longer queued"
        reasons = [BlockingReason(kind="state", message=f"job is {state}; it is not waiting")]
    return _outside_the_order(job, reasons)


def _outside_the_order(job: Job, reasons: list[BlockingReason]) -> Explanation:
    return Explanation(
        job_id=job.id,
        status=job.status,
        queue_position=None,
        queued_ahead=None,
        required={"CPU": job.cpus_required, "GPU": job.gpus_required},
        reasons=reasons,
    )


def _skipped_by_claim(job: Job, owner: User, quota_defaults: QuotaDefaults) -> list[BlockingReason]:
    """Why the claim skips a queued job whatever else is queued ([] for none): its
    owner is disabled (owner_enabled), or its quota forbids it by itself."""
    if owner.disabled_at is not None:
        return [
            BlockingReason(
                kind="owner_disabled",
                message=f"{owner.name}'s account is disabled: the job waits until an "
                "admin enables it again (or cancels the job)",
            )
        ]
    return never_startable(owner, job, quota_defaults)


def explain_queue_head(
    *,
    session: Session,
    limit: int,
    owner_id: int | None,
    dispatcher_timeout: timedelta,
    quota_defaults: QuotaDefaults,
    fair_share_window: timedelta = timedelta(0),
    hold_room_after: timedelta | None = None,
) -> list[tuple[Job, User, Explanation]]:
    """The first `limit` queued jobs in claim order (with `owner_id`, that owner's
    only; positions still count everyone's jobs ahead), then up to `limit` queued
    jobs the claim skips (owner disabled, or a quota that forbids the job by itself;
    no position), each explained as explain_job would, from one read of the ranking,
    the dispatchers and each owner's usage (the dashboard asked explain once per job:
    9 statements each, the whole ranking every time). Skipped jobs are listed too: an
    operator looking at the queue must see what waits for them. Another user's job
    is named only in the whole queue's view (`owner_id` None: an admin's)."""
    ranking = ranked_queue(
        session=session, fair_share_window=fair_share_window, quota_defaults=quota_defaults
    )
    picked = [i for i, row in enumerate(ranking) if owner_id in (None, row.owner_id)][:limit]
    ranked = {row.id for row in ranking}
    queued = select(Job.id).where(Job.status == JobStatus.QUEUED.value).order_by(Job.id)
    if owner_id is not None:
        queued = queued.where(Job.owner_id == owner_id)
    # Queued but not ranked: skipped by the claim, or (on PostgreSQL, whose reads
    # here each see their own snapshot) queued since the ranking was read — those
    # have no skip reason and are left out below.
    unranked = [i for i in session.scalars(queued) if i not in ranked]
    ids = [ranking[i].id for i in picked] + unranked
    jobs = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(ids)))}
    owner_ids = {job.owner_id for job in jobs.values()}
    owners = {user.id: user for user in session.scalars(select(User).where(User.id.in_(owner_ids)))}
    waits = _Waits(
        session,
        dispatcher_timeout,
        quota_defaults,
        hold_room_after,
        fair_share_window,
        names_others=owner_id is None,
    )
    # Every owner's usage in one read (quota reasons): one read per owner cost the
    # whole queue head's view 2 ms per owner on SQLite.
    waits.usage.update(running_usage(session=session, user_ids=sorted(owner_ids)))
    explained = []
    for i in picked:
        # Claimed, cancelled, or cancelled and deleted since the ranking was read: on
        # PostgreSQL the two reads may see different snapshots (a KeyError, a 500).
        job = jobs.get(ranking[i].id)
        if job is None or job.status != JobStatus.QUEUED.value:
            continue
        owner = owners[job.owner_id]
        explained.append((job, owner, waits.explain(job, owner, ranking, i)))
    skipped = 0
    for job_id in unranked:
        job = jobs.get(job_id)
        if skipped == limit or job is None or job.status != JobStatus.QUEUED.value:
            continue
        owner = owners[job.owner_id]
        if reasons := _skipped_by_claim(job, owner, quota_defaults):
            explained.append((job, owner, _outside_the_order(job, reasons)))
            skipped += 1
    return explained


class _Waits:
    """What holds queued jobs back, read once for any number of them: the dispatchers
    and their resources, the job each live one holds room for (claim_candidate, judged
    by its report; none where `hold_room_after` is None), and each owner's usage (read
    at its first job)."""

    def __init__(
        self,
        session: Session,
        dispatcher_timeout: timedelta,
        quota_defaults: QuotaDefaults,
        hold_room_after: timedelta | None,
        fair_share_window: timedelta,
        *,
        names_others: bool,
    ) -> None:
        self.session = session
        self.dispatcher_timeout = dispatcher_timeout
        self.quota_defaults = quota_defaults
        self.dispatchers = _recent_dispatchers(session)
        self.live = _live(session, self.dispatchers, dispatcher_timeout)
        self.usage: dict[int, RunningUsage] = {}
        self.hold_room_after = hold_room_after
        self.names_others = names_others  # whether reasons may name other users' jobs
        self._fair: tuple[Sequence[Row[Any]], list[int]] | None = None  # fair_share_ahead's
        self.holds: list[HeldJob | None] = []  # per live dispatcher
        if hold_room_after is not None:
            self.holds = held_jobs(
                session=self.session,
                rooms=[room_of(d.resources) for d in self.live],
                hold_room_after=hold_room_after,
                quota_defaults=self.quota_defaults,
                fair_share_window=fair_share_window,
            )

    def explain(
        self, job: Job, owner: User, ranking: Sequence[Row[Any]], position: int
    ) -> Explanation:
        required = {"CPU": job.cpus_required, "GPU": job.gpus_required}
        mine = ranking[position]
        # Another owner's job goes first by fair share when that owner's usage is lower
        # at its turn; the rest (the owner's own earlier jobs, equal usage) by
        # priority/time.
        ahead_fair = self._fair_share_ahead(ranking)[position]
        ahead_priority = position - ahead_fair
        if owner.id not in self.usage:
            self.usage[owner.id] = running_usage(session=self.session, user_ids=[owner.id])[
                owner.id
            ]
        reasons = resource_reasons(
            required,
            bundles_of(job),
            workers_of(job),
            self.dispatchers,
            self.live,
            self.dispatcher_timeout,
            room_wait_note(job.id, self.holds, self.hold_room_after),
        )
        left = QuotaLeft.of(quota_in_force(owner, self.quota_defaults), self.usage[owner.id])
        if held := held_behind(
            job,
            self.holds,
            self.live,
            self.hold_room_after,
            names_others=self.names_others,
            quota_left=left,
        ):
            reasons.append(held)
        reasons += quota_reasons(owner, job, self.usage[owner.id], self.quota_defaults)
        reasons += order_reasons(ahead_fair, ahead_priority)
        return Explanation(
            job_id=job.id,
            status=job.status,
            queue_position=mine.position,  # the ranking's own numbering
            queued_ahead=mine.position - 1,
            required=required,
            reasons=reasons,
        )

    def _fair_share_ahead(self, ranking: Sequence[Row[Any]]) -> list[int]:
        if self._fair is None or self._fair[0] is not ranking:  # one ranking per call
            self._fair = (ranking, fair_share_ahead(ranking))
        return self._fair[1]


def _recent_dispatchers(session: Session) -> list[Dispatcher]:
    return list_dispatchers(session=session, limit=RECENT_DISPATCHERS)


def _live(
    session: Session, dispatchers: list[Dispatcher], dispatcher_timeout: timedelta
) -> list[Dispatcher]:
    """The live dispatchers (seen within `dispatcher_timeout` by the database's clock,
    which they stamp last_seen_at by, and not stopped): every one that ever ran stays
    registered."""
    return live_dispatchers(dispatchers, alive_since=db_now(session) - dispatcher_timeout)
