"""A sweep trial's job: queued as an ordinary job of the sweep's owner, within
their quotas as any submit (a trial with no room waits, pending), or, for a point
that makes no valid job, no job and a failed trial. Called by the controller's step
(workers/sweeps/controller.py), in its transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.errors import QuotaExceeded
from service.schemas.quota import QuotaDefaults
from service.schemas.resolved import ResolvedSpec
from service.store import jobs
from service.store.models import Job, Sweep, SweepStatus, SweepTrial, TrialState, utcnow
from service.store.quotas import check_can_submit
from service.store.sweeps import set_status
from service.store.users import acting_for


def submit_trial(
    *,
    session: Session,
    sweep: Sweep,
    trial: SweepTrial,
    spec: ResolvedSpec,
    quota_defaults: QuotaDefaults,
) -> Job | None:
    """Queue the trial's job as an ordinary job of the sweep's owner (audited as the
    sweep's submit for them), within their max_queued_jobs and max_storage_bytes as
    any submit. None when a quota leaves no room: the trial stays pending, its error
    saying why it waits, and a later step tries again."""
    try:
        now = check_can_submit(session=session, user_id=sweep.owner_id, defaults=quota_defaults)
    except QuotaExceeded as exc:
        trial.error = f"waiting for room in the owner's quota: {exc}"
        session.flush()
        return None
    job, _created = jobs.enqueue(
        session=session,
        owner_id=sweep.owner_id,
        spec=spec,
        sweep_id=sweep.id,
        now=now,
        audit_actor=acting_for(session=session, user_id=sweep.owner_id),
    )
    trial.job_id, trial.state, trial.error = job.id, TrialState.RUNNING.value, None
    if sweep.status == SweepStatus.QUEUED.value:
        set_status(session=session, sweep=sweep, to=SweepStatus.RUNNING)
    session.flush()
    return job


def fail_trial(*, session: Session, trial: SweepTrial, error: str) -> None:
    """A pending trial whose point makes no valid job (the corners were valid, an
    interior point need not be): failed, and the sweep goes on."""
    trial.state, trial.error, trial.finished_at = TrialState.FAILED.value, error, utcnow()
    session.flush()
