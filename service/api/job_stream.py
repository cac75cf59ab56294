"""Reading one job's SSE material from the store: the current status with the job's
highest stored seq (where a watcher starts), then polls for new status events and
metric records. service.api.stream_hub runs one such poller per job for all of its
watchers and sends the messages built here.

Each poll uses its own short session and reads the job's status events *before* its
metrics: a worker's last metrics are committed no later than its terminal status, so
when the first read sees a terminal status the second read sees every metric.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from service.schemas.jobs import MetricRecord, StatusEvent
from service.store.db import read_transaction
from service.store.jobs import events_after, get_job, latest_event
from service.store.metrics import metrics_after
from service.store.models import TERMINAL, Job, JobEvent, Metric

BATCH = 500

Message = dict[str, str]
# (status changes with their times, metrics, the terminal status, the newest status)
Poll = tuple[list[tuple[datetime, Message]], list[Metric], StatusEvent | None, StatusEvent | None]


def metric_record(metric: Metric) -> MetricRecord:
    return MetricRecord(
        seq=metric.seq,
        round=metric.round,
        attempt=metric.attempt,
        time=metric.time,
        values=metric.values,
        uploaded=metric.uploaded,
    )


def _status_from_event(event: JobEvent, job: Job) -> StatusEvent:
    failed = event.to_status == "failed"
    return StatusEvent(
        status=event.to_status,
        time=event.at,
        attempt=event.attempt,
        error=(job.error or event.reason) if failed else None,
    )


class JobStream:
    """The store-side cursor of one job's stream; ``after_seq``: the last seq sent."""

    def __init__(self, sessions: sessionmaker[Session], *, job_id: int, after_seq: int) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.last_seq = after_seq
        self.last_event_id = 0

    def start(self) -> StatusEvent:
        """The current status; the cursor moves to the job's newest event and its
        highest stored seq, read after that event (so a terminal status here means
        every metric is at or below the cursor)."""
        with read_transaction(self.sessions) as session:
            event = latest_event(session=session, job_id=self.job_id)
            job = get_job(session=session, job_id=self.job_id)
        self.last_seq = job.last_seq
        if event is None:
            return StatusEvent(
                status=job.status, time=job.created_at, attempt=job.attempt, error=job.error
            )
        # Built from the event, not job.status: a change committed between the two
        # reads is then reported by the next poll instead of being skipped.
        self.last_event_id = event.id
        return _status_from_event(event, job)

    def poll(self) -> Poll:
        """(status changes, metrics, terminal status, newest status) since the cursor."""
        with read_transaction(self.sessions) as session:
            events = events_after(session=session, job_id=self.job_id, after_id=self.last_event_id)
            job = get_job(session=session, job_id=self.job_id)
            metrics = metrics_after(
                session=session, job_id=self.job_id, after_seq=self.last_seq, limit=BATCH
            )
        changes: list[tuple[datetime, Message]] = []
        terminal: StatusEvent | None = None
        newest: StatusEvent | None = None
        for event in events:
            self.last_event_id = event.id
            newest = _status_from_event(event, job)
            if event.to_status in TERMINAL:
                terminal = newest
            else:
                changes.append((event.at, status_message(newest)))
        if metrics:
            self.last_seq = metrics[-1].seq
        return changes, metrics, terminal, newest


def merge(changes: list[tuple[datetime, Message]], metrics: list[Metric]) -> list[Message]:
    """Interleave status changes and metrics by time, keeping each list's own order
    (metrics stay in seq order); a change sorts before a metric of the same instant."""
    merged: list[Message] = []
    i = 0
    for metric in metrics:
        while i < len(changes) and _utc(changes[i][0]) <= _utc(metric.time):
            merged.append(changes[i][1])
            i += 1
        merged.append(metric_message(metric))
    merged.extend(message for _at, message in changes[i:])
    return merged


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def status_message(status: StatusEvent) -> Message:
    return {"event": "status", "data": status.model_dump_json()}


def metric_message(metric: Metric) -> Message:
    return {
        "event": "metrics",
        "id": str(metric.seq),
        "data": metric_record(metric).model_dump_json(),
    }
