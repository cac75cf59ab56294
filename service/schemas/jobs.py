"""Job-related API responses (DESIGN §6 shapes)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from service.schemas.common import UtcDatetime


class JobStatus(StrEnum):
    """The six statuses of a job (DESIGN §3): what the API shows and filters by, the
    domain of jobs.status (its CHECK constraint), and what the dashboard's pages are
    told (service.ui.rules). Which changes are allowed is service.store.lifecycle's."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Finished: these never change again (the lifecycle allows no edge out of them). A
# sweep's statuses are a job's, so this is also when a sweep is over.
TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
)


class Progress(BaseModel):
    round: int
    rounds: int


class JobOut(BaseModel):
    id: int
    owner: str
    name: str | None
    status: JobStatus
    priority: int
    sweep_id: int | None = Field(description="the sweep this job is a trial of (read-only)")
    spec: dict[str, Any] = Field(description="the JobSpec with every default filled in")
    attempt: int
    max_attempts: int
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    progress: Progress
    summary: dict[str, Any] | None = Field(
        description="what the run did (traffic, uploads saved, final metrics); written "
        "when its dispatcher ends the job, also cancelled or failed after rounds ran "
        "(rounds_completed < rounds). Null while it runs and when no round ran"
    )
    error: str | None


class MetricRecord(BaseModel):
    seq: int
    round: int
    attempt: int
    time: UtcDatetime
    values: dict[str, float | int | None]
    uploaded: list[int] | None = Field(
        description="replicas whose upload the coordinator used this round ([] = every "
        "replica skipped); null for records stored before this field existed"
    )


class MetricPage(BaseModel):
    data: list[MetricRecord]
    next_after_seq: int = Field(
        description="pass as ?after_seq= to continue; equals the request's after_seq when no "
        "new records exist yet"
    )


class StatusEvent(BaseModel):
    status: JobStatus
    time: UtcDatetime
    attempt: int
    error: str | None


class CheckpointOut(BaseModel):
    id: int
    round: int
    attempt: int
    sha256: str
    bytes: int
    created_at: UtcDatetime


class CheckpointList(BaseModel):
    data: list[CheckpointOut]


class BlockingReason(BaseModel):
    kind: Literal[
        "quota", "resources", "fair_share", "priority", "no_dispatcher", "state", "owner_disabled"
    ]
    message: str


class Explanation(BaseModel):
    job_id: int
    status: JobStatus
    queue_position: int | None = Field(
        description="1 = next in the claim order (fair share, priority, submit time); null "
        "unless queued, and for a job the claim skips (its owner disabled, or a quota "
        "that forbids it by itself)"
    )
    queued_ahead: int | None
    required: dict[str, float]
    reasons: list[BlockingReason]


class StatusChange(BaseModel):
    time: UtcDatetime
    from_status: JobStatus | None
    to_status: JobStatus
    attempt: int
    actor: str
    reason: str | None


class JobHistory(BaseModel):
    data: list[StatusChange] = Field(description="oldest first")
